"""Faithfulness and cost of the sampler: DPM-Solver++ steps x guidance scale, on one generator.

For each setting, 2 views of the first ``--sources`` images (one bank shard) are generated
and measured in the stage-1 encoder's space against *all* images (``gensis.generator.
faithfulness``: source top-1 and median rank, class consistency, diversity between the two
views), with the generation rate. This is what the defaults of ``generate.steps`` and
``generate.guidance_scale`` rest on:

    python benchmarks/gensis_digits.py          # or any finished gensis run folder
    python benchmarks/sampler_sweep.py --run runs/gensis_digits/seed0 --steps 5,10,20 --guidance 1,2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gensis
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.pipeline import stage_configs
from gensis.runtime.device import resolve_device

from _common import emit, header

KEEP = ("retrieval_top1", "retrieval_median_rank", "class_consistency", "diversity_cosine", "diversity_pixel_rmse")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished gensis run folder (its generator and data)")
    p.add_argument("--steps", default="5,10,20")
    p.add_argument("--guidance", default="1,2")
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    run = Path(args.run)
    cfg = build_config(PipelineConfig, {}, use_presets=False, config_file=run / "config.yaml")
    gen = stage_configs(cfg).generate
    result = header("sampler_sweep", resolve_device(cfg.device))
    result.update(run=str(run), sources=args.sources, settings=[])
    for g in (float(x) for x in args.guidance.split(",")):
        for steps in (int(x) for x in args.steps.split(",")):
            out = run / "sampler_sweep" / f"steps{steps}_g{g:g}"
            t0 = time.perf_counter()
            made = gensis.generate({"generator": gen.generator, "data_path": gen.data_path,
                                    "max_images": gen.max_images, "out": str(out), "views_per_image": 2,
                                    "interpolations_per_image": 0, "steps": steps, "guidance_scale": g,
                                    "shard_size": args.sources, "shards": [0], "quality_sources": args.sources,
                                    "device": cfg.device, "progress": False})
            seconds = time.perf_counter() - t0
            q = made.quality or {}
            row = {"steps": steps, "guidance": g, "images_per_s": round(made.images_per_s, 1),
                   "seconds": round(seconds, 1), **{k: q.get(k) for k in KEEP},
                   "ceiling": {k: q.get("ceiling", {}).get(k) for k in KEEP}}
            result["settings"].append(row)
            print(row, flush=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
