"""``gensis run``: the whole Gen-SIS pipeline in one folder, one stage after another.

    <out>/pretrain/          stage 1: DINO with hand-crafted augmentations
    <out>/autoencoder/       the latent space, trained on the same images (latent generators
                             without generator.model.vae only)
    <out>/embeddings.safetensors   stage-1 embeddings of the training images (with ids)
    <out>/generator/         stage 2: embedding-conditioned diffusion model
    <out>/bank/              stage 2: self-augmented views and interpolations
    <out>/pictures/          what the generator makes (views.png, interpolations.png)
    <out>/gen-dino/          stage 3: Gen-DINO from the bank
    <out>/control/           stage 3's recipe without generated views (the fair baseline; with
                             stage3_init=scratch and stage 1's recipe, stage 1 is that run)
    <out>/eval/*.json        kNN and linear probe of every encoder
    <out>/report.md, report.html, plots/

Every stage is skipped when its output exists and was made with the same settings, resumed
when it was interrupted, and refused (one line, nothing touched) when the folder holds a
stage run with other settings. All stage configs are built and checked before any work.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from gensis.config.autoencoder import TrainAutoencoderConfig
from gensis.config.overrides import flatten
from gensis.config.paths import Role
from gensis.config.schema import EmbedConfig, PipelineConfig, PretrainConfig, ShowConfig, TrainGeneratorConfig
from gensis.errors import ConfigError, by_rule
from gensis.pipeline.stage_configs import StageConfigs, _build, stage_configs
from gensis.runtime import lock
from gensis.runtime.guards import config_paths, guard_paths, refuse_inputs_inside
from gensis.runtime.io import RESULT_MARK, atomic_write_text, file_sha256
from gensis.runtime.products import exported_path, marker_state
from gensis.runtime.run_folder import CONFIG_MARK, RunFolder
from gensis.runtime.signals import GracefulStop, Interrupted

log = logging.getLogger("gensis.run")


def stage3_variant(cfg: PipelineConfig, base: PretrainConfig, name: str, overrides: dict[str, Any]) -> Path:
    """Train (or reuse) a variant of a stage-3 run in ``<out>/<name>``; returns its encoder.

    ``overrides`` are dotted keys on ``base``'s resolved config (no preset is re-applied),
    e.g. ``{"gen.lambda_dis": 0.0}`` for an ablation, ``{"train.epochs": 30}`` for a longer baseline.
    """
    from gensis.train.pretrain import run_pretrain

    tree = {**flatten(base.model_dump()), **overrides, "out": str(Path(cfg.out) / name)}
    variant = _build(name, PretrainConfig, tree, use_presets=False)
    run = RunFolder(variant.out)
    _training_stage(name, variant, run.exported_encoder, run_pretrain)
    return run.exported_encoder


def _refuse_other_settings(name: str, cfg) -> None:
    run = RunFolder(cfg.out)
    if not run.config_path.exists():
        return
    changed = run.config_changes(cfg)
    if changed:
        raise ConfigError(
            by_rule(
                "finished-run",
                f"{name}: {run.root} holds a run with other settings "
                f"({', '.join(changed[:5])}); use another out= or remove that folder",
            )
        )


def _refuse_foreign_config(root: Path) -> None:
    """A pipeline folder's config.yaml is gensis's (marked, or next to its pipeline.json)."""
    path = root / "config.yaml"
    if path.exists() and not RunFolder(root).config_is_gensis() and marker_state(root, PipelineConfig.product) is None:
        raise ConfigError(f"{path}: not written by gensis; it is never overwritten, choose another out=")


def _data_now(cfg: PipelineConfig, stages: StageConfigs) -> dict:
    """The training data's fingerprint and count, and the eval data listed: read before the
    pipeline's folder exists, so that data gensis refuses (a zip with a name twice, no images)
    is refused before any side effect, not after hours of training."""
    from gensis.data.loader import check_listing, load_training_images

    data = load_training_images(stages.pretrain.data, stages.pretrain.data.resolution, progress=False)
    if cfg.data.eval_path is not None:
        check_listing(cfg.data.eval_path, require_labels=True, max_image_bytes=cfg.data.max_image_bytes)
    return {"fingerprint": data.fingerprint(), "images": len(data)}


def _same_data(cfg: PipelineConfig, now: dict, was: dict | None) -> dict:
    """``now`` (:func:`_data_now`), refused by name when it differs from what the folder's stages
    were trained on (``pipeline.json`` records it; older folders did not)."""
    if isinstance(was, dict) and was.get("fingerprint") not in (None, now["fingerprint"]):
        n_was = int(was.get("images", 0))
        diff = now["images"] - n_was
        change = (
            f"{abs(diff)} image(s) {'added' if diff > 0 else 'removed'}, {n_was} -> {now['images']}"
            if diff
            else f"the same {n_was} images by count, other content"
        )
        raise ConfigError(
            by_rule(
                "fingerprint",
                f"data.path={cfg.data.path}: the data changed since {cfg.out} was "
                f"made from it ({change}); its stages would mix two data sets: give another out= "
                f"(or remove {cfg.out}) to run the pipeline on the new data",
            )
        )
    return now


def _training_stage(name: str, cfg, exported: Path, train_fn) -> str:
    """Run, resume or skip one training stage whose run folder is ``cfg.out``."""
    run = RunFolder(cfg.out)
    if exported.exists() and run.config_path.exists():
        _refuse_other_settings(name, cfg)
        return "skipped"
    if not run.last_checkpoint.exists():
        train_fn(cfg, resume=False)
        return "ran"
    _refuse_other_settings(name, cfg)
    train_fn(cfg, resume=True)
    return "resumed"


def _guard_stages(cfg: PipelineConfig, stages: StageConfigs) -> None:
    """Every stage by the output guard's rules, and no input the user gives inside ``out``."""
    guard_paths(cfg)  # out: new, empty or gensis's; the data outside it
    sections = {
        "pretrain": stages.pretrain,
        "autoencoder": stages.autoencoder,
        "generator": stages.generator,
        "generate": stages.generate,
        "show": stages.show,
        "gen_dino": stages.gen_dino,
        "control": stages.control,
    }
    for section, stage in sections.items():
        if stage is None:
            continue
        given = flatten(getattr(cfg, "gen_dino" if section == "control" else section))
        inputs = {
            f"{section}.{k}": v for k, (role, v) in config_paths(stage).items() if role is Role.INPUT and k in given
        }
        refuse_inputs_inside(cfg.out, inputs, "where gensis run writes its stages")
        guard_paths(stage)  # each stage locks its own folder when it starts


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    stages = stage_configs(cfg)
    _guard_stages(cfg, stages)
    _refuse_foreign_config(Path(cfg.out))
    with GracefulStop() as stop:
        return _run_stages(cfg, stages, stop)


# long: the pipeline's stages in order, each a few lines, so the order reads top to bottom
def _run_stages(cfg: PipelineConfig, stages: StageConfigs, stop: GracefulStop) -> dict[str, Any]:
    from gensis.eval.embed_io import run_embed
    from gensis.generator.generate import run_generate
    from gensis.generator.show import run_show
    from gensis.models.backbones import check_model
    from gensis.pipeline.evaluate import evaluate_stage
    from gensis.pipeline.report import write_report
    from gensis.train.generator import run_train_generator
    from gensis.train.pretrain import run_pretrain

    for name, stage in (
        ("pretrain", stages.pretrain),
        ("autoencoder", stages.autoencoder),
        ("train-generator", stages.generator),
        ("gen-dino", stages.gen_dino),
        ("control", stages.control),
    ):
        if stage is not None:
            _refuse_other_settings(name, stage)  # before anything in the folder changes
    for stage in (stages.pretrain, stages.gen_dino, stages.control):
        if stage is not None:  # an unknown backbone is refused before the folder exists
            check_model(stage.model, stage.data.resolution)
    data_now = _data_now(cfg, stages)
    root = Path(cfg.out)
    lock.hold(root)  # one pipeline per folder; each stage also locks its own
    product = PipelineConfig.product
    state_path = root / str(product.marker)
    state = marker_state(root, product) if state_path.exists() or state_path.is_symlink() else {}
    if state is None:
        raise ConfigError(
            by_rule(
                "foreign-file",
                f"{state_path}: not a pipeline state gensis wrote; it is never overwritten, choose another out=",
            )
        )
    state.setdefault("stages", {})
    state["data"] = _same_data(cfg, data_now, state.get("data"))  # before a stage is reused on other images
    atomic_write_text(root / "config.yaml", CONFIG_MARK + _yaml(cfg))

    def record(name: str, fn) -> None:
        t0 = time.perf_counter()
        how = fn()
        seconds = time.perf_counter() - t0
        entry = state["stages"].setdefault(name, {"seconds": 0.0})
        if how != "skipped":  # compute spent on the stage's output, over interruptions
            entry["seconds"] = round(seconds + (entry["seconds"] if how == "resumed" else 0.0), 1)
        entry["last"] = how
        atomic_write_text(state_path, json.dumps({**state, RESULT_MARK[0]: RESULT_MARK[1]}, indent=1) + "\n")
        log.info("stage %s: %s (%.1f s)", name, how, seconds)
        if stop.signal is not None:  # caught by the stage after its last safe point: stop here
            raise Interrupted(stop.signal, f"after stage {name} ({how}); rerun the same command to continue")

    pretrain_run = RunFolder(stages.pretrain.out)
    record(
        "pretrain", lambda: _training_stage("pretrain", stages.pretrain, pretrain_run.exported_encoder, run_pretrain)
    )
    if stages.autoencoder is not None:
        from gensis.train.autoencoder import run_train_autoencoder

        done = exported_path(stages.autoencoder.out, TrainAutoencoderConfig.product)
        record("autoencoder", lambda: _training_stage("autoencoder", stages.autoencoder, done, run_train_autoencoder))
    record("embed", lambda: _embed_stage(root, pretrain_run.exported_encoder, cfg, run_embed))
    gen_export = exported_path(stages.generator.out, TrainGeneratorConfig.product)
    record(
        "train-generator", lambda: _training_stage("train-generator", stages.generator, gen_export, run_train_generator)
    )
    record("generate", lambda: "skipped" if run_generate(stages.generate).n_images == 0 else "ran")
    if stages.show is not None:
        record("show", lambda: _show_stage(stages.show, gen_export, run_show))
    gen_run = RunFolder(stages.gen_dino.out)
    record("gen-dino", lambda: _training_stage("gen-dino", stages.gen_dino, gen_run.exported_encoder, run_pretrain))
    encoders = {"dino": pretrain_run.exported_encoder, "gen-dino": gen_run.exported_encoder}
    if stages.control is not None:
        control_run = RunFolder(stages.control.out)
        record(
            "control", lambda: _training_stage("control", stages.control, control_run.exported_encoder, run_pretrain)
        )
        encoders = {"dino": encoders["dino"], "control": control_run.exported_encoder, "gen-dino": encoders["gen-dino"]}
    results: dict[str, Any] = {}
    if cfg.data.eval_path is not None:

        def eval_all() -> str:
            done = [evaluate_stage(name, path, cfg, root / "eval", results) for name, path in encoders.items()]
            return "ran" if any(done) else "skipped"

        record("eval", eval_all)
    else:
        log.info("no data.eval_path: the encoders are not evaluated")
    report, judged, waits = write_report(root, cfg, stages, state, results)
    return {
        "out": str(root),
        "report": str(report),
        "eval": results,
        "stages": state["stages"],
        "verdicts": [v.as_dict() for v in judged],
        "data_wait": waits,
    }


def _embed_stage(root: Path, encoder: Path, cfg: PipelineConfig, run_embed) -> str:
    from safetensors import safe_open

    out = root / "embeddings.safetensors"
    digest = file_sha256(encoder)
    if out.exists():
        with safe_open(str(out), framework="pt") as f:
            if (f.metadata() or {}).get("encoder_sha256") == digest:
                return "skipped"
    run_embed(
        EmbedConfig(
            encoder=str(encoder),
            data_path=cfg.data.path,
            out=str(out),
            device=cfg.device,
            cache_dir=cfg.data.cache_dir,
            max_images=cfg.data.max_images,
            progress=cfg.progress,
            max_image_bytes=cfg.data.max_image_bytes,
        )
    )
    return "ran"


def _show_stage(cfg: ShowConfig, generator: Path, run_show) -> str:
    marker = Path(cfg.out) / "generator.sha256"
    digest = file_sha256(generator)
    if marker.exists() and marker.read_text().strip() == digest and (Path(cfg.out) / cfg.product.holds[0]).exists():
        return "skipped"
    run_show(cfg)
    atomic_write_text(marker, digest + "\n")
    return "ran"


def _yaml(cfg: PipelineConfig) -> str:
    from gensis.config.overrides import to_yaml

    return to_yaml(cfg)
