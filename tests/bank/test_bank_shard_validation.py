"""A bank shard with the right header and wrong contents is refused when read, naming the file
and what is wrong, instead of a KeyError, an IndexError or training on garbage."""

from __future__ import annotations

import pytest
import torch
from _synthetic import write_bank
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gensis.bank import ViewBank
from gensis.bank.store import shard_path
from gensis.errors import CheckpointError
from gensis.train.view_sources import BankViews


def _tampered(root, change) -> None:
    """Shard 0 rewritten with other tensors under its own, valid header metadata."""
    path = str(shard_path(root, 0))
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    change(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)


def _set(key, fn):
    return lambda t: t.__setitem__(key, fn(t[key]))


CASES = [
    (lambda t: t.pop("alpha"), "tensors ['images', 'partner', 'seed', 'source']"),
    (_set("source", lambda x: x.int()), "'source' is torch.int32, expected torch.int64"),
    (_set("source", lambda x: x + 100), "outside this shard's 0..39"),
    (_set("partner", lambda x: torch.where(x >= 0, x + 1000, x)), "partners -1..10"),
    (_set("images", lambda x: x[:, :, :4]), "'images' shaped"),
    (_set("alpha", lambda x: x * 3), "alpha outside [0, 1]"),
    (_set("partner", lambda x: torch.full_like(x, -1)), "each source must have 2 views and 1 interpolations"),
]


@pytest.mark.parametrize("change, message", CASES)
def test_a_shard_with_wrong_contents_is_refused(tmp_path, change, message) -> None:
    write_bank(tmp_path / "bank", 60, 8)
    _tampered(tmp_path / "bank", change)
    with pytest.raises(CheckpointError) as err:
        ViewBank(tmp_path / "bank").entries(3)
    assert str(err.value).startswith(f"{shard_path(tmp_path / 'bank', 0)}: does not hold what index.json describes")
    assert message in str(err.value)
    with pytest.raises(CheckpointError, match="does not hold what index.json describes"):
        BankViews(str(tmp_path / "bank"), 60, 8)  # what stage 3 reads


def test_an_untouched_bank_reads(tmp_path) -> None:
    write_bank(tmp_path / "bank", 60, 8)
    assert ViewBank(tmp_path / "bank").views_of(45).shape == (2, 3, 8, 8)
