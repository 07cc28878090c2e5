"""``gensis run`` end to end on tiny data: every stage, the report, skip on rerun, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _synthetic import SMALL_DINO, write_npz  # the `pipeline` fixture: tests/conftest.py

import gensis
from gensis.cli import main
from gensis.errors import ConfigError


def test_every_stage_and_the_report(pipeline) -> None:
    settings, result = pipeline
    root = result["out"]
    from pathlib import Path

    root = Path(root)
    for rel in (
        "pretrain/exported/encoder.safetensors",
        "embeddings.safetensors",
        "generator/exported/generator.safetensors",
        "bank/index.json",
        "bank/quality.json",
        "pictures/views.png",
        "pictures/interpolations.png",
        "gen-dino/exported/encoder.safetensors",
        "control/exported/encoder.safetensors",
        "eval/dino.json",
        "eval/gen-dino.json",
        "eval/control.json",
        "report.md",
        "report.html",
        "plots/loss.png",
        "plots/loss_dis.png",
        "plots/generator_loss.png",
        "pipeline.json",
        "config.yaml",
    ):
        assert (root / rel).is_file(), rel
    assert set(result["eval"]) == {"dino", "control", "gen-dino"}
    assert result["eval"]["gen-dino"]["method"] == "gen-dino" and result["eval"]["control"]["method"] == "dino"
    # each exported encoder records the steps of its own stage
    assert result["eval"]["gen-dino"]["trained_steps"] == 2
    report = (root / "report.md").read_text()
    assert "Gen-DINO (stage 3)" in report and "plots/loss.png" in report and "pictures/views.png" in report
    assert "<img src='pictures/interpolations.png'" in (root / "report.html").read_text()
    # one verdict per stage, the same words in report.md, report.html and the returned result
    import html

    from gensis.pipeline.verdict import format_verdict

    assert [v["stage"] for v in result["verdicts"]] == ["stage 1", "stage 2", "stage 3"]
    for v in result["verdicts"]:
        assert (
            format_verdict(v, markdown=True) in report and html.escape(v["text"]) in (root / "report.html").read_text()
        )
    # the figures in the verdicts and tables are the measured ones, not just their headings
    quality = json.loads((root / "bank" / "quality.json").read_text())
    stage2 = result["verdicts"][1]
    assert (
        f"find their source {quality['retrieval_top1']:.1f} % of the time (real stage-1 views "
        f"{quality['ceiling']['retrieval_top1']} %, chance {quality['chance']['retrieval_top1']:.2f} %), "
        f"median rank {quality['retrieval_median_rank']}"
    ) in stage2["text"]
    rows = [line for line in report.splitlines() if line.startswith("| source retrieval top-1 (%) |")]
    assert rows == [
        f"| source retrieval top-1 (%) | {quality['retrieval_top1']} "
        f"| {quality['ceiling']['retrieval_top1']} "
        f"| {quality['ceiling_crop']['retrieval_top1']} | {quality['chance']['retrieval_top1']} "
        f"| {quality['versus_ceiling'].get('retrieval_top1', '-')} |"
    ]
    assert quality["sources"] == 64 and quality["chance"]["retrieval_top1"] == pytest.approx(100 / 64, abs=1e-3)
    for name, label in (("dino", "DINO (stage 1)"), ("gen-dino", "Gen-DINO (stage 3)")):
        r = result["eval"][name]
        row = (
            f"| {label} | {r['trained_steps']} | "
            + " | ".join(f"{r['knn_top1'][k]:.2f}" for k in sorted(r["knn_top1"], key=int))
            + f" | {r['linear']['top1']:.2f} |"
        )
        assert row in report, row
    stage3 = result["verdicts"][-1]
    assert "Gen-DINO minus control, one seed, same test images: kNN k=20" in stage3["text"]
    assert "McNemar p = " in stage3["text"] and "disentanglement loss" in stage3["text"]
    gen, ctl = result["eval"]["gen-dino"], result["eval"]["control"]
    assert len(gen["knn_correct"]["20"]) == len(ctl["linear"]["correct"]) == gen["n_test"] == 32
    assert gen["knn_correct"]["20"].count("1") == round(gen["knn_top1"]["20"] * 32 / 100)
    # 32 test images and two 2-step encoders: nothing can be beyond the noise, and a 2-point loss
    # curve cannot fall beyond a noise it cannot measure
    assert stage3["status"] in ("none", "warning") and "beats its control" not in stage3["text"]
    stages = result["stages"]
    assert [stages[s]["last"] for s in ("pretrain", "train-generator", "gen-dino", "control")] == ["ran"] * 4
    assert all(v["seconds"] >= 0 for v in stages.values())


def test_rerun_skips_every_stage(pipeline) -> None:
    settings, first = pipeline
    again = gensis.run(settings)
    assert {k: v["last"] for k, v in again["stages"].items()} == {k: "skipped" for k in first["stages"]}
    assert again["eval"]["gen-dino"]["knn_top1"] == first["eval"]["gen-dino"]["knn_top1"]
    # compute seconds of skipped stages are kept, so the report's compute comparison stays true
    assert again["stages"]["pretrain"]["seconds"] == first["stages"]["pretrain"]["seconds"]


def test_changed_settings_are_refused_before_any_work(pipeline, capsys, tmp_path) -> None:
    settings, _ = pipeline
    changed = {**settings, "pretrain": {**SMALL_DINO, "train.epochs": 2}}
    saved = (Path(settings["out"]) / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"pretrain: .* other settings \(train.epochs\)"):
        gensis.run(changed)
    assert (Path(settings["out"]) / "config.yaml").read_text() == saved  # the refused run changed nothing
    with pytest.raises(ConfigError, match="gen_dino: unknown key 'gen.p_gem'"):
        gensis.run({**settings, "gen_dino": {"gen.p_gem": 0.5}})
    code = main(["run", f"out={tmp_path / 'new'}", "data.path=missing.npz", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gensis: error: data.path:") and "missing.npz" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_changed_data_is_named_as_changed_data(pipeline, tmp_path) -> None:
    """One image added: refused as a data change before any stage is reused (not as "other settings")."""
    settings, _ = pipeline
    path = Path(settings["data.path"])
    saved, state = path.read_bytes(), (Path(settings["out"]) / "pipeline.json").read_text()
    try:
        write_npz(path, 65, seed=0)
        with pytest.raises(ConfigError, match=r"the data changed since .* \(1 image\(s\) added, 64 -> 65\)"):
            gensis.run(settings)
    finally:
        path.write_bytes(saved)
    assert (Path(settings["out"]) / "pipeline.json").read_text() == state


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("pretrain", "out", "elsewhere"),
        ("generator", "encoder", "other.safetensors"),
        ("generate", "out", "b"),
        ("generate", "data_path", "other.npz"),
        ("show", "generator", "g"),
        ("gen_dino", "gen.bank", "b"),
        ("gen_dino", "data.path", "other.npz"),
        ("gen_dino", "init_from", "x"),
        ("autoencoder", "encoder", "e"),
    ],
)
def test_keys_the_pipeline_sets_itself_are_refused_before_any_work(tmp_path, capsys, section, key, value) -> None:
    data = write_npz(tmp_path / "d.npz", 16)
    code = main(["run", "-q", f"out={tmp_path / 'run'}", f"data.path={data}", f"{section}.{key}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"gensis: error: {section}.{key}: set by gensis run itself"), err
    assert not (tmp_path / "run").exists()


def test_gen_dino_on_the_fly_from_the_pipelines_generator(pipeline, tmp_path) -> None:
    settings, result = pipeline
    from pathlib import Path

    gen = Path(result["out"]) / "generator"
    run = gensis.pretrain(
        {
            "preset": "digits",
            **SMALL_DINO,
            "data.path": settings["data.path"],
            "data.cache_dir": None,
            "train.progress": False,
            "out": str(tmp_path / "fly"),
            "gen.generator": str(gen),
            "gen.steps": 2,
            "gen.p_gen": 1.0,
            "train.max_steps": 1,
        }
    )
    records = [json.loads(x) for x in (tmp_path / "fly" / "metrics.jsonl").read_text().splitlines()]
    assert run.steps == 1 and records[0]["generated_fraction"] == 1.0 and "loss_dis" in records[0]


def test_the_saved_config_rebuilds_the_same_stages(pipeline) -> None:
    """``gensis run --config <out>/config.yaml`` means the same run (the preset keeps its resolution)."""
    from pathlib import Path

    from gensis.config.overrides import build_config
    from gensis.config.schema import PipelineConfig
    from gensis.pipeline import stage_configs

    settings, result = pipeline
    direct = stage_configs(build_config(PipelineConfig, settings, use_presets=False))
    saved = stage_configs(
        build_config(PipelineConfig, {}, use_presets=False, config_file=Path(result["out"]) / "config.yaml")
    )
    assert saved == direct and saved.pretrain.data.resolution == 16


def test_a_moved_pipeline_folder_reruns_as_a_no_op(pipeline, tmp_path) -> None:
    """issue 38: its stages' configs hold the old absolute paths of the pipeline's own folders; a
    rerun from the new place was refused as "other settings"."""
    import shutil

    settings, first = pipeline
    moved = tmp_path / "moved"
    shutil.copytree(settings["out"], moved)
    again = gensis.run({**settings, "out": str(moved)})
    assert {k: v["last"] for k, v in again["stages"].items()} == {k: "skipped" for k in first["stages"]}


def test_every_training_stage_says_how_long_it_waited_for_data(pipeline) -> None:
    from pathlib import Path

    from gensis.runtime.run_folder import RunFolder

    _, result = pipeline
    root = Path(result["out"])
    for stage in ("pretrain", "generator", "gen-dino", "control"):
        waits = [r["data_wait"] for r in RunFolder(root / stage).read_metrics() if "data_wait" in r]
        assert waits and all(0.0 <= w <= 1.0 for w in waits), stage
    table = [line for line in (root / "report.md").read_text().splitlines() if line.startswith("| pretrain |")]
    assert len(table) == 1 and table[0].rstrip(" |").endswith("%")
    assert "| stage | last run | compute (s) | waiting for data |" in (root / "report.md").read_text()
    from gensis.pipeline.report import format_data_wait

    assert set(result["data_wait"]) == {"pretrain", "train-generator", "gen-dino", "control"}
    assert format_data_wait(result).startswith("waiting for data (share of training time): stage 1 ")


def test_data_wait_is_the_share_of_wall_time_spent_in_the_loader(monkeypatch) -> None:
    from gensis.runtime import data_wait as dw

    clock = [0.0]
    monkeypatch.setattr(dw.time, "perf_counter", lambda: clock[0])

    def loader():
        for i in range(4):
            clock[0] += 3.0  # 3 s to decode each batch
            yield i

    wait = dw.DataWait()
    for _ in wait.timed(loader()):
        clock[0] += 1.0  # 1 s of model work per batch
        if clock[0] == 8.0:
            assert wait.share() == 0.75  # two batches: 6 s of 8 waiting
    clock[0] += 4.0  # after the loop: 4 s of other work (a checkpoint)
    assert wait.share() == 0.5  # since the last reading: 6 s of 12
    assert wait.share("bar") == 12 / 20  # a second reader keeps its own window
