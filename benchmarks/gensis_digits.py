"""Gen-SIS on the demo digits, over stage-3 seeds: the demo's stages, Gen-DINO and its controls.

The demo's settings (``gensis.demo.DEMO_STAGES``: 1,437 real handwritten digits at 16 px,
tested on 360 held-out ones), except that the bank holds 4 generated views per image so the
ablations can use 1, 2 or 4 of them; Gen-DINO uses 2, as the demo does. One ``gensis run``
folder, then:

* ``control``, ``gen-dino`` and their repeats ``-s1``, ``-s2`` (stage-3 training seeds);
* ``gen-dino-nodis``: Gen-DINO with ``lambda_dis = 0`` (seed 0);
* ``dino-compute-fair``: stage 1 continued with plain DINO for the seconds of stage 2 + Gen-DINO.

``<out>/seed0/table.md`` (and ``.json``) holds mean +- sd and the paired differences.

    python benchmarks/gensis_digits.py                    # 24 min on 2 idle cores (2026-12-01)
    python benchmarks/gensis_ablations.py --run runs/gensis_digits/seed0 --seeds 0,1,2
    python benchmarks/gensis_digits.py --stage1-epochs 67 --no-compute-fair --out runs/gensis_digits_s1e67
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from _common import emit, header
from _gensis_run import run_seed

from gensis.data import demo_digits
from gensis.demo import DEMO_STAGES, write_demo_data
from gensis.runtime.device import resolve_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/gensis_digits")
    p.add_argument("--stage3-seeds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-compute-fair", action="store_true", help="skip the compute-fair DINO control")
    p.add_argument(
        "--stage1-epochs",
        type=int,
        default=None,
        help="stage 1 this long instead of the demo's 12 epochs (does Gen-SIS pay on a stronger encoder?)",
    )
    args = p.parse_args()
    out = Path(args.out) / "seed0"
    train, test = demo_digits(resolution=16)
    settings = copy.deepcopy(DEMO_STAGES)
    settings["generate"]["views_per_image"] = 4
    settings["gen_dino"]["gen.views_per_image"] = 2
    if args.stage1_epochs is not None:
        settings["pretrain"]["train.epochs"] = args.stage1_epochs
    settings.update(
        {
            "out": str(out),
            "seed": 0,
            "device": args.device,
            "progress": not args.quiet,
            "data.path": str(write_demo_data(out.parent / "data", train, test)),
            "data.eval_path": str(out.parent / "data" / "digits_test.npz"),
        }
    )
    result = header("gensis_digits", resolve_device(args.device))
    result.update(
        settings=settings,
        runs=[run_seed(settings, stage3_seeds=args.stage3_seeds, compute_fair=not args.no_compute_fair)],
    )
    emit(result, args.json)


if __name__ == "__main__":
    main()
