"""One seed of a Gen-SIS experiment: ``gensis run`` plus optional extra stage-3 runs, evaluated.

Shared by the CIFAR-10 and PCam benchmarks so both follow one protocol:

* ``dino``: stage 1; ``control``: stage 3's recipe without generated views (equal epochs);
  ``gen-dino``: Gen-DINO from the view bank (all three from the pipeline);
* ``gen-dino-nodis`` (optional): Gen-DINO with ``lambda_dis = 0``;
* ``dino-compute-fair`` (optional): stage 1 continued with plain DINO for as many epochs as
  the measured seconds of the generator, the bank and Gen-DINO.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import emit, header
from _gensis_table import dis_curve, summarize, write_table

import gensis
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.eval.faithfulness import faithfulness_table
from gensis.pipeline import stage_configs
from gensis.pipeline.evaluate import evaluate_stage
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device

MAX_GAP_S = 600  # longer between two logged records: the run was stopped there and resumed later


def training_seconds(metrics: list[dict[str, Any]]) -> list[float]:
    """Seconds of training up to each logged record, from the records' own ``time`` (kNN evaluations
    included); a gap over :data:`MAX_GAP_S` is a stop and a later resume, and does not count. Unlike
    a stage's recorded seconds, this survives a run killed without a word (SIGKILL, a session's end)."""
    out, total, before = [], 0.0, None
    for m in metrics:
        t = m.get("time")
        if isinstance(t, (int, float)):
            if before is not None and 0 < t - before <= MAX_GAP_S:
                total += t - before
            before = t
        out.append(round(total, 1))
    return out


def logged_seconds(folder: str | Path) -> float:
    """A run folder's training seconds by its logged clock (0.0 when it logged nothing)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return 0.0
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return training_seconds(records)[-1] if records else 0.0


LABELS = {
    "dino": "DINO, stage 1",
    "control": "control: DINO, equal epochs",
    "gen-dino": "Gen-DINO",
    "gen-dino-nodis": "Gen-DINO without disentanglement",
    "dino-compute-fair": "DINO, compute-fair",
}
VERSUS = [("gen-dino", "control"), ("gen-dino", "dino"), ("control", "dino"), ("gen-dino", "dino-compute-fair")]


def epochs_for(seconds: float, run_seconds: float, run_epochs: int) -> int:
    """The epochs (at least 1) that take ``seconds`` at the rate of a run of ``run_epochs`` in ``run_seconds``:
    a compute-fair run's length."""
    return max(1, round(seconds / (run_seconds / run_epochs)))


def run_seed(
    settings: dict[str, Any], *, nodis: bool = True, compute_fair: bool = True, stage3_seeds: int = 1
) -> dict[str, Any]:
    """``stage3_seeds > 1`` repeats Gen-DINO and the control from the same stage 1 and bank
    with other training seeds (``gen-dino-s1``, ``control-s1``, ...): the spread of stage 3."""
    result = gensis.run(settings)
    cfg = build_config(PipelineConfig, settings, use_presets=False)
    stages = stage_configs(cfg)
    secs = {k: v["seconds"] for k, v in result["stages"].items()}
    encoders = {
        "dino": Path(stages.pretrain.out) / "exported" / "encoder.safetensors",
        "control": Path(stages.control.out) / "exported" / "encoder.safetensors",
        "gen-dino": Path(stages.gen_dino.out) / "exported" / "encoder.safetensors",
    }
    fair_epochs = None
    for s in range(1, stage3_seeds):
        for name, base in (("gen-dino", stages.gen_dino), ("control", stages.control)):
            t0 = time.perf_counter()
            encoders[f"{name}-s{s}"] = stage3_variant(cfg, base, f"{name}-s{s}", {"train.seed": s})
            secs[f"{name}-s{s}"] = round(time.perf_counter() - t0, 1)
    if nodis:
        t0 = time.perf_counter()
        encoders["gen-dino-nodis"] = stage3_variant(cfg, stages.gen_dino, "gen-dino-nodis", {"gen.lambda_dis": 0.0})
        secs["gen-dino-nodis"] = round(time.perf_counter() - t0, 1)
    if compute_fair:  # plain DINO from stage 1 for the seconds stage 2 + Gen-DINO took
        extra = secs["train-generator"] + secs["generate"] + secs["gen-dino"]
        fair_epochs = epochs_for(extra, secs["control"], stages.control.train.epochs)
        t0 = time.perf_counter()
        encoders["dino-compute-fair"] = stage3_variant(
            cfg, stages.control, "dino-compute-fair", {"train.epochs": fair_epochs}
        )
        secs["dino-compute-fair"] = round(time.perf_counter() - t0, 1)
    rows, n_test = evaluate_all(encoders, cfg)
    summary = summarize(rows, VERSUS, n_test=n_test)
    quality = json.loads((Path(stages.generate.out) / "quality.json").read_text())
    extra = bank_and_loss_notes(summary, encoders, quality, stages.gen_dino.dino.out_dim)
    table = write_table(Path(cfg.out), summary, LABELS, extra)
    print(table.read_text())
    return {
        "seed": settings.get("seed", 0),
        "seconds": secs,
        "compute_fair_epochs": fair_epochs,
        "stage3_epochs": stages.gen_dino.train.epochs,
        "results": rows,
        "summary": summary,
        "generator_quality": quality,
    }


def run_folder(encoder: Path) -> Path:
    """The run folder of an exported encoder (``<run>/exported/encoder.safetensors``)."""
    return encoder.parents[1]


def evaluate_all(encoders: dict[str, Path], cfg: PipelineConfig) -> tuple[dict[str, Any], int]:
    """kNN and the linear probe of every encoder (reused when done); rows for the table, test size."""
    evals: dict[str, Any] = {}
    for name, path in encoders.items():
        evaluate_stage(name, path, cfg, Path(cfg.out) / "eval", evals)
    rows = {}
    for name, r in evals.items():
        lin = r.get("linear", {})
        rows[name] = {
            "knn_top1": r["knn_top1"],
            "linear_top1": lin.get("top1"),
            "trained_steps": r.get("trained_steps"),
            **{f"linear_{k}": lin[k] for k in ("auc", "f1") if k in lin},
        }
    return rows, next(iter(evals.values()))["n_test"]


def faithfulness_md(quality: dict[str, Any], title: str = "Generated views") -> str:
    """A bank's quality.json as a markdown table, beside real stage-1 views (the ceiling) and chance."""
    head, body = faithfulness_table(quality)
    return (
        f"\n{title}, beside real stage-1 views (the ceiling) and chance:\n\n| "
        + " | ".join(head)
        + " |\n|"
        + "---|" * len(head)
        + "\n"
        + "".join("| " + " | ".join(r) + " |\n" for r in body)
    )


def bank_and_loss_notes(
    summary: dict[str, Any], encoders: dict[str, Path], quality: dict[str, Any], out_dim: int
) -> str:
    """Where a gain can be lost, added to ``summary`` and as markdown: the bank's faithfulness
    against the real-view ceiling, and each Gen-DINO run's disentanglement loss beside its floor."""
    summary["disentanglement_loss"] = {
        name: dis_curve(run_folder(path), out_dim) for name, path in encoders.items() if name.startswith("gen-dino")
    }
    summary["faithfulness"] = {
        k: quality.get(k)
        for k in (
            "retrieval_top1",
            "retrieval_median_rank",
            "class_consistency",
            "diversity_cosine",
            "ceiling",
            "ceiling_crop",
            "chance",
        )
    }
    extra = faithfulness_md(quality)
    curves = {n: c for n, c in summary["disentanglement_loss"].items() if c}
    if curves:
        extra += "\nDisentanglement loss, mean of the first and last tenth of each run (uniform = ln K):\n\n"
        extra += "".join(
            f"- {n}: {c['first']:.2f} -> {c['last']:.2f} "
            f"({c.get('direction', '?')}, uniform {c['uniform']:.2f}"
            + (f", floor {c['floor_last']:.2f})" if "floor_last" in c else ")")
            + "\n"
            for n, c in curves.items()
        )
    return extra


def experiment_main(
    name: str, doc: str, scales: dict[str, dict[str, Any]], data: Path, *, preset: str, **run_kw: Any
) -> None:
    """The command line shared by the experiments: ``--scale``, data, seeds, device, output."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--scale", choices=sorted(scales), default="cpu")
    p.add_argument("--train", default=str(data / "train.zip"))
    p.add_argument("--test", default=str(data / "test.zip"))
    p.add_argument("--out", default=f"runs/{name}")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--stage3-seeds", type=int, default=3, help="repeat stage 3 with this many training seeds")
    p.add_argument("--no-compute-fair", action="store_true", help="skip the compute-fair DINO control")
    p.add_argument("--no-nodis", action="store_true", help="skip Gen-DINO without disentanglement")
    p.add_argument(
        "--stage1-epochs",
        type=int,
        default=None,
        help="stage 1 this long instead of the scale's (does Gen-SIS pay on a converged encoder?)",
    )
    args = p.parse_args()
    if args.no_compute_fair:
        run_kw["compute_fair"] = False
    if args.no_nodis:
        run_kw["nodis"] = False
    result = header(name, resolve_device(args.device))
    result.update(scale=args.scale, settings=scales[args.scale], stage1_epochs=args.stage1_epochs, runs=[])
    for seed in (int(s) for s in args.seeds.split(",")):
        settings = json.loads(json.dumps(scales[args.scale]))
        if args.stage1_epochs is not None:
            settings["pretrain"]["train.epochs"] = args.stage1_epochs
        settings.update(
            {
                "out": str(Path(args.out) / f"seed{seed}"),
                "preset": preset,
                "seed": seed,
                "device": args.device,
                "data.path": args.train,
                "data.eval_path": args.test,
                "progress": not args.quiet,
            }
        )
        result["runs"].append(run_seed(settings, stage3_seeds=args.stage3_seeds, **run_kw))
    emit(result, args.json)
