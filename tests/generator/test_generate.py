"""gensis generate and the view bank: layout, determinism, resume after a crash, bad input."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from _synthetic import tiny_generator

import gensis
from gensis.bank import ViewBank
from gensis.bank import store as bank_store
from gensis.config.schema import ModelConfig
from gensis.errors import CheckpointError, ConfigError
from gensis.models.backbones import build_encoder
from gensis.runtime.checkpoint import export_encoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("genbank")
    return (root, *tiny_generator(root))


def _generate(trained, out, **extra):
    root, _, data, gen = trained
    settings = {
        "generator": str(gen),
        "data_path": str(data),
        "out": str(out),
        "views_per_image": 2,
        "interpolations_per_image": 1,
        "shard_size": 5,
        "steps": 2,
        "batch_size": 7,
        "progress": False,
        "cache_dir": None,
        **extra,
    }
    return gensis.generate(settings)


def test_bank_layout_and_reader(tmp_path, trained) -> None:
    result = _generate(trained, tmp_path / "bank")
    assert result.n_images == 12 * 3
    bank = ViewBank(tmp_path / "bank")
    assert bank.complete and bank.index.n_shards == 3 and bank.index.resolution == 8
    assert bank.views_of(7).shape == (2, 3, 8, 8) and bank.views_of(7).dtype == torch.uint8
    imgs, partners, alphas = bank.interpolations_of(7)
    assert imgs.shape == (1, 3, 8, 8) and partners.item() != 7 and 0 <= partners.item() < 12
    assert 0.3 <= alphas.item() <= 0.7
    again = _generate(trained, tmp_path / "bank")  # complete: nothing to do
    assert again.n_images == 0


def test_killed_generation_resumes_to_the_same_bank(tmp_path, trained, monkeypatch) -> None:
    _generate(trained, tmp_path / "full")
    real_write = bank_store.write_shard
    calls = {"n": 0}

    def crash_after_one(root, index, shard, tensors):
        if calls["n"] == 1:
            raise KeyboardInterrupt  # killed while generating the second shard
        calls["n"] += 1
        real_write(root, index, shard, tensors)

    monkeypatch.setattr("gensis.generator.generate.write_shard", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        _generate(trained, tmp_path / "part")
    assert json.loads((tmp_path / "part" / "index.json").read_text())["shards"] == [0]
    monkeypatch.setattr("gensis.generator.generate.write_shard", real_write)
    _generate(trained, tmp_path / "part")
    full, part = ViewBank(tmp_path / "full"), ViewBank(tmp_path / "part")
    assert full.index == part.index
    for i in range(12):
        a, b = full.entries(i), part.entries(i)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_bank_from_another_generator_and_bad_settings(tmp_path, trained) -> None:
    root, enc, data, _ = trained
    _generate(trained, tmp_path / "bank")
    before = (tmp_path / "bank" / "index.json").read_text()
    with pytest.raises(CheckpointError, match="written by another generator"):
        ViewBank(tmp_path / "bank", generator_sha256="0" * 64)
    other = gensis.train_generator(
        {
            "model.spec": "tiny",
            "encoder": str(enc),
            "data.path": str(data),
            "out": str(tmp_path / "gen2"),
            "train.batch_size": 6,
            "train.epochs": 1,
            "train.seed": 1,
            "train.progress": False,
            "data.cache_dir": None,
        }
    )
    with pytest.raises(CheckpointError, match="bank written by another generator"):
        _generate(trained, tmp_path / "bank", generator=str(other.generator_path))
    assert (tmp_path / "bank" / "index.json").read_text() == before  # nothing lost
    with pytest.raises(ConfigError, match="alpha_range must satisfy 0.0 <= min <= max <= 1.0"):
        _generate(trained, tmp_path / "b2", alpha_range=[0.5, 1.2])
    wrong = tmp_path / "other_encoder.safetensors"
    export_encoder(
        wrong,
        build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 8),
        {"mean": "[0.5, 0.5, 0.5]", "std": "[0.5, 0.5, 0.5]"},
    )
    with pytest.raises(CheckpointError, match="not the encoder the generator was trained on"):
        _generate(trained, tmp_path / "b3", encoder=str(wrong))


def test_frechet_distance_matches_closed_form() -> None:
    from gensis.generator.quality import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Independent axes: per axis (mu_a - mu_b)^2 + (sd_a - sd_b)^2 with sample statistics.
    b = a * torch.tensor([2.0, 1.0, 0.5]) + torch.tensor([3.0, 0.0, -1.0])
    sa, sb = a.double().std(0), b.double().std(0)
    ma, mb = a.double().mean(0), b.double().mean(0)
    # Cross-covariances of a and b are not zero off-diagonal, so compare with a loose bound
    # on the diagonal formula and an exact check on the 1-D case.
    expected_1d = float((ma[0] - mb[0]) ** 2 + (sa[0] - sb[0]) ** 2)
    assert frechet_distance(a[:, :1], b[:, :1]) == pytest.approx(expected_1d, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(float(((ma - mb) ** 2 + (sa - sb) ** 2).sum()), rel=0.05)


def test_quality_report_of_generate_and_eval_generator(tmp_path, trained) -> None:
    root, enc, data, _ = trained
    result = _generate(trained, tmp_path / "bank")
    q = result.quality
    assert q["sources"] == 12 and q["views"] == 24
    # Every figure again by hand, from the npz's own images and the bank's views, through the
    # encoder with its recorded normalization: the report measures these views of these sources.
    import numpy as np

    from gensis.generator.quality import frechet_distance
    from gensis.runtime.checkpoint import load_encoder

    encoder = load_encoder(enc)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in encoder.info.normalization())

    def embed(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.normalize(encoder((images.float() / 255 - mean) / std), dim=-1)

    real = torch.from_numpy(np.load(data)["images"]).permute(0, 3, 1, 2)
    bank = ViewBank(tmp_path / "bank")
    views = torch.stack([bank.views_of(i) for i in range(12)])  # (12 sources, 2 views, 3, 8, 8)
    real_emb, view_emb = embed(real), embed(views.flatten(0, 1)).view(12, 2, -1)
    src_emb = real_emb[:, None].expand_as(view_emb)
    nearest = (view_emb @ real_emb.T).argmax(-1)  # (12, 2): the real image each view is nearest to
    px = views.float() / 255
    assert q["fidelity_cosine"] == pytest.approx(float((view_emb * src_emb).sum(-1).mean()), abs=2e-4)
    assert q["retrieval_top1"] == pytest.approx(
        float((nearest == torch.arange(12)[:, None]).float().mean() * 100), abs=0.01
    )
    assert q["diversity_cosine"] == pytest.approx(float(1 - (view_emb[:, 0] * view_emb[:, 1]).sum(-1).mean()), abs=2e-4)
    assert q["diversity_pixel_rmse"] == pytest.approx(
        float((px[:, 0] - px[:, 1]).square().flatten(1).mean(1).sqrt().mean()), abs=2e-4
    )
    assert q["source_pixel_rmse"] == pytest.approx(
        float((px - real[:, None].float() / 255).square().flatten(2).mean(2).sqrt().mean()), abs=2e-4
    )
    assert q["frechet_distance"] == pytest.approx(
        frechet_distance(real_emb, view_emb.flatten(0, 1)), rel=1e-3, abs=1e-3
    )
    assert q["chance"]["images"] == 12 and q["chance"]["retrieval_top1"] == round(100 / 12, 3)
    again = gensis.eval_generator(
        bank=str(tmp_path / "bank"), encoder=str(enc), data_path=str(data), cache_dir=None, out=str(tmp_path / "q.json")
    )
    assert again.pop("bank_shards") == {"done": 3, "total": 3}
    assert again == q == json.loads((tmp_path / "bank" / "quality.json").read_text())


def test_eval_generator_says_when_the_bank_is_incomplete(tmp_path, trained, caplog) -> None:
    root, enc, data, _ = trained
    _generate(trained, tmp_path / "part", shards=[1])  # 5 of the 12 sources
    with caplog.at_level(logging.WARNING, logger="gensis.generate"):
        q = gensis.eval_generator(bank=str(tmp_path / "part"), encoder=str(enc), data_path=str(data), cache_dir=None)
    assert q["bank_shards"] == {"done": 1, "total": 3} and q["sources"] == 5
    assert [r.getMessage() for r in caplog.records if r.name == "gensis.generate" and r.levelno == logging.WARNING] == [
        f"{tmp_path / 'part'} is incomplete (1 of 3 shards): these figures are of the finished shards' 5 sources only"
    ]


def test_show_writes_view_and_interpolation_grids(tmp_path, trained) -> None:
    from PIL import Image

    _, _, data, gen = trained
    paths = gensis.show(
        generator=str(gen),
        data_path=str(data),
        out=str(tmp_path / "pics"),
        rows=3,
        views=4,
        alphas=5,
        steps=2,
        tile_px=16,
        cache_dir=None,
    )
    assert [p.name for p in paths] == ["views.png", "interpolations.png"]
    views = Image.open(paths[0])
    assert views.size == (5 * 18 + 6, 3 * 18)  # 1 real + gap + 4 generated, 3 rows
    interp = Image.open(paths[1])
    assert interp.size == (7 * 18 + 12, 3 * 18)  # real + gap + 5 alphas + gap + real
    # The real source is drawn as it is: the first tile is the first picked image, 2x nearest.
    from gensis.data.loader import subset_indices

    src = gensis.load_images(data, 8, cache_dir=None).images[subset_indices(12, 6)[0]]
    tile = torch.tensor(list(views.convert("RGB").crop((1, 1, 17, 17)).getdata())).T.reshape(3, 16, 16)
    assert torch.equal(tile.to(torch.uint8), src.repeat_interleave(2, 1).repeat_interleave(2, 2))


def test_generate_selected_shards_then_the_rest(tmp_path, trained) -> None:
    _generate(trained, tmp_path / "full")
    first = _generate(trained, tmp_path / "part", shards=[1])
    assert first.n_images == 5 * 3 and not ViewBank(tmp_path / "part").complete
    assert first.quality["sources"] == 5  # only generated shards are measured
    _generate(trained, tmp_path / "part")
    full, part = ViewBank(tmp_path / "full"), ViewBank(tmp_path / "part")
    assert part.complete and all(torch.equal(full.views_of(i), part.views_of(i)) for i in range(12))
    with pytest.raises(ConfigError, match=r"shards: \[7\] outside \[0, 3\)"):
        _generate(trained, tmp_path / "x", shards=[7])
    assert not (tmp_path / "x").exists()


def test_a_one_image_bank_records_the_interpolations_it_holds(tmp_path, trained) -> None:
    _generate(trained, tmp_path / "one", max_images=1)  # asks for 1 interpolation per image
    bank = ViewBank(tmp_path / "one")
    assert bank.index.n_sources == 1 and bank.index.interpolations_per_image == 0
    entries = bank.entries(0)
    assert (entries["partner"] < 0).all() and len(entries["partner"]) == 2  # its 2 views, nothing else
    _generate(trained, tmp_path / "one", max_images=1)  # the same command resumes it (nothing to do)
