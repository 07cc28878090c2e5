"""Faithfulness and cost of the sampler: DPM-Solver++ steps x guidance scale, on one generator.

For each setting, 2 views of the first ``--sources`` images (one bank shard) are generated
and measured in the stage-1 encoder's space against *all* images (``gensis.generator.
faithfulness``: source top-1 and median rank, class consistency, diversity between the two
views), with the generation rate. This is what the defaults of ``generate.steps`` and
``generate.guidance_scale`` rest on:

    python benchmarks/gensis_digits.py          # or any finished gensis run folder
    python benchmarks/sampler_sweep.py --run runs/gensis_digits/seed0 --steps 5,10,20 --guidance 1,2

``--variant`` adds a setting measured at the first steps and guidance, e.g. the diversity dial of
GenView's adaptive noise on the condition (arXiv 2403.12003):

    python benchmarks/sampler_sweep.py --run runs/gensis_scratch_pcam --steps 10 --guidance 1,2 \\
        --variant adaptive_noise=true
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import emit, header, settings_arg

import gensis
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline import stage_configs
from gensis.runtime.device import resolve_device

KEEP = ("retrieval_top1", "retrieval_median_rank", "class_consistency", "diversity_cosine", "diversity_pixel_rmse")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished gensis run folder (its generator and data)")
    p.add_argument("--steps", default="5,10,20")
    p.add_argument("--guidance", default="1,2")
    p.add_argument("--sources", type=int, default=500)
    p.add_argument(
        "--variant",
        type=settings_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE[;KEY=VALUE]",
        help="one more generate setting, at the first steps and guidance (repeatable)",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args()
    run = Path(args.run)
    cfg = build_config(PipelineConfig, {}, use_presets=False, config_file=run / "config.yaml")
    gen = stage_configs(cfg).generate
    result = header("sampler_sweep", resolve_device(cfg.device))
    result.update(run=str(run), sources=args.sources, settings=[])
    steps_list = [int(x) for x in args.steps.split(",")]
    guidances = [float(x) for x in args.guidance.split(",")]
    settings = [(f"steps{st}_g{g:g}", {"steps": st, "guidance_scale": g}) for g in guidances for st in steps_list]
    for keys in args.variant:
        name = "_".join(f"{k}-{str(v).lower()}" for k, v in keys.items())
        settings.append((name, {"steps": steps_list[0], "guidance_scale": guidances[0], **keys}))
    for name, extra in settings:
        t0 = time.perf_counter()
        made = gensis.generate(
            {
                "generator": gen.generator,
                "data_path": gen.data_path,
                "max_images": gen.max_images,
                "out": str(run / "sampler_sweep" / name),
                "views_per_image": 2,
                "interpolations_per_image": 0,
                "shard_size": args.sources,
                "shards": [0],
                "quality_sources": args.sources,
                "device": cfg.device,
                "progress": False,
                **extra,
            }
        )
        seconds = time.perf_counter() - t0
        out = run / "sampler_sweep" / name
        q = made.quality or json.loads((out / "quality.json").read_text())  # a rerun reuses a done setting
        done = made.n_images > 0 and made.images_per_s is not None  # the timing is this run's only
        row = {
            "setting": name,
            "steps": extra["steps"],
            "guidance": extra["guidance_scale"],
            **{k: v for k, v in extra.items() if k not in ("steps", "guidance_scale")},
            "images_per_s": round(made.images_per_s, 1) if done else None,
            "seconds": round(seconds, 1) if done else None,
            **{k: q.get(k) for k in KEEP},
            "ceiling": {k: q.get("ceiling", {}).get(k) for k in KEEP},
        }
        result["settings"].append(row)
        print(row, flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
