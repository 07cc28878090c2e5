"""A second worker for the converged comparison (issue 37): later seeds' arms on the other core.

`benchmarks/converged_comparison.sh` trains the seeds one after another on one thread. This worker
trains other seeds' two arms (DINO and Gen-DINO from scratch) and then the compute-fair arm, in the
same experiment folder and from the same pinned revision ($EXP/src), so that a 2-core machine runs
two arms at once. It writes no table: when the main run reaches a seed this worker finished, it
reuses those runs (their folders hold the same config) and puts them in its table. Two processes
never write one run folder: each run folder is locked by its writer (gensis.runtime.lock), so the one
that comes second stops with one line naming the holder.

The settings are the main run's (`gensis_scratch.py --data pcam --scale converged`), built by the
pinned module's own functions; seed 0's pipeline is reused through `gensis.run`, which refuses a
stage folder that holds other settings, so a worker whose recipe differed would stop before training.

    # seed 4, then the compute-fair arm; start it after the main run has begun training (both take
    # the pipeline folder's lock while they check seed 0's pipeline)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/converged_worker.py --seeds 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exp", type=Path, default=REPO.parent / "issue37-comparison")
    p.add_argument("--seeds", required=True, help="comma-separated training seeds (not 0: its arms are the pipeline)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "pcam")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-compute-fair", action="store_true", help="skip the compute-fair DINO run")
    args = p.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: comma-separated whole numbers, e.g. 4 or 3,4")
    if 0 in seeds:
        p.error("--seeds: seed 0 is the main run's pipeline (its generator and bank); give later seeds")
    exp, data = args.exp.resolve(), args.data.resolve()  # the run folders' configs hold absolute paths
    src, threads, revision = exp / "src", exp / "THREADS", exp / "REVISION"
    # gensis is not imported before the pinned src/ is on the path, so its trust helpers are not used here:
    # a link or a FIFO in place of THREADS or REVISION is refused by hand (is_file() is False for a FIFO).
    marks = (src / "benchmarks" / "gensis_scratch.py", threads, revision)
    if any(not path.is_file() or path.is_symlink() for path in marks):
        p.error(f"--exp {exp}: not an experiment folder of converged_comparison.sh (no src/, THREADS or REVISION)")
    want, pinned = threads.read_text().strip(), revision.read_text().strip()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var) != want:
            p.error(f"{var} must be {want} ($EXP/THREADS): the arms' seconds compare only then")
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head != pinned:
        p.error(f"--exp {exp}: src/ is at {head or 'no commit'}, not at REVISION {pinned}")
    sys.path[:0] = [str(src / "src"), str(src / "benchmarks")]
    import gensis_scratch as scratch  # the pinned revision's, as the main run uses

    _, preset, scales = scratch.DATASETS["pcam"]
    settings = scratch.scratch_settings(scales["converged"])
    settings.update(
        {
            "out": str(exp / "comparison"),
            "preset": preset,
            "device": args.device,
            "data.path": str(data / "train.zip"),
            "data.eval_path": str(data / "test.zip"),
            "progress": False,
        }
    )
    _, encoders, secs, _, _ = scratch.train_arms(settings, [0, *seeds], False, not args.no_compute_fair)
    for name, seconds in secs.items():
        print(f"{name}: {encoders.get(name, '')} ({seconds} s)")


if __name__ == "__main__":
    main()
