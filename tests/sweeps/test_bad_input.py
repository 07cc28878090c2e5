"""Bad-input sweep: every command fed the wrong things ends with one line, exit code 2, no
traceback, and no file written before is lost or changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _refusal import assert_refused

import gensis


@pytest.fixture(scope="module")
def world(bad_world) -> dict[str, Path]:
    return bad_world  # built once per session in conftest.py


CASES = [
    # (argv with {placeholders}, fragment of the one-line message). A path named in a message is
    # written as its placeholder: every path holds the world's root (.../bad0/), so a bare word
    # such as "bad" or "missing" would be found in any message that names any path.
    ("pretrain data.path={root}/missing out={out}", "no such file or folder: {root}/missing"),
    ("pretrain data.path={empty} out={out}", "no images found in {empty}"),
    ("pretrain data.path={bad} out={out} data.cache_dir=null", "{bad}: 2 images, fewer than train.batch_size=256"),
    ("pretrain data.path={data} out={out} train.batch_sise=3", "unknown key 'train.batch_sise'"),
    ("pretrain data.path={data} out={out} train.epochs=0", "train.epochs"),
    (
        "pretrain data.path={data} out={out} preset=digits init_from={vit} train.batch_size=4",
        "{vit}: weights do not fit",
    ),
    (
        "pretrain data.path={data} out={out} preset=digits init_from={garbage} train.batch_size=4",
        "{garbage}: not a readable encoder file",
    ),
    (
        "pretrain data.path={data} out={out} gen.bank={root}/missing_bank train.batch_size=4",
        "no view bank at {root}/missing_bank",
    ),
    ("train-generator encoder={garbage} data.path={data} out={out}", "{garbage}: corrupt or not a safetensors"),
    ("train-generator encoder={enc} data.path={data} out={out} model.p_uncond=2", "model.p_uncond"),
    ("generate generator={gen} data_path={data} out={out} alpha_range=[0.9,0.1]", "alpha_range"),
    ("generate generator={garbage} data_path={data} out={out}", "{garbage}: corrupt or not a safetensors"),
    ("generate generator={gen} encoder={vit} data_path={data} out={out}", "{vit}: not the encoder the generator"),
    (
        "generate generator={other_gen} data_path={data} out={bank} views_per_image=1 steps=1",
        "{bank}: bank written by another generator",
    ),
    ("generate generator={gen} data_path={data} out={out} shards=[7]", "shards: [7] outside [0, 1)"),
    ("eval-generator bank={bank} encoder={vit} data_path={data}", "{vit}: not the encoder"),
    ("eval-generator bank={root}/missing_bank encoder={enc} data_path={data}", "no view bank at {root}/missing_bank"),
    ("show generator={gen} data_path={root}/missing out={out}", "no such file or folder: {root}/missing"),
    ("eval encoder={enc} train_path={bad} test_path={data} cache_dir=null", "{bad} has no labels"),
    ("embed encoder={enc} data_path={empty} out={out}.safetensors", "no images found in {empty}"),
    ("run data.path={root}/missing out={out}", "data.path: {root}/missing does not exist"),
    ("run data.path={data} out={out} gen_dino.gen.p_gen=3", "gen.p_gen"),
    ("tile slides={empty} out={out}", "found in {empty}"),
    ("tile slides={empty} out={out} tile_size=-1", "tile_size"),
]


@pytest.mark.parametrize("argv,fragment", CASES, ids=[c[0].split()[0] + ":" + c[1] for c in CASES])
def test_one_line_error_and_nothing_lost(world, capsys, tmp_path, argv: str, fragment: str) -> None:
    assert_refused(world, capsys, tmp_path / "r", argv, fragment)


def test_awkward_but_readable_images_are_used(world, tmp_path) -> None:
    """1x1 px, 8000x8000 px, 16-bit, CMYK and palette images all become RGB at the resolution."""
    data = gensis.load_images(str(world["odd"]), 16, cache_dir=None)
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    out = gensis.embed(
        encoder=str(world["enc"]), data_path=str(world["odd"]), out=str(tmp_path / "e.safetensors"), cache_dir=None
    )
    assert out.is_file()
