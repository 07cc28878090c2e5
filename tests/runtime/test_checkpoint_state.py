"""Training state files: restore, refusals, one shape for every trainer.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gensis.errors import CheckpointError
from gensis.runtime.checkpoint import restore_state, save_state


def _run_with_checkpoint(tmp_path, state: dict) -> SimpleNamespace:
    path = tmp_path / "last.pt"
    save_state(path, state)
    return SimpleNamespace(last_checkpoint=path, check_stamp=lambda saved: None)


def test_restore_state_loads_onto_the_cpu_unless_told_and_returns_the_saved_step(tmp_path) -> None:
    """apply() gets the checkpoint's tensors on ``device``: the CPU by default, "meta" standing for a GPU
    when asked (a checkpoint saved on a GPU must not stay there, nor ignore the device asked for)."""
    run = _run_with_checkpoint(tmp_path, {"format": "gensis.test/1", "step": 7, "w": torch.ones(2)})
    seen = []
    assert restore_state(run, "gensis.test/1", "model", lambda state: seen.append(state["w"].device.type)) == 7
    assert (
        restore_state(run, "gensis.test/1", "model", lambda state: seen.append(state["w"].device.type), device="meta")
        == 7
    )
    assert seen == ["cpu", "meta"]


def test_restore_state_refusals_name_the_file_the_model_and_the_reason(tmp_path) -> None:
    """Another format, or weights that apply() rejects, is one CheckpointError line naming the
    checkpoint, the kind of model and (for a misfit) the first line of apply()'s error."""
    run = _run_with_checkpoint(tmp_path, {"format": "gensis.other/1", "step": 3})
    where = str(tmp_path / "last.pt")
    with pytest.raises(CheckpointError) as refused:
        restore_state(run, "gensis.test/1", "generator", lambda state: None)
    assert str(refused.value) == f"{where}: not a gensis generator checkpoint"

    def misfit(state: dict) -> None:
        raise RuntimeError("size mismatch for w\n  copying a param with shape [3]")

    with pytest.raises(CheckpointError) as refused:
        restore_state(run, "gensis.other/1", "autoencoder", misfit)
    assert str(refused.value) == f"{where}: does not fit this autoencoder (size mismatch for w)"


def test_every_trainer_checkpoint_has_one_shape_and_its_optimizer_is_refused_on_its_own_line(tmp_path) -> None:
    """save_training_state writes format, step, the model's parts, the optimizer and the run's stamp;
    restore_state loads the optimizer after the model, and an optimizer that does not fit is named as such."""
    from gensis.runtime.checkpoint import load_state, save_training_state

    w = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([w], lr=0.1)
    w.grad = torch.ones(2)
    optimizer.step()
    path = tmp_path / "last.pt"
    run = SimpleNamespace(last_checkpoint=path, stamp="run-1", check_stamp=lambda saved: None)
    save_training_state(run, "gensis.test/1", 5, {"w": w.detach().clone()}, optimizer)
    state = load_state(path)
    assert list(state) == ["format", "step", "w", "optimizer", "run"]
    assert (state["format"], state["step"], state["run"]) == ("gensis.test/1", 5, "run-1")
    save_training_state(SimpleNamespace(last_checkpoint=path, stamp=None), "gensis.test/1", 6, {}, optimizer)
    assert "run" not in load_state(path)

    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert restore_state(run, "gensis.test/1", "model", lambda state: None, optimizer=fresh) == 6
    assert fresh.state_dict()["state"][0]["step"] == 1  # the saved optimizer state, loaded
    two_groups = torch.optim.AdamW(
        [{"params": [torch.nn.Parameter(torch.zeros(2))]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}]
    )
    with pytest.raises(CheckpointError) as refused:
        restore_state(run, "gensis.test/1", "model", lambda state: None, optimizer=two_groups)
    assert str(refused.value).startswith(f"{path}: does not fit this optimizer (")


def test_a_pretrain_resume_loads_onto_the_device_asked_and_names_its_checkpoint(tmp_path) -> None:
    """restore_pretrain_state: the student's tensors reach the model on ``device`` ("meta" standing
    for a GPU); another run's format and a student that does not fit are named with the checkpoint."""
    from gensis.train.state import PRETRAIN_FORMAT, restore_pretrain_state

    seen: list[str] = []

    class Student:
        def load_state_dict(self, state: dict) -> None:
            if "bad" in state:
                raise RuntimeError("size mismatch for w\n  more")
            seen.append(state["w"].device.type)

    model = SimpleNamespace(student=Student(), load_extra_state=lambda state: None)
    run = _run_with_checkpoint(tmp_path, {"format": PRETRAIN_FORMAT, "step": 4, "student": {"w": torch.ones(2)}})
    assert restore_pretrain_state(run, model, None, torch.device("cpu")) == 4
    assert restore_pretrain_state(run, model, None, torch.device("meta")) == 4
    assert seen == ["cpu", "meta"]
    where = tmp_path / "last.pt"
    save_state(where, {"format": PRETRAIN_FORMAT, "step": 4, "student": {"bad": torch.ones(1)}})
    with pytest.raises(CheckpointError) as refused:
        restore_pretrain_state(run, model, None, torch.device("cpu"))
    assert str(refused.value) == f"{where}: does not fit this model (size mismatch for w)"
    save_state(where, {"format": "gensis.generator/1", "step": 4})
    with pytest.raises(CheckpointError) as refused:
        restore_pretrain_state(run, model, None, torch.device("cpu"))
    assert str(refused.value) == f"{where}: not a gensis pretrain checkpoint"
