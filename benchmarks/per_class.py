"""Where a paired difference comes from, class by class (issue 37).

Two figures per class of a pipeline folder of `gensis_scratch.py`:
- the accuracy of each encoder pair (`dino:gen-dino`, ...) on the same test images, from the
  per-image correctness its evaluation recorded (`eval/<name>.json`): kNN k=20 and the linear probe;
- the class consistency (and source top-1) of the view bank's generated views of that class's sources, beside real
  stage-1 views of the same sources (the ceiling), judged by stage 1's encoder
  (`gensis.eval.faithfulness.class_consistency`: the k nearest real images mostly carry the source's label).

    python benchmarks/per_class.py --pipeline ../issue37-comparison/comparison --pairs dino:gen-dino,dino-s1:gen-dino-s1

The training and test images are the pipeline's own (its config.yaml); a bank made from other images is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from gensis.bank.store import ViewBank
from gensis.config.overrides import build_config
from gensis.config.schema import PipelineConfig
from gensis.data import load_images
from gensis.data.loader import load_training_images
from gensis.errors import GensisError
from gensis.eval.faithfulness import as_data, ceiling_augment, class_consistency, real_views, retrieval
from gensis.eval.features import encoder_embeddings
from gensis.pipeline import stage_configs
from gensis.runtime.checkpoint import load_encoder
from gensis.runtime.run_folder import RunFolder
from gensis.runtime.trust import read_owned

MAX_BYTES = 16 * 2**20  # an evaluation's JSON is a few hundred kB at most


def class_accuracy(correct: str, labels: list[int]) -> dict[int, float]:
    """% right per class, from an evaluation's per-image correctness string ('1' right, '0' wrong)."""
    if len(correct) != len(labels):
        raise ValueError(f"{len(correct)} correctness marks for {len(labels)} test images")
    out = {}
    for c in sorted(set(labels)):
        marks = [m for m, y in zip(correct, labels, strict=True) if y == c]
        out[c] = round(100 * marks.count("1") / len(marks), 2)
    return out


def _evaluation(path: Path) -> dict:
    try:
        return json.loads(read_owned(path, MAX_BYTES))
    except ValueError as e:
        raise ValueError(f"{path}: not an evaluation's JSON ({e})") from None


def pair_rows(folder: Path, pairs: list[tuple[str, str]], labels: list[int]) -> list[str]:
    rows = []
    for a, b in pairs:
        evals = [folder / "eval" / f"{n}.json" for n in (a, b)]
        ea, eb = (_evaluation(path) for path in evals)
        for figure, get in (
            ("kNN k=20", lambda e: e["knn_correct"]["20"]),
            ("linear", lambda e: e["linear"]["correct"]),
        ):
            try:
                acc_a, acc_b = class_accuracy(get(ea), labels), class_accuracy(get(eb), labels)
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(
                    f"{evals[0]} / {evals[1]}: no per-image {figure} correctness for these test images ({e})"
                ) from None
            cells = " | ".join(f"{acc_a[c]:.2f} -> {acc_b[c]:.2f} ({acc_b[c] - acc_a[c]:+.2f})" for c in acc_a)
            rows.append(f"| {b} - {a} | {figure} | {cells} |")
    return rows


def bank_rows(stages: Any) -> list[str]:
    encoder = load_encoder(RunFolder(stages.pretrain.out).exported_encoder)
    real = load_training_images(stages.pretrain.data, encoder.info.resolution, progress=False, require_labels=True)
    bank = ViewBank(stages.generate.out)
    bank.check_data(real.fingerprint(), str(stages.pretrain.data.path), "data.path")  # sources line up with labels
    labels = torch.as_tensor(real.labels)
    real_emb = encoder_embeddings(encoder, real)
    src = torch.arange(bank.index.n_sources)
    views = torch.stack([bank.views_of(int(s))[0] for s in src])  # the first view of each source
    gen_emb = encoder_embeddings(encoder, as_data(views))
    cfg, _ = ceiling_augment(encoder.info.augment, real.resolution)
    ceiling_emb = encoder_embeddings(encoder, as_data(real_views(real.batch(src), cfg, 1)[:, 0]))
    rows = []
    for c in sorted(set(labels.tolist())):
        mine = src[labels[src] == c]
        cells = []
        for emb in (gen_emb, ceiling_emb):
            top1 = retrieval(emb[mine], mine, real_emb)["retrieval_top1"]
            cells.append(f"{class_consistency(emb[mine], mine, real_emb, labels):.2f} / {top1:.2f}")
        rows.append(f"| {real.class_names[c] if real.class_names else c} | {len(mine)} | {' | '.join(cells)} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pipeline", type=Path, required=True, help="a gensis_scratch.py pipeline folder")
    p.add_argument("--pairs", required=True, help="comma-separated BASE:OTHER encoder names of its eval/")
    args = p.parse_args()
    pairs = [tuple(pair.split(":", 1)) for pair in args.pairs.split(",")]
    if any(len(pair) != 2 for pair in pairs):
        p.error("--pairs: each pair is BASE:OTHER, e.g. dino:gen-dino")
    try:
        report(args.pipeline, pairs)  # type: ignore[arg-type]
    except (GensisError, OSError, ValueError) as e:  # bad input: one line, no traceback
        sys.exit(f"per_class: {e}")


def report(folder: Path, pairs: list[tuple[str, str]]) -> None:
    """Both tables, from the pipeline's own config (its training images, test images and bank)."""
    cfg = build_config(PipelineConfig, {}, use_presets=False, config_file=folder / "config.yaml")
    if cfg.data.eval_path is None:
        raise ValueError(f"{folder / 'config.yaml'}: data.eval_path is not set (no test images were evaluated)")
    test = load_images(cfg.data.eval_path, 32, require_labels=True, cache_dir=cfg.data.cache_dir, progress=False)
    labels = [int(y) for y in test.labels]  # only the labels are read; 32 px keeps the decode cheap
    names = test.class_names or sorted(set(labels))
    print("| pair | figure | " + " | ".join(f"class {n}: base -> other (diff)" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    print("\n".join(pair_rows(folder, pairs, labels)))
    print(
        "\n| source class | sources | generated views: class consistency / source top-1 (%) | real stage-1 views (%) |"
    )
    print("|---|---:|---:|---:|")
    print("\n".join(bank_rows(stage_configs(cfg))))


if __name__ == "__main__":
    main()
