"""The report's first lines: did each stage do its job? One verdict per stage, with its number.

* Stage 1 learned: DINO's loss (a cross-entropy over ``out_dim`` prototypes) ends well below
  ln(out_dim), its value for a uniform teacher. A loss within 5 % of it means the encoder
  barely trained (as in the first CPU-budget CIFAR-10 run: 7.25 against 7.62).
* The autoencoder (latent generators) keeps what the encoder sees: its reconstructions of
  held-out images find their source at least half as often as real stage-1 views do. A
  generated view is decoded by it, so it can be no more faithful than this.
* Stage 2 follows its condition: generated views find their source at least half as often as
  real stage-1 views do (:mod:`gensis.generator.faithfulness`), and far above chance. Below half
  the ceiling but over 10x chance, the views are conditioned but weaker than real ones.
* Stage 3: Gen-DINO against the control at equal epochs, and the disentanglement loss against
  its uniform value. One seed: a difference of a point or two is inside the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BARELY = 0.95  # a loss above 95 % of its uniform value: the stage barely learned
HALF_CEILING = 0.5
ABOVE_CHANCE = 10  # source top-1 this many times chance: the generator is conditioned


@dataclass(frozen=True)
class Verdict:
    stage: str
    ok: bool
    text: str


def _first_last(metrics: list[dict], key: str) -> tuple[float, float] | None:
    values = [m[key] for m in metrics if isinstance(m.get(key), (int, float))]
    return (values[0], values[-1]) if values else None


def stage1(metrics: list[dict], method: str, out_dim: int) -> Verdict:
    loss = _first_last(metrics, "loss")
    if loss is None:
        return Verdict("stage 1", False, "no training loss was logged")
    first, last = loss
    if method != "dino":
        return Verdict("stage 1", last < first, f"{method} loss {first:.3f} -> {last:.3f}")
    uniform = math.log(out_dim)
    ok = last < BARELY * uniform
    text = f"DINO loss {first:.2f} -> {last:.2f}, against {uniform:.2f} for a uniform teacher"
    knn = _first_last(metrics, "knn_top1_k20")
    if knn is not None:
        text += f"; online kNN k=20 {knn[1]:.1f} %"
    return Verdict("stage 1", ok, text + ("" if ok else ": the loss is still near its uniform value, so the "
                                          "encoder has learned little of what DINO can teach it; train longer"))


def stage2(quality: dict[str, Any] | None) -> Verdict:
    if not quality or not quality.get("sources"):
        return Verdict("stage 2", False, "the bank's quality was not measured")
    top1 = quality["retrieval_top1"]
    ceiling = quality.get("ceiling", {}).get("retrieval_top1")
    chance = quality.get("chance", {}).get("retrieval_top1", 0.0)
    text = (f"generated views find their source {top1:.1f} % of the time (real stage-1 views "
            f"{ceiling if ceiling is not None else '?'} %, chance {chance:.2f} %), median rank "
            f"{quality['retrieval_median_rank']}")
    if ceiling is None:
        return Verdict("stage 2", top1 > ABOVE_CHANCE * chance, text)
    ok = top1 >= HALF_CEILING * ceiling
    if not ok:
        conditioned = top1 > ABOVE_CHANCE * chance  # but with an encoder sharper than it can follow
        text += (": the views follow their source, but less closely than real stage-1 views, so stage 3 gets "
                 "harder positives than real pairs" if conditioned else
                 ": the views are not views of their source, so stage 3 pairs images with unrelated ones")
        text += "; train the generator longer (see its conditioning curves)"
    return Verdict("stage 2", ok, text)


def autoencoder(quality: dict[str, Any] | None) -> Verdict:
    if not quality:
        return Verdict("autoencoder", False, "its reconstructions were not measured")
    text = f"reconstructions of {quality['images']} held-out images: PSNR {quality['psnr_db']:.2f} dB"
    if "retrieval_top1" not in quality:
        return Verdict("autoencoder", True, text)
    top1, ceiling = quality["retrieval_top1"], quality.get("ceiling", {}).get("retrieval_top1")
    text += (f", cosine to the source {quality['cosine_to_source']:.3f}, source found {top1:.1f} % of the time "
             f"(real stage-1 views {ceiling if ceiling is not None else '?'} %)")
    ok = ceiling is None or top1 >= HALF_CEILING * ceiling
    if not ok:
        text += (": the decoder loses what the encoder sees, and every generated view goes through it; "
                 "train the autoencoder longer (autoencoder.train.epochs)")
    return Verdict("autoencoder", ok, text)


def stage3(results: dict[str, Any], gen_metrics: list[dict], out_dim: int) -> Verdict:
    gen, control = results.get("gen-dino"), results.get("control")
    parts, ok = [], True
    if gen and control:
        k = sorted(gen["knn_top1"], key=int)[0]
        d_knn = gen["knn_top1"][k] - control["knn_top1"][k]
        parts.append(f"Gen-DINO minus control: kNN k={k} {d_knn:+.2f}")
        if "linear" in gen and "linear" in control:
            parts.append(f"linear {gen['linear']['top1'] - control['linear']['top1']:+.2f} points (one seed)")
    dis = _first_last(gen_metrics, "loss_dis")
    if dis is not None:
        uniform = math.log(out_dim)
        learned = dis[1] < BARELY * uniform
        ok = ok and learned
        floor = _first_last(gen_metrics, "loss_dis_floor")
        parts.append(f"disentanglement loss {dis[0]:.2f} -> {dis[1]:.2f} (uniform {uniform:.2f}"
                     + (f", floor {floor[1]:.2f})" if floor else ")")
                     + ("" if learned else ": it stays near uniform, so the task teaches nothing"))
    if not parts:
        return Verdict("stage 3", False, "not evaluated")
    return Verdict("stage 3", ok, "; ".join(parts))


def verdicts(stages, quality: dict | None, results: dict[str, Any], metrics: dict[str, list[dict]],
             reconstruction: dict | None = None) -> list[Verdict]:
    out_dim = stages.pretrain.dino.out_dim
    ae = [autoencoder(reconstruction)] if getattr(stages, "autoencoder", None) is not None else []
    return [stage1(metrics.get("dino", []), stages.pretrain.method, out_dim), *ae, stage2(quality),
            stage3(results, metrics.get("gen-dino", []), stages.gen_dino.dino.out_dim)]
