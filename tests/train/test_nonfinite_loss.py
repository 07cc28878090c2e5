"""A NaN loss stops training with one line that names the last checkpoint only when there is one."""

from __future__ import annotations

import pytest
from _synthetic import write_npz

import gensis
from gensis.errors import GensisError
from gensis.ssl.dino import DINO

# 48 images, batch 16: 3 steps per epoch, a checkpoint after each epoch
TINY = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "dino.out_dim": 32,
    "dino.hidden_dim": 32,
    "dino.bottleneck_dim": 16,
    "train.batch_size": 16,
    "train.epochs": 2,
    "train.knn_every": 0,
    "train.progress": False,
}


@pytest.mark.parametrize("bad_step, checkpoint", [(2, False), (5, True)])
def test_nan_loss_names_a_checkpoint_only_when_one_exists(tmp_path, monkeypatch, bad_step, checkpoint) -> None:
    forward, calls = DINO.forward, []

    def nan_at(self, *args, **kwargs):
        loss, emb = forward(self, *args, **kwargs)
        calls.append(1)
        return (loss * float("nan"), emb) if len(calls) == bad_step else (loss, emb)

    monkeypatch.setattr(DINO, "forward", nan_at)
    out = tmp_path / "run"
    with pytest.raises(GensisError) as err:
        gensis.pretrain({**TINY, "data.path": str(write_npz(tmp_path / "d.npz", 48)), "out": str(out)})
    message = str(err.value)
    assert message.startswith(f"loss is nan at step {bad_step - 1} (epoch ")
    assert (out / "checkpoints" / "last.pt").is_file() == checkpoint
    if checkpoint:
        assert f"the last good checkpoint is kept at {out / 'checkpoints' / 'last.pt'}" in message
    else:
        assert "no checkpoint had been written yet" in message and "last.pt" not in message
