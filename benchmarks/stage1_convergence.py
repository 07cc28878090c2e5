"""The cheapest stage 1 that converges on these cores: candidate recipes and lengths of DINO from
scratch, each with its kNN and loss curves against seconds and the convergence rule of the report
(:mod:`gensis.eval.convergence`: the loss flat to 2 % of ln K over the last fifth, the online kNN
k=20 within 1 point of its value at three quarters).

Every candidate starts from the benchmark's own stage 1 (``gensis_scratch.py``'s scale for the set:
PCam 4k tiles or CIFAR-10 5k images at 32 px) and changes only what its name says. A run is a
cosine schedule of its length, so lengths are separate runs: the criterion read on one run says
whether that run converged, and the final kNN over lengths shows where the curve bends.
Finished runs are reused and a stopped one resumes; a run's seconds come from its own logged
times, a gap of over 10 minutes (a stop and a later resume) left out. Each run is
then scored as the comparison's arms are (kNN k=20 and 200, the linear probe, all test images).

    python benchmarks/stage1_convergence.py --data pcam --candidates base,m099 --epochs 40,80 --out ../issue37/regime
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import gensis_scratch
from _common import emit, header
from _gensis_run import training_seconds

from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.eval.convergence import convergence
from gensis.pipeline import stage_configs
from gensis.pipeline.evaluate import evaluate_stage
from gensis.pipeline.stages import stage3_variant
from gensis.runtime.device import resolve_device

# Changes to the benchmark's stage 1, which already follows lightly's CIFAR-10 DINO recipe (BN head,
# teacher momentum 0.996 -> 1, SGD 0.06 per 128 images, cosine; the cifar10 and 96px presets).
# lightly uses 2048 prototypes and no lr warm-up; solo-learn's cifar DINO a teacher momentum of 0.99.
CANDIDATES: dict[str, dict[str, Any]] = {
    "init": {"train.max_steps": 1},  # the floor: one step from the random init, scored the same way
    "base": {},  # the scale as it stands (the histology or cifar10 preset's head and optimizer)
    "lightly": {"dino.out_dim": 2048, "optim.warmup_epochs": 0},  # its prototypes, no lr warm-up
    "m099": {"dino.momentum_teacher": 0.99},  # solo-learn's teacher: follows the student faster
    "b128": {"train.batch_size": 128},  # twice the steps per epoch at the same images
    "m099-b128": {"dino.momentum_teacher": 0.99, "train.batch_size": 128},
}


def _logged(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_candidate(cfg: PipelineConfig, base, name: str, epochs: int, knn_every: int) -> dict[str, Any]:
    """Train (or reuse, or resume) one candidate at one length; its curve, seconds and convergence."""
    overrides = {**CANDIDATES[name], "train.epochs": epochs, "train.knn_every": knn_every}
    folder = Path(cfg.out) / f"{name}-e{epochs}"
    stage3_variant(cfg, base, folder.name, overrides)
    metrics = _logged(folder)
    clock = training_seconds(metrics)
    seconds = clock[-1]
    out_dim = int(overrides.get("dino.out_dim", base.dino.out_dim))
    last = max(m["step"] for m in metrics if "step" in m)
    conv = convergence(metrics, out_dim)
    evals: dict[str, Any] = {}
    evaluate_stage(folder.name, folder / "exported" / "encoder.safetensors", cfg, Path(cfg.out) / "eval", evals)
    ev = evals[folder.name]
    return {
        "candidate": name,
        "epochs": epochs,
        "overrides": overrides,
        "seconds": seconds,
        "steps": last,
        "uniform": round(math.log(out_dim), 3),
        "knn": [(t, m["knn_top1_k20"]) for t, m in zip(clock, metrics, strict=True) if "knn_top1_k20" in m],
        "loss": [(t, m["loss"]) for t, m in zip(clock, metrics, strict=True) if isinstance(m.get("loss"), float)],
        "knn_end": next((m["knn_top1_k20"] for m in reversed(metrics) if "knn_top1_k20" in m), None),
        "eval": {"knn_top1": ev["knn_top1"], "linear_top1": ev.get("linear", {}).get("top1")},
        "convergence": {
            "status": conv.status,
            "loss_fall": conv.loss_fall,
            "loss_limit": conv.loss_limit,
            "knn_change": conv.knn_change,
            "knn_at": conv.knn_at,
            "why": conv.why,
        },
    }


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_knn, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in runs:
        if r["steps"] <= 1:  # the random-init floor: a level, not a curve
            ax_knn.axhline(r["eval"]["knn_top1"]["20"], ls="--", c="grey", label="one step from random init")
            continue
        label = f"{r['candidate']} {r['epochs']} ep ({r['convergence']['status']})"
        if r["knn"]:
            ax_knn.plot(*zip(*r["knn"], strict=True), marker="o", ms=3, label=label)
        ax_loss.plot([t for t, _ in r["loss"]], [v / r["uniform"] for _, v in r["loss"]], label=label)
    ax_knn.set(xlabel="seconds on this machine", ylabel="online kNN k=20 (%)", title="kNN k=20 against seconds")
    ax_loss.set(
        xlabel="seconds on this machine", ylabel="DINO loss / ln K", title="DINO loss against its uniform value"
    )
    ax_knn.legend(fontsize=7)
    ax_loss.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| candidate | epochs | steps | seconds | loss end / ln K | kNN k=20 | kNN k=200 | linear | "
        "loss fall, last fifth (limit) | kNN change, last quarter | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = r["convergence"]
        fall = "-" if c["loss_fall"] is None else f"{c['loss_fall']:.3f} ({c['loss_limit']:.3f})"
        knn = "-" if c["knn_change"] is None else f"{c['knn_change']:+.2f}"
        knn_k = r["eval"]["knn_top1"]
        lin = r["eval"]["linear_top1"]
        tail = [v for _, v in r["loss"][-max(1, len(r["loss"]) // 20) :]]
        lines.append(
            f"| {r['candidate']} | {r['epochs']} | {r['steps']} | {r['seconds']:.0f} | "
            f"{sum(tail) / len(tail) / r['uniform']:.3f} | {knn_k.get('20', float('nan')):.2f} | "
            f"{knn_k.get('200', float('nan')):.2f} | {'-' if lin is None else f'{lin:.2f}'} | "
            f"{fall} | {knn} | {c['status']} |"
        )
    done = [r for r in runs if r["convergence"]["status"] == "converged"]
    best = min(done, key=lambda r: r["seconds"]) if done else None
    lines += [
        "",
        f"Cheapest converged: {best['candidate']}, {best['epochs']} epochs, {best['seconds']:.0f} s." if best else "",
        "No candidate converged." if not best else "",
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(gensis_scratch.DATASETS), default="pcam")
    p.add_argument("--candidates", default="base", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    p.add_argument("--epochs", default="60", help="comma-separated run lengths")
    p.add_argument("--knn-every", type=int, default=None, help="epochs between online kNN (default: length / 20)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--out", default=None, help="default: runs/stage1_convergence_<data>")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also append the result here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"--candidates: unknown {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    data, preset, scales = gensis_scratch.DATASETS[args.data]
    settings = gensis_scratch.scratch_settings(scales["cpu"])
    if args.max_images is not None:
        settings["data.max_images"] = args.max_images
    out = Path(args.out or f"runs/stage1_convergence_{args.data}")
    settings.update(
        {
            "out": str(out),
            "preset": preset,
            "device": args.device,
            "progress": not args.quiet,
            "data.path": str(data / "train.zip"),
            "data.eval_path": str(data / "test.zip"),
        }
    )
    cfg = build_config(PipelineConfig, settings, use_presets=False)
    base = stage_configs(cfg).pretrain
    runs = []
    lengths = [int(e) for e in args.epochs.split(",")]
    for epochs in lengths:
        for name in names:
            if name == "init" and epochs != lengths[0]:
                continue  # one floor is enough: one step is one step at any length
            runs.append(run_candidate(cfg, base, name, epochs, args.knn_every or max(1, epochs // 20)))
            plot(runs, out / "curves.png")  # after every run, so a stopped call still shows its curves
            (out / "table.md").write_text(markdown(runs))
    print((out / "table.md").read_text())
    result = header("stage1_convergence", resolve_device(args.device))
    result.update(data=args.data, settings=settings, runs=runs)
    emit(result, args.json)


if __name__ == "__main__":
    main()
