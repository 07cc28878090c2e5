"""Runs written before the training loop moved to gensis.train (issue 25) resume as before.

tests/sweeps/legacy holds a stage-1 and a stage-3 run made by the earlier code (tests/sweeps/legacy/README.md),
each stopped after 2 of its 4 steps, and the sha256 of the encoder that the earlier code exported
when the same runs were not stopped. Resumed now, each must export that very file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import gensis

LEGACY = Path(__file__).parent / "legacy"
sys.path.insert(0, str(LEGACY))
from make_fixtures import STAGE1  # noqa: E402  (the settings the runs were made with)

THREADS = 2  # the expected files were made with 2 CPU threads; float sums split otherwise differ in the last bit


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Iterator[Path]:
    root = tmp_path / "legacy"
    shutil.copytree(LEGACY, root)
    monkeypatch.chdir(root)  # the runs record relative paths
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # so the test holds under OMP_NUM_THREADS=1 and on other core counts
    yield root
    torch.set_num_threads(before)


@pytest.mark.parametrize("run", ["stage1", "stage3"])
def test_a_run_of_the_earlier_code_resumes_to_the_same_encoder(legacy: Path, run: str) -> None:
    settings = {**STAGE1, "data.path": "images.npz", "out": run}
    if run == "stage3":
        settings.update(
            {"init_from": "source", "init_full": True, "gen.bank": "bank", "gen.p_gen": 0.5, "gen.lambda_dis": 1.0}
        )
    result = gensis.pretrain(settings, resume=True)
    expected = json.loads((legacy / "expected.json").read_text())[run]
    assert result.steps == 4
    assert hashlib.sha256(result.encoder_path.read_bytes()).hexdigest() == expected
