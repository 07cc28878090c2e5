"""What content fingerprints cost: decoding a folder of images with and without hashing each
file's bytes (sha256, in the decoder processes, on bytes read anyway), side by side in one run.

The folder is CIFAR-10's 50,000 training PNGs, extracted from ``../shared/data/cifar10/train.zip``
into ``--folder`` once. Zips need no hashing: their CRC32s tell content apart for free.

    python benchmarks/fingerprint_cost.py --folder /tmp/cifar10-train --repeats 2
"""

from __future__ import annotations

import argparse
import hashlib
import time
import zipfile
from pathlib import Path

import torch
from _common import emit, header

from gensis.data.parallel import decode_many
from gensis.data.sources import ItemReader, list_folder

ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train.zip"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(ZIP))
    p.add_argument("--folder", default="/tmp/cifar10-train")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        with zipfile.ZipFile(args.zip) as z:
            z.extractall(folder)
    root = next(d for d in [folder, *folder.iterdir()] if d.is_dir() and any(c.is_dir() for c in d.iterdir()))
    listing = list_folder(root, False)
    reader = ItemReader("folder", root)
    result = header("fingerprint_cost", torch.device("cpu"))
    result.update(folder=str(root), images=len(listing.ids), bytes=sum(listing.sizes), workers=args.workers)
    times: dict[str, list[float]] = {"decode": [], "decode+sha256": [], "sha256 alone (read+hash, 1 process)": []}
    for _ in range(args.repeats):  # interleaved, so both see the same page cache and load
        for name, digests in (("decode", None), ("decode+sha256", [])):
            t0 = time.perf_counter()
            decode_many(reader, listing.ids, args.resolution, num_workers=args.workers, progress=False, digests=digests)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for item_id in listing.ids:
            hashlib.sha256(reader.read(item_id)).hexdigest()
        times["sha256 alone (read+hash, 1 process)"].append(time.perf_counter() - t0)
    result["seconds"] = {k: [round(v, 2) for v in vs] for k, vs in times.items()}
    best = {k: min(v) for k, v in times.items()}
    result["overhead_percent"] = round(100 * (best["decode+sha256"] / best["decode"] - 1), 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
