"""The autoencoder trained on the user's images: it learns, saves and loads, resumes exactly,
and the generator that uses it records it and refuses another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _synthetic import random_encoder, write_npz
from diffusers import AutoencoderKL

import gensis
from gensis.autoencoder import autoencoder_digest, build_autoencoder, save_autoencoder
from gensis.autoencoder.latent import load_vae
from gensis.autoencoder.quality import psnr, reconstruct
from gensis.config.autoencoder import AutoencoderModelConfig
from gensis.data import load_images
from gensis.errors import GensisError

SMALL = {
    "model.block_out_channels": [8, 16],
    "model.latent_channels": 4,
    "train.crop_size": 8,
    "train.batch_size": 8,
    "train.warmup_steps": 5,
    "train.log_every": 5,
    "train.eval_every": 0,
    "train.progress": False,
    "data.cache_dir": None,
    "data.resolution": 16,
}


def digits_npz(path: Path, n: int) -> Path:
    """n real handwritten digits (scikit-learn's, 16 px): smooth images an autoencoder can learn."""
    import numpy as np

    from gensis.data.demo import demo_digits

    train, _ = demo_digits(16)
    np.savez(path, images=train.images[:n].permute(0, 2, 3, 1).numpy(), labels=train.labels[:n].numpy())
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ae")
    data = digits_npz(root / "images.npz", 96)
    enc = random_encoder(root / "encoder.safetensors", 16)
    result = gensis.train_autoencoder(
        {
            **SMALL,
            "data.path": str(data),
            "encoder": str(enc),
            "out": str(root / "ae"),
            "train.epochs": 12,
            "train.lr": 3e-3,
        }
    )
    return root, data, enc, result


def test_it_reconstructs_far_better_than_its_initialization_and_than_the_mean_image(trained) -> None:
    root, data, _, result = trained
    images = load_images(data, 16, cache_dir=None).images
    vae = load_vae(str(result.autoencoder_path))
    trained_db = float(psnr(reconstruct(vae, images), images).mean())
    torch.manual_seed(0)
    init = build_autoencoder(AutoencoderModelConfig(block_out_channels=[8, 16]), 16).eval()
    init_db = float(psnr(reconstruct(init, images), images).mean())
    mean_db = float(psnr(images.float().mean(0, keepdim=True).round().to(torch.uint8).expand_as(images), images).mean())
    assert trained_db > init_db + 5 and trained_db > mean_db + 2, (trained_db, init_db, mean_db)
    q = result.quality  # measured on held-out images, with the encoder's figures beside the ceiling
    assert q["images"] == 9 and q["psnr_db"] > mean_db
    assert {"cosine_to_source", "retrieval_top1", "retrieval_median_rank"} <= set(q)
    assert q["ceiling"]["retrieval_top1"] >= 0 and q["chance"]["images"] == 96
    metrics = [json.loads(x) for x in (root / "ae" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < 0.6 * losses[0]  # the logged loss falls
    # encoder= given: the perceptual term in its space is on by default, logged and recorded
    assert all(0 <= m["perceptual"] <= 2 for m in metrics if "loss" in m)
    assert all(0 <= m["data_wait"] <= 1 for m in metrics if "loss" in m)  # decoding's share of the time
    assert "perceptual_weight: 0.1" in (root / "ae" / "config.yaml").read_text()
    assert (root / "ae" / "reconstructions.png").is_file()


def test_the_perceptual_default_follows_the_encoder() -> None:
    from gensis.config.autoencoder import TrainAutoencoderConfig

    assert TrainAutoencoderConfig(encoder="enc").train.perceptual_weight == 0.1
    assert TrainAutoencoderConfig().train.perceptual_weight == 0.0  # no encoder: L1 and KL only
    assert TrainAutoencoderConfig(encoder="enc", train={"perceptual_weight": 0}).train.perceptual_weight == 0
    with pytest.raises(ValueError, match="needs encoder="):
        TrainAutoencoderConfig(train={"perceptual_weight": 0.1})


def test_default_levels_follow_the_resolution(tmp_path) -> None:
    """No block_out_channels: 4x latents below 128 px (a 96-px tile: 24x24, not 12x12), 8x from 128 px."""
    from gensis.config.autoencoder import TrainAutoencoderConfig

    data = digits_npz(tmp_path / "images.npz", 40)
    settings = {k: v for k, v in SMALL.items() if k != "model.block_out_channels"}
    result = gensis.train_autoencoder(
        {**settings, "data.path": str(data), "out": str(tmp_path / "ae"), "train.max_steps": 1}
    )
    meta = json.loads((result.autoencoder_path / "gensis.json").read_text())
    assert meta["downsampling"] == 4 and meta["latent_shape"] == [4, 4, 4]
    assert AutoencoderKL.from_pretrained(result.autoencoder_path).config.block_out_channels == [16, 32, 64]
    model = TrainAutoencoderConfig().model
    assert model.widths(96) == [16, 32, 64] and model.widths(224) == [32, 64, 128, 128]
    assert TrainAutoencoderConfig(model={"block_out_channels": [8, 16]}).model.widths(224) == [8, 16]


def test_the_folder_loads_in_plain_diffusers_with_its_scaling_factor_and_digest(trained) -> None:
    _, _, _, result = trained
    folder = result.autoencoder_path
    meta = json.loads((folder / "gensis.json").read_text())
    plain = AutoencoderKL.from_pretrained(folder)
    assert plain.config.scaling_factor == pytest.approx(meta["scaling_factor"]) and meta["scaling_factor"] != 0.18215
    assert autoencoder_digest(plain) == meta["sha256"] == autoencoder_digest(load_vae(str(folder)))
    assert meta["resolution"] == 16 and meta["latent_shape"] == [4, 8, 8]


def test_save_and_load_round_trip_is_exact(tmp_path) -> None:
    torch.manual_seed(1)
    vae = build_autoencoder(AutoencoderModelConfig(block_out_channels=[8, 16], latent_channels=3), 16).eval()
    save_autoencoder(tmp_path / "vae", vae, {"resolution": 16})
    save_autoencoder(tmp_path / "vae", vae, {"resolution": 16})  # over an existing folder: replaced whole
    loaded = load_vae(str(tmp_path / "vae"))
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(reconstruct(vae, x), reconstruct(loaded, x))
    assert autoencoder_digest(vae) == autoencoder_digest(loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae"]  # no temp folders left behind


def test_resume_continues_exactly(tmp_path) -> None:
    data = write_npz(tmp_path / "images.npz", 48, size=16)
    base = {**SMALL, "data.path": str(data), "train.epochs": 2}
    full = gensis.train_autoencoder({**base, "out": str(tmp_path / "full")})
    gensis.train_autoencoder({**base, "out": str(tmp_path / "part"), "train.max_steps": 3})
    resumed = gensis.train_autoencoder({**base, "out": str(tmp_path / "part")}, resume=True)
    assert full.steps == resumed.steps == 10
    meta = [json.loads((r.autoencoder_path / "gensis.json").read_text()) for r in (full, resumed)]
    assert meta[0]["sha256"] == meta[1]["sha256"]


@pytest.fixture(scope="module")
def latent_generator(trained, tmp_path_factory):
    root, data, enc, result = trained
    out = tmp_path_factory.mktemp("gen")
    gen = gensis.train_generator(
        {
            "model.spec": "tiny",
            "model.space": "latent",
            "model.vae": str(root / "ae"),
            "encoder": str(enc),
            "data.path": str(data),
            "out": str(out / "g"),
            "train.batch_size": 16,
            "train.epochs": 1,
            "train.progress": False,
            "data.cache_dir": None,
        }
    )
    return gen, out


def test_the_generator_records_the_autoencoder_and_refuses_another(trained, latent_generator, tmp_path) -> None:
    from safetensors import safe_open

    root, data, _, result = trained
    gen, _ = latent_generator
    with safe_open(str(gen.generator_path), "pt") as f:
        meta = f.metadata()
    recorded = json.loads((result.autoencoder_path / "gensis.json").read_text())["sha256"]
    assert meta["vae_sha256"] == recorded and Path(meta["vae"]).is_absolute()
    ok = gensis.generate(
        generator=str(gen.out),
        data_path=str(data),
        out=str(tmp_path / "bank"),
        views_per_image=1,
        interpolations_per_image=0,
        steps=2,
        progress=False,
        cache_dir=None,
        max_images=8,
    )
    assert ok.n_images == 8
    # Another autoencoder in the recorded folder (retrained, or copied over): refused by digest.
    backup = tmp_path / "backup"
    shutil.copytree(result.autoencoder_path, backup)
    try:
        torch.manual_seed(5)
        other = build_autoencoder(AutoencoderModelConfig(block_out_channels=[8, 16]), 16)
        save_autoencoder(result.autoencoder_path, other, {"resolution": 16})
        with pytest.raises(GensisError, match="not the autoencoder the generator was trained on"):
            gensis.generate(
                generator=str(gen.out),
                data_path=str(data),
                out=str(tmp_path / "bank2"),
                views_per_image=1,
                interpolations_per_image=0,
                steps=2,
                progress=False,
                cache_dir=None,
            )
        assert not (tmp_path / "bank2").exists()
    finally:
        shutil.rmtree(result.autoencoder_path)
        shutil.copytree(backup, result.autoencoder_path)


def test_a_latent_bank_decodes_to_the_pixel_banks_images(trained, latent_generator, tmp_path) -> None:
    from gensis.bank import ViewBank
    from gensis.bank.store import shard_path
    from gensis.train.view_sources import BankViews

    root, data, _, _ = trained
    gen, _ = latent_generator
    common = dict(
        generator=str(gen.out),
        data_path=str(data),
        views_per_image=2,
        interpolations_per_image=1,
        steps=2,
        progress=False,
        cache_dir=None,
        shard_size=50,
    )
    gensis.generate(**common, out=str(tmp_path / "pixels"))
    gensis.generate(**common, out=str(tmp_path / "latents"), storage="latents")
    pixels, latents = ViewBank(tmp_path / "pixels"), ViewBank(tmp_path / "latents")
    assert (pixels.index.storage, latents.index.storage) == ("pixels", "latents")
    for s in (0, 57, 95):
        a, b = pixels.views_of(s), latents.views_of(s)
        assert a.shape == b.shape == (2, 3, 16, 16)
        assert (a.int() - b.int()).abs().max() <= 3  # fp16 latents, decoded: within a few levels of 255
        ia, pa, aa = pixels.interpolations_of(s)
        ib, pb, ab = latents.interpolations_of(s)
        assert torch.equal(pa, pb) and torch.equal(aa, ab) and (ia.int() - ib.int()).abs().max() <= 3
    # Stage 3 reads the same views from either bank (one draw each, same generator state).
    n = pixels.index.n_sources
    read = [BankViews(str(tmp_path / name), n, 16) for name in ("pixels", "latents")]
    idx = torch.arange(0, n, 7)
    va, vb = (r.views(idx, torch.Generator().manual_seed(3)) for r in read)
    assert va.dtype == vb.dtype == torch.uint8 and (va.int() - vb.int()).abs().max() <= 3
    size = [shard_path(tmp_path / name, 0).stat().st_size for name in ("pixels", "latents")]
    assert size[1] < size[0]  # 4x8x8 fp16 = 512 bytes a view against 768 (16-px pixels)


def test_a_latent_bank_refuses_a_pixel_generator_and_another_decoder(trained, tmp_path) -> None:
    import json as _json

    from _synthetic import tiny_generator

    from gensis.bank import ViewBank

    enc, data, gen = tiny_generator(tmp_path / "pixel")
    with pytest.raises(GensisError, match="storage=latents: the generator works in pixel space"):
        gensis.generate(
            generator=str(gen),
            data_path=str(data),
            out=str(tmp_path / "b"),
            storage="latents",
            steps=1,
            progress=False,
            cache_dir=None,
        )
    assert not (tmp_path / "b").exists()
    # A latent bank whose recorded decoder digest is not its autoencoder's: refused when read.
    root = tmp_path / "latents"
    root.mkdir()
    (root / "index.json").write_text(
        _json.dumps(
            {
                "format": "gensis.bank/1",
                "generator_sha256": "0" * 64,
                "encoder_sha256": "0" * 64,
                "resolution": 16,
                "n_sources": 1,
                "shard_size": 1,
                "views_per_image": 1,
                "interpolations_per_image": 0,
                "shards": [],
                "storage": "latents",
                "vae": str(trained[3].autoencoder_path),
                "vae_sha256": "f" * 64,
            }
        )
    )
    bank = ViewBank(root)
    with pytest.raises(GensisError, match="its latents need the autoencoder"):
        bank.decode(torch.zeros(1, 4, 8, 8))


# --- issue 39: the figures and refusals of quality.py and latent.py, against hand-computed values ---


def test_psnr_is_per_image_ten_log10_of_255_squared_over_the_mse() -> None:
    a = torch.zeros(4, 3, 4, 4, dtype=torch.uint8)
    b = a.clone()
    b[0] += 5  # mse 25: 10 log10(65025 / 25) = 10 log10(51^2) = 34.1514 dB
    b[1] += 51  # mse 2601: 10 log10(25) = 13.9794 dB
    # b[2] identical: mse 0 is floored at 1e-10, 10 log10(6.5025e14) = 100 + 48.1308 dB
    b[3, 0, 0, 0] = 1  # one level on one of 48 values: mse 1/48, 10 log10(65025 * 48) = 64.9432 dB
    got = psnr(b, a)
    assert got.shape == (4,)  # one figure per image, not one for the batch
    assert got.tolist() == pytest.approx([34.1514, 13.9794, 148.1308, 64.9432], abs=1e-3)


def _gensis_vae_folder(folder: Path, **meta) -> Path:
    folder.mkdir(parents=True)
    (folder / "gensis.json").write_text(json.dumps({"format": "gensis.autoencoder/1", **meta}))
    return folder


def test_check_vae_fits_refuses_another_resolution_in_one_line(tmp_path) -> None:
    from gensis.autoencoder.latent import check_vae_fits
    from gensis.errors import ConfigError

    folder = _gensis_vae_folder(tmp_path / "vae", resolution=32, data_fingerprint="f1", data="digits.npz", images=96)
    with pytest.raises(ConfigError) as err:
        check_vae_fits(str(folder), 16, "f1", "data.path=digits.npz")
    assert str(err.value) == (
        f"model.vae: {folder} was trained on 32-px images, this run uses 16 px; train one at "
        "this size (gensis train-autoencoder data.resolution=16)"
    )


def test_check_vae_fits_refuses_other_images_naming_the_rule(tmp_path) -> None:
    from gensis.autoencoder.latent import check_vae_fits
    from gensis.errors import ConfigError

    folder = _gensis_vae_folder(tmp_path / "vae", resolution=16, data_fingerprint="f1", data="digits.npz", images=96)
    with pytest.raises(ConfigError) as err:
        check_vae_fits(str(folder), 16, "f2", "data.path=faces.npz")
    assert str(err.value) == (
        f"model.vae: {folder} was trained on other images (digits.npz, 96 images) than "
        "data.path=faces.npz; train one on these images "
        "[rule fingerprint: README, 'What gensis refuses and why']"
    )


def test_check_vae_fits_passes_a_matching_or_an_outside_autoencoder(tmp_path) -> None:
    from gensis.autoencoder.latent import check_vae_fits

    folder = _gensis_vae_folder(tmp_path / "vae", resolution=16, data_fingerprint="f1", data="digits.npz", images=96)
    assert check_vae_fits(str(folder), 16, "f1", "data.path=digits.npz") is None
    outside = tmp_path / "outside"  # a save_pretrained folder without gensis.json: the user's choice
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    assert check_vae_fits(str(outside), 64, "f9", "data.path=faces.npz") is None
    assert check_vae_fits(str(tmp_path / "no-such-hub-id"), 64, "f9", "data.path=faces.npz") is None


def _constant_tiles(values, r: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, r, r).contiguous()


def _png(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_the_pairs_grid_puts_each_original_above_its_reconstruction(tmp_path) -> None:
    import numpy as np

    from gensis.autoencoder.quality import save_pairs_grid

    # 2-px tiles, 2 columns, 5 pairs: at most 2 * 2 = 4 are drawn, in 2 rows; gap 4 px.
    # Height 2 rows * (2 * 2 + 4) + 4 = 20, width 2 columns * (2 + 4) + 4 = 16.
    originals, recs = _constant_tiles([10, 11, 12, 13, 14], 2), _constant_tiles([100, 101, 102, 103, 104], 2)
    path = tmp_path / "grid.png"
    assert save_pairs_grid(path, originals, recs, columns=2) == path
    expected = np.full((20, 16, 3), 255, np.uint8)
    for i, (y, x) in enumerate([(4, 4), (4, 10), (12, 4), (12, 10)]):  # row starts 4, 12; column starts 4, 10
        expected[y : y + 2, x : x + 2] = 10 + i  # the original ...
        expected[y + 2 : y + 4, x : x + 2] = 100 + i  # ... and its reconstruction just below it
    assert np.array_equal(_png(path), expected)


def test_the_pairs_grid_defaults_to_eight_columns(tmp_path) -> None:
    from gensis.autoencoder.quality import save_pairs_grid

    # 3 pairs of 2-px tiles, default 8 columns: one row, 1 * (2 * 2 + 4) + 4 = 12 high, 8 * (2 + 4) + 4 = 52 wide.
    path = save_pairs_grid(tmp_path / "grid.png", _constant_tiles([10, 11, 12], 2), _constant_tiles([100, 101, 102], 2))
    got = _png(path)
    assert got.shape == (12, 52, 3)
    assert got[4, 16].tolist() == [12] * 3 and got[6, 16].tolist() == [102] * 3  # third pair at x = 4 + 2 * 6
    assert got[4, 22].tolist() == [255] * 3  # fourth column empty


def test_the_pairs_grid_scales_to_tile_px(tmp_path) -> None:
    from gensis.autoencoder.quality import save_pairs_grid

    # One pair of 4-px tiles: 1 * (2 * 4 + 4) + 4 = 16 high, 1 * (4 + 4) + 4 = 12 wide; tile_px=8 doubles both.
    originals, recs = _constant_tiles([40], 4), _constant_tiles([200], 4)
    got = _png(save_pairs_grid(tmp_path / "big.png", originals, recs, columns=1, tile_px=8))
    assert got.shape == (32, 24, 3)
    # centres of the doubled tiles: the original at canvas (4..7, 4..7) -> (8..15, 8..15), its reconstruction below
    assert got[12, 12].tolist() == [40] * 3 and got[20, 12].tolist() == [200] * 3
    same = _png(save_pairs_grid(tmp_path / "same.png", originals, recs, columns=1, tile_px=4))
    assert same.shape == (16, 12, 3)  # tile_px equal to the tile size: left as drawn
