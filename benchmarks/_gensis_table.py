"""The table of a Gen-SIS experiment: mean +- sd over stage-3 seeds and the paired differences.

Encoders named ``gen-dino``, ``gen-dino-s1``, ... are one group with seeds 0, 1, ...; a
difference is *paired* when both encoders share the stage-1 weights, the bank and the training
seed, so the seed's own noise cancels. A mean difference is decided when its Student-t 95 %
interval (n - 1 degrees of freedom) excludes 0; the exact sign-flip test stands beside it
(with 5 seeds or fewer it cannot reach p < 0.05, and the table says so; with one seed there is
no interval).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from gensis.eval.significance import decode_correct, mcnemar_exact, paired_seeds, trend

METRICS = [
    ("knn_k20", "kNN k=20"),
    ("knn_k200", "kNN k=200"),
    ("linear", "linear"),
    ("auc", "linear AUC"),
    ("f1", "linear F1"),
]
ACCURACIES = {"knn_k20", "knn_k200", "linear"}  # percent of test images (AUC and F1 are not)
_SEED = re.compile(r"^(.*)-s(\d+)$")


def split_name(name: str) -> tuple[str, int]:
    """``gen-dino-s2`` -> (``gen-dino``, 2); ``gen-dino`` -> (``gen-dino``, 0)."""
    m = _SEED.match(name)
    return (m.group(1), int(m.group(2))) if m else (name, 0)


def figures(row: dict[str, Any]) -> dict[str, float]:
    knn = row.get("knn_top1", {})
    out = {f"knn_k{k}": float(v) for k, v in knn.items()}
    for key, src in (("linear", "linear_top1"), ("auc", "linear_auc"), ("f1", "linear_f1")):
        if row.get(src) is not None:
            out[key] = float(row[src])
    return out


def spread(values: list[float]) -> dict[str, Any]:
    n = len(values)
    sd = statistics.stdev(values) if n > 1 else None
    return {
        "values": [round(v, 2) for v in values],
        "n": n,
        "mean": round(statistics.fmean(values), 3),
        "sd": None if sd is None else round(sd, 3),
    }


def paired(
    a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], keys: tuple[str, ...] = tuple(k for k, _ in METRICS)
) -> dict[str, Any]:
    """Per figure in ``keys``: a - b for every seed both have, its mean, sd, standard error and verdict."""
    seeds = sorted(set(a) & set(b))
    out: dict[str, Any] = {}
    for key in keys:
        diffs = [a[s][key] - b[s][key] for s in seeds if key in a[s] and key in b[s]]
        if not diffs:
            continue
        d = spread(diffs)
        test = paired_seeds(diffs)  # the rule of the report's verdicts, for several seeds
        d["se"] = None if test.se is None else round(test.se, 3)
        d["ci95"] = None if test.ci is None else [round(test.ci[0], 3), round(test.ci[1], 3)]
        d["p_t"] = None if test.p_t is None else round(test.p_t, 4)
        d["p_signflip"] = None if test.p_signflip is None else round(test.p_signflip, 4)
        d["decided"] = test.decided
        out[key] = d
    return out


def summarize(
    rows: dict[str, dict[str, Any]], versus: list[tuple[str, str]], n_test: int | None = None
) -> dict[str, Any]:
    """``rows``: encoder name -> its eval row; ``versus``: (group, reference group) pairs to difference."""
    groups: dict[str, dict[int, dict[str, float]]] = {}
    for name, row in rows.items():
        group, seed = split_name(name)
        groups.setdefault(group, {})[seed] = figures(row)
    table = {
        g: {
            key: spread([by_seed[s][key] for s in sorted(by_seed) if key in by_seed[s]])
            for key, _ in METRICS
            if any(key in f for f in by_seed.values())
        }
        for g, by_seed in groups.items()
    }
    diffs = {}
    for a, b in versus:
        if a in groups and b in groups:
            ref = groups[b]
            if len(ref) == 1 and len(groups[a]) > 1:  # one reference (stage 1) for every seed
                ref = {s: next(iter(ref.values())) for s in groups[a]}
            diffs[f"{a} - {b}"] = paired(groups[a], ref)
    return {"n_test": n_test, "encoders": table, "differences": diffs}


def seed_mcnemar(eval_dir: Path, names: list[str], versus: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """Per paired seed, McNemar's exact test on per-image correctness (the smallest k of kNN, and
    the linear probe), read from the evaluations in ``eval_dir`` (``<name>.json``)."""
    evals = {n: json.loads((eval_dir / f"{n}.json").read_text()) for n in names if (eval_dir / f"{n}.json").exists()}
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for name, ev in evals.items():
        group, seed = split_name(name)
        groups.setdefault(group, {})[seed] = ev
    out: dict[str, list[dict[str, Any]]] = {}
    for a, b in versus:
        if a not in groups or b not in groups:
            continue
        ref = groups[b] if len(groups[b]) > 1 else {s: next(iter(groups[b].values())) for s in groups[a]}
        tests = []
        for seed in sorted(set(groups[a]) & set(ref)):
            ea, eb = groups[a][seed], ref[seed]
            k = sorted(ea.get("knn_correct", {}), key=int)[:1]
            pairs = [(f"kNN k={k[0]}", ea["knn_correct"][k[0]], eb.get("knn_correct", {}).get(k[0]))] if k else []
            pairs.append(("linear", ea.get("linear", {}).get("correct"), eb.get("linear", {}).get("correct")))
            for figure, bits_a, bits_b in pairs:
                if bits_a and bits_b and len(bits_a) == len(bits_b):
                    tests.append(
                        {
                            "seed": seed,
                            "figure": figure,
                            **mcnemar_exact(decode_correct(bits_a), decode_correct(bits_b)),
                        }
                    )
        out[f"{a} - {b}"] = tests
    return out


def mcnemar_md(tests: dict[str, list[dict[str, Any]]]) -> str:
    """The per-seed McNemar tests as markdown lines (one per pair and figure)."""
    lines = []
    for pair, rows in tests.items():
        for figure in dict.fromkeys(r["figure"] for r in rows):
            cells = [
                f"seed {r['seed']}: p = {r['p_value']:.2g} ({r['only_a']} vs {r['only_b']})"
                for r in rows
                if r["figure"] == figure
            ]
            lines.append(f"- {pair}, {figure}: " + "; ".join(cells))
    return (
        (
            "\nMcNemar's exact test per seed on the same test images (images right only with the first, "
            "only with the second):\n\n" + "\n".join(lines) + "\n"
        )
        if lines
        else ""
    )


def _logged(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def loss_trend(folder: Path, key: str = "loss") -> dict[str, Any] | None:
    """First and last tenth of one logged loss of a run (the rule of the report's verdicts)."""
    loss = [r[key] for r in _logged(folder) if isinstance(r.get(key), (int, float))]
    if not loss:
        return None
    t = trend(loss)
    return {
        "first": round(t.first, 3),
        "last": round(t.last, 3),
        "direction": t.direction,
        "noise": None if t.noise is None else round(t.noise, 3),
        "points": len(loss),
    }


def dis_curve(folder: Path, out_dim: int) -> dict[str, Any] | None:
    """First and last 10 % of a Gen-DINO run's disentanglement loss, beside ln K and its floor."""
    out = loss_trend(folder, "loss_dis")
    if out is None:
        return None
    out["uniform"] = round(math.log(out_dim), 3)
    floor = [r["loss_dis_floor"] for r in _logged(folder) if isinstance(r.get("loss_dis_floor"), (int, float))]
    if floor:
        out["floor_last"] = round(statistics.fmean(floor[-max(1, len(floor) // 10) :]), 3)
    return out


def _cell(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{s['mean']:.2f}" + (f" +- {s['sd']:.2f}" if s["sd"] is not None else "")


SE_COVERS = "the stage-3 seeds only (stage 1, the bank and the test set are shared)"


def markdown(summary: dict[str, Any], labels: dict[str, str], se_covers: str = SE_COVERS) -> str:
    enc = summary["encoders"]
    keys = [(k, lab) for k, lab in METRICS if any(k in t for t in enc.values())]
    lines = []
    if summary.get("n_test"):
        lines += [
            f"{summary['n_test']} test images: one image is {100 / summary['n_test']:.2f} points. The "
            f"interval covers {se_covers}, so a difference of a few test images with sd 0 is decided without "
            "being general.",
            "",
        ]
    lines += ["| encoder | seeds | " + " | ".join(lab for _, lab in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for g, t in enc.items():
        n = max(s["n"] for s in t.values())
        lines.append(f"| {labels.get(g, g)} | {n} | " + " | ".join(_cell(t.get(k)) for k, _ in keys) + " |")
    for name, d in summary["differences"].items():
        lines += [
            "",
            f"Paired difference, {name} (per seed; mean; sd; Student-t 95 % interval, n-1 df; "
            "two-sided p of the t-test and of the exact sign-flip test):",
            "",
            "| figure | per seed | mean | sd | 95 % interval | p (t) | p (sign-flip) | decided? |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k, lab in keys:
            if k not in d:
                continue
            s = d[k]
            sd = "-" if s["sd"] is None else f"{s['sd']:.2f}"
            ci = "-" if s.get("ci95") is None else f"{s['ci95'][0]:+.2f} to {s['ci95'][1]:+.2f}"
            p_t = "-" if s.get("p_t") is None else f"{s['p_t']:.3g}"
            p_sf = "-" if s.get("p_signflip") is None else f"{s['p_signflip']:.3g}"
            if s.get("ci95") is None:  # one seed: no spread to compare against
                verdict = "one seed: no interval"
            else:
                verdict = "yes" if s["decided"] else "no: the interval holds 0"
            if summary.get("n_test") and k in ACCURACIES:  # in test images: a 0.28-point "yes" reads as one image
                images = abs(s["mean"]) * summary["n_test"] / 100
                verdict += f" ({images:.1f} test image{'' if round(images, 1) == 1 else 's'})"
            lines.append(
                f"| {lab} | {', '.join(f'{v:+.2f}' for v in s['values'])} | {s['mean']:+.2f} | {sd} | "
                f"{ci} | {p_t} | {p_sf} | {verdict} |"
            )
        n = max((d[k]["n"] for k, _ in keys if k in d), default=0)
        if 1 < n <= 5:
            lines += [
                "",
                f"With {n} seeds the sign-flip test's smallest possible p is {2 / 2**n:.3g}: no result "
                "of this table can reach p < 0.05 by it.",
            ]
    return "\n".join(lines) + "\n"


def write_table(
    folder: Path,
    summary: dict[str, Any],
    labels: dict[str, str],
    extra_md: str = "",
    se_covers: str = SE_COVERS,
    head: str = "",
) -> Path:
    """``table.md`` and ``table.json`` in ``folder``; returns the markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "table.md"
    md.write_text(head + markdown(summary, labels, se_covers) + extra_md)
    (folder / "table.json").write_text(json.dumps(summary, indent=2) + "\n")
    return md
