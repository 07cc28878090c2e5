"""The report's first lines: did each stage do its job? One verdict per stage, with its numbers.

Each verdict is OK, a WARNING, or (stage 3) "no measurable difference"; the rules of
:mod:`gensis.eval.significance` decide what is beyond the noise, and every verdict names
the numbers it used.

* Stage 1 learned: DINO's loss (a cross-entropy over ``out_dim`` prototypes) fell beyond its
  step-to-step noise and ends well below ln(out_dim), its value for a uniform teacher. A
  loss within 5 % of it means the encoder barely trained (as in the first CPU-budget
  CIFAR-10 run: 7.25 against 7.62). It has converged, or is still learning, by the rule of
  :mod:`gensis.eval.convergence` (loss and online kNN flat over the last fifth and quarter);
  still learning is a WARNING, since a stage-3 comparison on it measures the length of training.
* The autoencoder (latent generators) keeps what the encoder sees: its reconstructions of
  held-out images find their source at least half as often as real stage-1 views do. A
  generated view is decoded by it, so it can be no more faithful than this.
* Stage 2 follows its condition and makes new images: generated views find their source at
  least half as often as real stage-1 views do (:mod:`gensis.eval.faithfulness`), far
  above chance; they are not copies of their source (in pixels, they differ from it and from
  each other by at least a fifth of what real stage-1 views do); and the conditioning gap did
  not fall over training.
* Stage 3: Gen-DINO against its baseline at equal epochs, on the same test images: McNemar's
  exact test on per-image correctness (kNN and linear). The baseline is the control (stage 3's
  recipe without generated views), or stage 1 itself when stage 3 starts from scratch with
  stage 1's recipe (the paper's comparison: DINO and Gen-DINO, each from scratch). OK only when
  Gen-DINO is better beyond the noise, a WARNING when it is worse, and "no measurable
  difference" otherwise. The disentanglement loss must fall beyond its noise (towards its
  floor), not merely end below its uniform value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gensis.eval.convergence import convergence
from gensis.eval.significance import ALPHA, Trend, decode_correct, mcnemar_exact, trend

BARELY = 0.95  # a loss above 95 % of its uniform value: the stage barely learned
HALF_CEILING = 0.5
ABOVE_CHANCE = 10  # source top-1 this many times chance: the generator is conditioned
# A view that differs from its source (or from its sibling views) by under a fifth of what a
# real stage-1 view does is a near copy: real views differ by a crop, a flip and a colour jitter,
# while JPEG noise and a faithful redraw of the same tissue stay far above a fifth of that.
COPY_SHARE = 0.2
# Fewer held-out images or sources than this cannot tell a working stage from a broken one: with 2
# held-out images a "median rank 5 against 7" decided an autoencoder whose cosine was negative.
MIN_EVIDENCE = 20
MIN_PSNR_DB = 10.0  # below this a reconstruction is noise (a mid-grey image scores about 8 dB on tissue)
Status = Literal["ok", "warning", "none"]
LABELS = {"ok": "OK", "warning": "WARNING", "none": "NO MEASURABLE DIFFERENCE"}


@dataclass(frozen=True)
class Verdict:
    stage: str
    status: Status
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return LABELS[self.status]

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def format_verdict(v: Verdict | dict[str, str], markdown: bool = False) -> str:
    """One line per verdict, the same words in report.md, report.html and the console."""
    if isinstance(v, dict):
        v = Verdict(v["stage"], v["status"], v["text"])  # type: ignore[arg-type]
    if markdown:
        label = f"**{v.label}**" if v.status == "warning" else v.label
        return f"- {label} **{v.stage}**: {v.text}"
    return f"{v.label} {v.stage}: {v.text}"


def _status(ok: bool) -> Status:
    return "ok" if ok else "warning"


def _curve(metrics: list[dict], key: str) -> Trend | None:
    values = [float(m[key]) for m in metrics if isinstance(m.get(key), (int, float))]
    return trend(values) if values else None


def _fell(t: Trend) -> bool:
    """Fell beyond its noise (a curve too short to weigh its noise is no evidence; see _too_short)."""
    return t.direction == "falls"


def _too_short(t: Trend, what: str) -> str | None:
    """Words for a curve with too few points to tell learning from noise: such a run is no evidence
    that the stage works (a 2-step stage 1 read OK before, from two noisy values)."""
    if t.direction != "too few points":
        return None
    return (
        f"the {what} was logged at only {t.points} points, too few to weigh its noise, so this is no "
        "evidence that it learned; train longer or lower train.log_every"
    )


def stage1(metrics: list[dict], method: str, out_dim: int) -> Verdict:
    loss = _curve(metrics, "loss")
    if loss is None:
        return Verdict("stage 1", "warning", "no training loss was logged")
    short = _too_short(loss, "loss")
    if method != "dino":
        fell = _fell(loss)
        why = short or "the loss did not fall beyond its noise; train longer"
        return Verdict("stage 1", _status(fell), f"{method} loss {loss.words(3)}" + ("" if fell else ": " + why))
    uniform = math.log(out_dim)
    text = f"DINO loss {loss.words()}, against {uniform:.2f} for a uniform teacher"
    knn = _curve(metrics, "knn_top1_k20")
    if knn is not None:
        text += f"; online kNN k=20 {knn.last:.1f} %"
    if short:
        return Verdict("stage 1", "warning", text + ": " + short)
    if not _fell(loss):
        return Verdict(
            "stage 1",
            "warning",
            text + f": the loss {'rose' if loss.direction == 'rises' else 'did not fall'}"
            " over training, so the encoder learned little; check the learning rate, or train longer",
        )
    if loss.last >= BARELY * uniform:
        return Verdict(
            "stage 1",
            "warning",
            text + ": the loss is still near its uniform value, so the encoder has "
            "learned little of what DINO can teach it; train longer",
        )
    conv = convergence(metrics, out_dim)
    text += f"; {conv.words()}"
    if conv.status == "still learning":
        return Verdict(
            "stage 1",
            "warning",
            text + ": stage 2 and 3 stand on an encoder that is still changing, so "
            "a stage-3 comparison on it measures the length of training; train longer",
        )
    return Verdict("stage 1", "ok", text)


def _copying(quality: dict[str, Any]) -> str | None:
    """Words for a bank of near copies, judged against the real-view ceiling; None when not."""
    ceiling = quality.get("ceiling", {})
    for key, what in (("source_pixel_rmse", "from their source"), ("diversity_pixel_rmse", "from each other")):
        got, real = quality.get(key), ceiling.get(key)
        if isinstance(got, (int, float)) and isinstance(real, (int, float)) and real > 0 and got < COPY_SHARE * real:
            return (
                f"the views differ {what} by a pixel RMSE of {got:.3f}, under {COPY_SHARE:.0%} of real stage-1 "
                f"views' {real:.3f}: they are near copies, so stage 3 learns little from them"
            )
    return None


def stage2(quality: dict[str, Any] | None, gen_metrics: list[dict] | None = None) -> Verdict:
    if not quality or not quality.get("sources"):
        return Verdict("stage 2", "warning", "the bank's quality was not measured")
    top1 = quality["retrieval_top1"]
    ceiling = quality.get("ceiling", {}).get("retrieval_top1")
    few = _too_little_evidence(int(quality["sources"]), "sources measured")
    chance = quality.get("chance", {}).get("retrieval_top1", 0.0)
    text = (
        f"generated views find their source {top1:.1f} % of the time (real stage-1 views "
        f"{ceiling if ceiling is not None else '?'} %, chance {chance:.2f} %), median rank "
        f"{quality['retrieval_median_rank']}"
    )
    problems = [few] if few else []
    if ceiling is None:
        ok = top1 > ABOVE_CHANCE * chance
        if not ok:
            problems.append(f"under {ABOVE_CHANCE}x chance, and no real-view ceiling was measured")
    else:
        ok = top1 >= HALF_CEILING * ceiling
        if not ok:
            conditioned = top1 > ABOVE_CHANCE * chance  # but with an encoder sharper than it can follow
            problems.append(
                "the views follow their source, but less closely than real stage-1 views, so stage 3 "
                "gets harder positives than real pairs"
                if conditioned
                else "the views are not views of their source, so stage 3 pairs images with unrelated ones"
            )
    for key, what in (("source_pixel_rmse", "pixel RMSE to the source"), ("diversity_pixel_rmse", "between views")):
        if isinstance(quality.get(key), (int, float)):
            real = quality.get("ceiling", {}).get(key)
            text += f"; {what} {quality[key]:.3f}" + (
                f" (real views {real:.3f})" if isinstance(real, (int, float)) else ""
            )
    copies = _copying(quality)
    if copies:
        problems.append(copies)
    gap = _curve(gen_metrics or [], "cond_gap_mid")
    if gap is not None:
        text += f"; conditioning gap at mid noise (%) {gap.words(1)}"
        if gap.direction == "falls":
            problems.append("the conditioning gap fell over training: the generator is losing its condition")
    if problems:
        text += ": " + "; ".join(problems) + "; train the generator longer (see its conditioning curves)"
    return Verdict("stage 2", _status(not problems), text)


def _too_little_evidence(n: int, what: str) -> str | None:
    if n < MIN_EVIDENCE:
        return (
            f"only {n} {what}: at least {MIN_EVIDENCE} are needed to tell a working stage from a broken "
            "one, so this is no evidence either way; give more images"
        )
    return None


def autoencoder(quality: dict[str, Any] | None) -> Verdict:
    if not quality:
        return Verdict("autoencoder", "warning", "its reconstructions were not measured")
    text = f"reconstructions of {quality['images']} held-out images: PSNR {quality['psnr_db']:.2f} dB"
    floors = [_too_little_evidence(int(quality["images"]), "held-out images")]
    if quality["psnr_db"] < MIN_PSNR_DB:
        floors.append(f"a PSNR under {MIN_PSNR_DB:g} dB is noise, not a reconstruction")
    cosine = quality.get("cosine_to_source")
    if isinstance(cosine, (int, float)) and cosine <= 0:
        floors.append("the encoder sees nothing of the source in the reconstruction (cosine <= 0)")
    if "retrieval_top1" in quality:
        text += (
            f", cosine to the source {quality['cosine_to_source']:.3f}, source found "
            f"{quality['retrieval_top1']:.1f} % of the time (real stage-1 views "
            f"{quality.get('ceiling', {}).get('retrieval_top1', '?')} %)"
        )
    if any(floors):
        return Verdict(
            "autoencoder",
            "warning",
            text
            + ": "
            + "; ".join(f for f in floors if f)
            + "; train the autoencoder longer (autoencoder.train.epochs)",
        )
    if "retrieval_top1" not in quality:
        return Verdict("autoencoder", "ok", text)
    top1, ceiling = quality["retrieval_top1"], quality.get("ceiling", {}).get("retrieval_top1")
    rank, ceiling_rank = quality.get("retrieval_median_rank"), quality.get("ceiling", {}).get("retrieval_median_rank")
    if ceiling == 0 and rank is not None and ceiling_rank is not None:
        # real views are never found first either: top-1 cannot tell, the median rank can
        text += (
            f"; real views are not found first either, so the median rank decides: {rank} against "
            f"{ceiling_rank} for real views"
        )
        ok = rank <= ceiling_rank / HALF_CEILING
    else:
        ok = ceiling is None or top1 >= HALF_CEILING * ceiling
    if not ok:
        text += (
            ": the decoder loses what the encoder sees, and every generated view goes through it; "
            "train the autoencoder longer (autoencoder.train.epochs)"
        )
    return Verdict("autoencoder", _status(ok), text)


# The baseline by the name of its encoder: (its name, how a sentence refers to it).
BASELINE_WORDS = {"control": ("control", "its control"), "dino": ("DINO from scratch (stage 1)",) * 2}


def _compare(
    name: str, diff: float, gen_bits: str | None, control_bits: str | None, base: str = "its control"
) -> tuple[Status | None, str]:
    """One figure of Gen-DINO minus its baseline: its status by McNemar, and its words."""
    if gen_bits is None or control_bits is None or len(gen_bits) != len(control_bits):
        return None, f"{name} {diff:+.2f} (no per-image results to test)"
    t = mcnemar_exact(decode_correct(gen_bits), decode_correct(control_bits))
    status: Status = "none" if t["p_value"] >= ALPHA else ("ok" if t["only_a"] > t["only_b"] else "warning")
    return status, (
        f"{name} {diff:+.2f} points ({t['only_a']} test images right only with Gen-DINO, "
        f"{t['only_b']} only with {base}, McNemar p = {t['p_value']:.2g})"
    )


def stage3(results: dict[str, Any], gen_metrics: list[dict], out_dim: int, baseline: str | None = "control") -> Verdict:
    gen, control = results.get("gen-dino"), results.get(baseline) if baseline else None
    name, base = BASELINE_WORDS[baseline or "control"]
    parts: list[str] = []
    figures: list[Status | None] = []
    if gen and control:
        k = sorted(gen["knn_top1"], key=int)[0]
        s, words = _compare(
            f"kNN k={k}",
            gen["knn_top1"][k] - control["knn_top1"][k],
            gen.get("knn_correct", {}).get(k),
            control.get("knn_correct", {}).get(k),
            base,
        )
        figures.append(s)
        parts.append(f"Gen-DINO minus {name}, one seed, same test images: " + words)
        if "linear" in gen and "linear" in control:
            s, words = _compare(
                "linear",
                gen["linear"]["top1"] - control["linear"]["top1"],
                gen["linear"].get("correct"),
                control["linear"].get("correct"),
                base,
            )
            figures.append(s)
            parts.append(words)
    dis = _curve(gen_metrics, "loss_dis")
    dis_learned, dis_short = True, None
    if dis is not None:
        dis_short = _too_short(dis, "disentanglement loss")
        dis_learned = _fell(dis)
        floor = _curve(gen_metrics, "loss_dis_floor")
        parts.append(
            f"disentanglement loss {dis.words()} (uniform {math.log(out_dim):.2f}"
            + (f", floor {floor.last:.2f})" if floor else ")")
        )
    if not parts:
        return Verdict("stage 3", "warning", "not evaluated")
    text = "; ".join(parts)
    if "warning" in figures:
        return Verdict("stage 3", "warning", text + f": Gen-DINO is below {base} beyond the noise")
    if dis_short:
        return Verdict("stage 3", "warning", text + ": " + dis_short)
    if not dis_learned:
        assert dis is not None
        return Verdict(
            "stage 3",
            "warning",
            text + f": the disentanglement loss {'rose' if dis.direction == 'rises' else 'did not fall'}"
            ", so the task teaches nothing",
        )
    if not figures:
        return Verdict("stage 3", "none", text + ": no control was evaluated, so there is nothing to compare against")
    if "ok" in figures:
        return Verdict("stage 3", "ok", text + f": Gen-DINO beats {base} beyond the noise")
    why = "within the noise" if None not in figures else "not testable"
    return Verdict("stage 3", "none", text + f": no measurable difference between Gen-DINO and {base} ({why})")


def verdicts(
    stages,
    quality: dict | None,
    results: dict[str, Any],
    metrics: dict[str, list[dict]],
    reconstruction: dict | None = None,
) -> list[Verdict]:
    out_dim = stages.pretrain.dino.out_dim
    ae = [autoencoder(reconstruction)] if getattr(stages, "autoencoder", None) is not None else []
    return [
        stage1(metrics.get("dino", []), stages.pretrain.method, out_dim),
        *ae,
        stage2(quality, metrics.get("generator", [])),
        stage3(results, metrics.get("gen-dino", []), stages.gen_dino.dino.out_dim, stages.baseline),
    ]
