"""The pipeline's report: Markdown and HTML with the stage times, the evaluation table,
the generator's quality, its pictures and the training curves (PNG)."""

from __future__ import annotations

import html
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gensis.autoencoder.quality import reconstruction_table
from gensis.eval.faithfulness import faithfulness_table
from gensis.pipeline.verdict import Verdict, format_verdict, verdicts
from gensis.runtime.io import atomic_write_text
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.trust import read_text

_QUALITY_NOTE = (
    "Each generated view is embedded by the stage-1 encoder and its source searched among all "
    "training images; the ceiling is the same for real views made by stage 1's own augmentation."
)

_RECON_NOTE = (
    "Held-out images, encoded and decoded by the autoencoder trained on these images (originals above "
    "their reconstructions); each reconstruction is embedded by the stage-1 encoder and its source "
    "searched among all training images. Generated views are decoded by the same decoder."
)

LABELS = {
    "dino": "DINO (stage 1)",
    "control": "DINO, stage-3 recipe without generated views",
    "gen-dino": "Gen-DINO (stage 3)",
}


def _curves(root: Path, runs: dict[str, Path]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = root / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    series = {name: RunFolder(path).read_metrics() for name, path in runs.items()}
    ssl = [n for n in series if n != "generator"]
    gen = "generator"
    # (file, title, [(legend, run, metric)])
    panels = [
        ("loss", "SSL training loss", [(n, n, "loss") for n in ssl]),
        (
            "loss_dis",
            "disentanglement loss (floor: the target's entropy)",
            [(n, n, "loss_dis") for n in ssl] + [(f"{n} floor", n, "loss_dis_floor") for n in ssl],
        ),
        ("knn", "online kNN k=20 (%)", [(n, n, "knn_top1_k20") for n in ssl]),
        ("generator_loss", "generator (diffusion) loss", [(gen, gen, "loss")]),
        (
            "generator_condition",
            "generator: loss increase with a wrong embedding (%)",
            [(f"{b} noise", gen, f"cond_gap_{b}") for b in ("low", "mid", "high")],
        ),
        (
            "generator_retrieval",
            "generator: source found from one-step predictions, top-1 (%)",
            [("true embedding", gen, "monitor_top1"), ("wrong embedding", gen, "monitor_top1_shuffled")],
        ),
        # top-1 stays at 0 where even real views are rarely found first (PCam: 2.8 %); the rank still moves
        (
            "generator_rank",
            "generator: median rank of the source from one-step predictions",
            [("true embedding", gen, "monitor_median_rank")],
        ),
    ]
    for filename, title, lines_spec in panels:
        lines = {
            label: [(r["step"], r[key]) for r in series.get(run, []) if r.get(key) is not None]
            for label, run, key in lines_spec
        }
        lines = {n: pts for n, pts in lines.items() if pts}
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, pts in lines.items():
            ax.plot(*zip(*pts, strict=True), label=name, marker="o" if len(pts) < 20 else None)
        ax.set_xlabel("step (of that run)")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        path = plots / f"{filename}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _eval_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    ks = sorted({k for r in results.values() for k in r["knn_top1"]}, key=int)
    header = ["encoder", "trained steps"] + [f"kNN k={k}" for k in ks] + ["linear"]
    rows = []
    for name, r in results.items():
        lin = f"{r['linear']['top1']:.2f}" if "linear" in r else "-"
        rows.append(
            [LABELS.get(name, name), str(r.get("trained_steps", "?"))]
            + [f"{r['knn_top1'].get(k, float('nan')):.2f}" for k in ks]
            + [lin]
        )
    return header, rows


def _compute(stages: dict[str, Any], baseline: str | None) -> dict[str, float]:
    s = {k: v.get("seconds", 0.0) for k, v in stages.items()}
    gen = sum(s.get(k, 0.0) for k in ("pretrain", "autoencoder", "embed", "train-generator", "generate", "gen-dino"))
    if baseline == "dino":  # from scratch: DINO is stage 1 alone
        return {
            "gen-sis pipeline (s)": round(gen, 1),
            "DINO from scratch: stage 1 (s)": round(s.get("pretrain", 0.0), 1),
        }
    return {
        "gen-sis pipeline (s)": round(gen, 1),
        "control: stage 1 + control (s)": round(s.get("pretrain", 0.0) + s.get("control", 0.0), 1),
    }


def write_report(
    root: Path, cfg, stages, state: dict[str, Any], results: dict[str, Any]
) -> tuple[Path, list[Verdict], dict[str, float]]:
    """report.md and report.html in ``root``; returns the Markdown path, the verdicts and each
    training stage's mean ``data_wait``."""
    runs = {"dino": Path(stages.pretrain.out), "gen-dino": Path(stages.gen_dino.out)}
    if stages.control is not None:
        runs["control"] = Path(stages.control.out)
    runs["generator"] = Path(stages.generator.out)
    plots = _curves(root, runs)
    quality_path = Path(stages.generate.out) / "quality.json"
    quality = json.loads(read_text(quality_path, "bank quality")) if quality_path.exists() else None
    pictures = [p for p in (root / "pictures" / "views.png", root / "pictures" / "interpolations.png") if p.exists()]
    reconstruction, recon_pictures = None, []
    if getattr(stages, "autoencoder", None) is not None:
        ae_root = Path(stages.autoencoder.out)
        path = ae_root / "reconstruction.json"
        reconstruction = json.loads(read_text(path, "reconstruction report")) if path.exists() else None
        recon_pictures = [p for p in (ae_root / "reconstructions.png",) if p.exists()]
    facts = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, device={cfg.device}",
        "data": cfg.data.path,
        "eval data": cfg.data.eval_path or "(none)",
        "preset": cfg.preset,
        "stage 3 starts from": cfg.stage3_init,
        "stage-3 epochs": stages.gen_dino.train.epochs,
        "p_gen": stages.gen_dino.gen.p_gen,
        "lambda_dis": stages.gen_dino.gen.lambda_dis,
    }
    metrics = {name: RunFolder(path).read_metrics() for name, path in runs.items()}
    by_stage = {
        "pretrain": metrics["dino"],
        "train-generator": metrics["generator"],
        "gen-dino": metrics["gen-dino"],
        **({"control": metrics["control"]} if "control" in metrics else {}),
        **(
            {"autoencoder": RunFolder(stages.autoencoder.out).read_metrics()}
            if getattr(stages, "autoencoder", None) is not None
            else {}
        ),
    }
    waits = {name: w for name, records in by_stage.items() if (w := _mean_data_wait(records)) is not None}
    sections: dict[str, Any] = {
        "verdicts": verdicts(stages, quality, results, metrics, reconstruction),
        "facts": facts,
        "stages": _stage_rows(state["stages"], waits),
        "compute": _compute(state["stages"], stages.baseline),
        "eval": _eval_rows(results) if results else None,
        "quality": quality,
        "reconstruction": reconstruction,
        "recon_pictures": [p.relative_to(root).as_posix() for p in recon_pictures],
        "pictures": [p.relative_to(root).as_posix() for p in pictures],
        "plots": [p.relative_to(root).as_posix() for p in plots],
    }
    atomic_write_text(root / "report.md", _markdown(sections))
    atomic_write_text(root / "report.html", _html(sections))
    return root / "report.md", sections["verdicts"], waits


def _stage_rows(stages: dict[str, Any], waits: dict[str, float]) -> tuple[list[str], list[list[str]]]:
    """The stage table: how each stage last ran, its seconds, and for training stages the share of
    those spent waiting for data."""
    rows = [
        [name, v.get("last", ""), f"{v.get('seconds', 0):.1f}", f"{waits[name]:.0%}" if name in waits else "-"]
        for name, v in stages.items()
    ]
    return ["stage", "last run", "compute (s)", "waiting for data"], rows


def _mean_data_wait(records: list[dict]) -> float | None:
    """The mean of a training run's logged ``data_wait`` (None before it was logged)."""
    waits = [r["data_wait"] for r in records if isinstance(r.get("data_wait"), (int, float))]
    return sum(waits) / len(waits) if waits else None


# The stages' words on the console, in pipeline order.
_WAIT_LABELS = {
    "pretrain": "stage 1",
    "autoencoder": "autoencoder",
    "train-generator": "generator",
    "gen-dino": "stage 3",
    "control": "control",
}


def format_data_wait(result: dict) -> str:
    """One line: the share of each training stage's time spent waiting for data."""
    waits = result.get("data_wait", {})
    parts = [f"{label} {waits[name]:.0%}" for name, label in _WAIT_LABELS.items() if name in waits]
    return "waiting for data (share of training time): " + (", ".join(parts) or "not logged")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _markdown(s: dict[str, Any]) -> str:
    out = ["# gensis run report", "", "## Did each stage do its job?", ""]
    out += [format_verdict(v, markdown=True) for v in s["verdicts"]]
    out += [""]
    out += [f"- **{k}**: {v}" for k, v in s["facts"].items()]
    if s["eval"]:
        out += ["", "## Frozen-encoder evaluation (top-1 %, test split)", "", _md_table(*s["eval"])]
    out += ["", "## Stages", "", _md_table(*s["stages"])]
    out += ["", "Compute: " + ", ".join(f"{k} {v}" for k, v in s["compute"].items())]
    if s["reconstruction"]:
        out += [
            "",
            "## The autoencoder: does its latent space keep what the encoder sees?",
            "",
            _RECON_NOTE,
            "",
            _md_table(*reconstruction_table(s["reconstruction"])),
        ]
        out += [""] + [f"![{p}]({p})" for p in s["recon_pictures"]]
    if s["quality"]:
        out += [
            "",
            "## Are the generated views views of their source?",
            "",
            _QUALITY_NOTE,
            "",
            _md_table(*faithfulness_table(s["quality"])),
            "",
            "All figures, in the stage-1 encoder's space:",
            "",
            "```json",
            json.dumps(s["quality"], indent=1),
            "```",
        ]
    if s["pictures"]:
        out += ["", "## What the generator makes", ""] + [f"![{p}]({p})" for p in s["pictures"]]
    if s["plots"]:
        out += ["", "## Training curves", ""] + [f"![{p}]({p})" for p in s["plots"]]
    return "\n".join(out) + "\n"


def _html(s: dict[str, Any]) -> str:
    e = html.escape

    def table(header, rows) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    # an empty icon: a browser would otherwise ask the server for /favicon.ico (a 404 in its console)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>gensis run report</title><link rel='icon' href='data:,'>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;"
        "padding:.2em .6em}table{border-collapse:collapse}img{max-width:100%}"
        ".verdicts li{padding:.3em;margin:.2em 0;list-style:none}.ok{background:#e6f4ea}.warning{background:#fde7e9}"
        ".none{background:#eeeeee}</style>",
        "<h1>gensis run report</h1>",
        "<h2>Did each stage do its job?</h2><ul class='verdicts'>",
    ]
    parts += [f"<li class='{v.status}'><b>{v.label}, {e(v.stage)}</b>: {e(v.text)}</li>" for v in s["verdicts"]]
    parts += ["</ul><ul>"]
    parts += [f"<li><b>{e(k)}</b>: {e(str(v))}</li>" for k, v in s["facts"].items()] + ["</ul>"]
    if s["eval"]:
        parts += ["<h2>Frozen-encoder evaluation (top-1 %, test split)</h2>", table(*s["eval"])]
    parts += ["<h2>Stages</h2>", table(*s["stages"])]
    parts += ["<p>Compute: " + e(", ".join(f"{k} {v}" for k, v in s["compute"].items())) + "</p>"]
    if s["reconstruction"]:
        parts += [
            "<h2>The autoencoder: does its latent space keep what the encoder sees?</h2>",
            f"<p>{e(_RECON_NOTE)}</p>",
            table(*reconstruction_table(s["reconstruction"])),
        ]
        parts += [f"<p><img src='{e(p)}' alt='{e(p)}'></p>" for p in s["recon_pictures"]]
    if s["quality"]:
        parts += [
            "<h2>Are the generated views views of their source?</h2>",
            f"<p>{e(_QUALITY_NOTE)}</p>",
            table(*faithfulness_table(s["quality"])),
            "<p>All figures, in the stage-1 encoder's space:</p>",
            f"<pre>{e(json.dumps(s['quality'], indent=1))}</pre>",
        ]
    if s["pictures"]:
        parts += ["<h2>What the generator makes</h2>"] + [
            f"<p><img src='{e(p)}' alt='{e(p)}'></p>" for p in s["pictures"]
        ]
    if s["plots"]:
        parts += ["<h2>Training curves</h2>"] + [f"<img src='{e(p)}' alt='{e(p)}'>" for p in s["plots"]]
    return "\n".join(parts) + "\n"


def format_run(result: dict) -> str:
    """The console summary of ``gensis run``: where the report is, and each encoder's scores."""
    lines = [f"report: {result['report']}"] + [format_verdict(v) for v in result.get("verdicts", [])]
    lines.append(format_data_wait(result))
    for name, r in result["eval"].items():
        knn = ", ".join(f"k={k} {v:.2f}%" for k, v in r["knn_top1"].items())
        lin = f", linear {r['linear']['top1']:.2f}%" if "linear" in r else ""
        lines.append(f"{name:<10} kNN {knn}{lin}")
    return "\n".join(lines)


def format_faithfulness(quality: dict) -> str:
    """One line: are the generated views views of their source, beside real stage-1 views."""
    c = quality.get("ceiling", {})
    line = (
        f"generated views: source found top-1 {quality['retrieval_top1']:.1f} % (real stage-1 views "
        f"{c.get('retrieval_top1', float('nan')):.1f} %), median rank {quality['retrieval_median_rank']} "
        f"({c.get('retrieval_median_rank', '?')}) of {quality.get('chance', {}).get('images', '?')} images"
    )
    if "class_consistency" in quality:
        line += f", class kept {quality['class_consistency']:.1f} % ({c.get('class_consistency', float('nan')):.1f} %)"
    return line
