"""The converged comparison's evidence kept in the repository (issue 37): per-epoch curves from a
run's records, one folder per fresh start, and no link or FIFO read in place of a file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from converged_record import epoch_curve, save  # noqa: E402


def test_the_curve_has_one_row_an_epoch_with_its_mean_loss_last_clock_and_online_knn() -> None:
    metrics = (
        "\n".join(
            json.dumps(r)
            for r in [
                {"step": 5, "epoch": 0, "loss": 8.0, "lr": 0.1, "time": 10.0},
                {"step": 10, "epoch": 0, "loss": 6.0, "lr": 0.2, "time": 20.0},
                {"step": 15, "epoch": 1, "loss": 5.0, "loss_dis": 2.0, "time": 30.0},
                {"step": 15, "epoch": 1, "knn_top1_k20": 71.5, "time": 31.0},
            ]
        )
        + '\n{"step": 20, "epoch": 2, "lo'  # the last line cut short by a kill
    )
    assert epoch_curve(metrics) == [
        {"epoch": 0, "loss": 7.0, "step": 10, "time": 20.0},
        {"epoch": 1, "loss": 5.0, "loss_dis": 2.0, "knn_top1_k20": 71.5, "step": 15, "time": 31.0},
    ]


def _experiment(exp: Path, start: str) -> None:
    (exp / "comparison" / "eval").mkdir(parents=True)
    (exp / "comparison" / "pretrain").mkdir()
    (exp / "HISTORY").write_text(f"{start} started at abc, seeds 0,1: a fresh start\n")
    (exp / "REVISION").write_text("abc\n")
    (exp / "comparison" / "table.md").write_text("Seeds in: 1 of 2\n")
    (exp / "comparison" / "eval" / "dino.json").write_text('{"knn_top1": {"20": 72.3}}')
    (exp / "comparison" / "pretrain" / "metrics.jsonl").write_text(
        '{"step": 1, "epoch": 0, "loss": 3.0, "time": 1.0}\n'
    )


def test_each_fresh_start_keeps_its_own_folder_and_a_save_replaces_only_its_own(tmp_path) -> None:
    record = tmp_path / "record"
    first, second = tmp_path / "first", tmp_path / "second"
    _experiment(first, "2026-12-07T09:26:02Z")
    _experiment(second, "2026-12-08T10:00:00Z")
    kept = save(first, record)
    assert kept == record / "2026-12-07T092602Z"
    assert (kept / "table.md").read_text() == "Seeds in: 1 of 2\n"
    assert json.loads((kept / "eval" / "dino.json").read_text()) == {"knn_top1": {"20": 72.3}}
    assert (kept / "curves" / "pretrain.jsonl").read_text() == '{"epoch": 0, "loss": 3.0, "step": 1, "time": 1.0}\n'
    assert not (kept / "result.jsonl").exists()  # not there yet: not written

    (first / "comparison" / "table.md").write_text("Seeds in: 2 of 2\n")
    save(first, record)
    save(second, record)
    assert sorted(p.name for p in record.iterdir()) == ["2026-12-07T092602Z", "2026-12-08T100000Z"]
    assert (kept / "table.md").read_text() == "Seeds in: 2 of 2\n"


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_link_or_fifo_in_place_of_a_kept_file_is_refused_in_one_line(tmp_path, kind) -> None:
    exp = tmp_path / "exp"
    _experiment(exp, "2026-12-07T09:26:02Z")
    table = exp / "comparison" / "table.md"
    table.unlink()
    if kind == "symlink":
        (tmp_path / "elsewhere.md").write_text("not the table")
        table.symlink_to(tmp_path / "elsewhere.md")
    else:
        os.mkfifo(table)
    with pytest.raises(SystemExit, match=r"table.md: a (symbolic link|FIFO) where gensis writes a file of its own"):
        save(exp, tmp_path / "record")
    assert list((tmp_path / "record").iterdir()) == []  # no half-written copy left behind


def test_a_folder_without_history_is_no_experiment(tmp_path) -> None:
    with pytest.raises(SystemExit, match="HISTORY is missing or empty"):
        save(tmp_path, tmp_path / "record")
