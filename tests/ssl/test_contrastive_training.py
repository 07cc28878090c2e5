"""SimCLR and MoCo v3 in the pretraining loop (GenView's base methods): training, resume,
generated views, GenView's quality-weighted loss, and the config checks."""

from __future__ import annotations

import json

import pytest
import torch
from _synthetic import write_bank, write_npz

import gensis
from gensis.config.schema import ModelConfig
from gensis.errors import GensisError
from gensis.foreground.pca import ForegroundPCA
from gensis.foreground.quality import PairQuality
from gensis.models.backbones import build_encoder
from gensis.models.metadata import EncoderInfo
from gensis.runtime.checkpoint import load_state
from gensis.ssl.losses.dino_loss import DINOLoss

TINY = {
    "preset": "digits",
    "data.cache_dir": None,
    "model.backbone": "resnet10t",
    "train.batch_size": 16,
    "train.epochs": 2,
    "train.log_every": 1,
    "train.knn_every": 0,
    "train.progress": False,
    "simclr.hidden_dim": 32,
    "simclr.out_dim": 16,
    "mocov3.hidden_dim": 32,
    "mocov3.out_dim": 16,
    "mocov3.predictor_hidden_dim": 32,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("shapes") / "train.npz", 48, seed=0)


def _records(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


@pytest.mark.parametrize("method", ["simclr", "mocov3"])
def test_contrastive_method_trains_and_resumes_exactly(tmp_path, data, method) -> None:
    common = {**TINY, "method": method, "data.path": str(data), "train.epochs": 3}
    full = gensis.pretrain({**common, "out": str(tmp_path / "full")})
    gensis.pretrain({**common, "out": str(tmp_path / "part"), "train.max_steps": 4})
    resumed = gensis.pretrain({**common, "out": str(tmp_path / "part")}, resume=True)
    assert full.steps == resumed.steps == 9
    a, b = (load_state(tmp_path / p / "checkpoints" / "last.pt") for p in ("full", "part"))
    nets = ["student"] + (["momentum"] if method == "mocov3" else [])
    for net in nets:
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert a["method"] == method and "teacher" not in a
    recs = _records(tmp_path / "full")
    assert [r["loss"] for r in recs] == [r["loss"] for r in _records(tmp_path / "part")]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in recs)
    assert ("teacher_momentum" in recs[0]) == (method == "mocov3") and "teacher_temp" not in recs[0]
    from safetensors import safe_open

    with safe_open(str(full.encoder_path), framework="pt") as f:
        assert f.metadata()["method"] == method


def test_gen_simclr_uses_generated_views_and_quality_weights(tmp_path, data) -> None:
    enc = gensis.pretrain(
        {
            **TINY,
            "data.path": str(data),
            "dino.out_dim": 32,
            "dino.hidden_dim": 32,
            "dino.bottleneck_dim": 16,
            "train.epochs": 1,
            "out": str(tmp_path / "stage1"),
        }
    )
    write_bank(tmp_path / "bank", 48, 16, k=2, m=1)
    out = tmp_path / "gen-simclr"
    gensis.pretrain(
        {
            **TINY,
            "method": "simclr",
            "data.path": str(data),
            "gen.bank": str(tmp_path / "bank"),
            "gen.p_gen": 1.0,
            "quality.enabled": True,
            "quality.encoder": str(enc.encoder_path),
            "quality.foreground.fit_images": 32,
            "quality.foreground.resolution": 64,
            "out": str(out),
        }
    )
    recs = _records(out)
    assert all(r["generated_fraction"] == 1.0 for r in recs)
    assert all("loss_dis" not in r for r in recs)  # the disentanglement task is DINO's
    assert any(r["quality_weight_std"] > 0 for r in recs)  # the pairs are not all weighted alike


def test_pair_quality_prefers_pairs_with_matching_foregrounds() -> None:
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(backbone="resnet10t", cifar_stem=True), 16)
    enc.info = EncoderInfo.parse("mem.safetensors", {**enc.metadata(), "mean": "[0, 0, 0]", "std": "[1, 1, 1]"})

    def scene(fg_value: float, bg_value: float) -> torch.Tensor:
        x = torch.full((3, 16, 16), bg_value)
        x[:, 4:12, 4:12] = fg_value
        return x

    view1 = torch.stack([scene(1.0, 0.0), scene(1.0, 0.0)])
    view2 = torch.stack([scene(1.0, -1.0), scene(-1.0, 0.0)])  # pair 0: same object; pair 1: same background
    from gensis.foreground.pca import spatial_features

    pca = ForegroundPCA(quantile=0.5, sign=1).fit(spatial_features(enc, torch.cat([view1, view2])))
    pca.component = pca.component * 0  # a fixed centre-square foreground, independent of the random weights
    square = torch.zeros(2, 2)
    square[...] = 0
    pca.masks = lambda f: (
        torch.nn.functional.pad(
            torch.ones(f.shape[0], 1, f.shape[2] // 2, f.shape[3] // 2), (f.shape[3] // 4,) * 2 + (f.shape[2] // 4,) * 2
        )
        > 0
    )
    w = PairQuality(enc, pca, gamma=5.0, view_mean=(0, 0, 0), view_std=(1, 1, 1))(view1, view2)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-5) and not w.requires_grad
    assert w[0] > w[1]


def test_dino_loss_with_unit_weights_is_the_plain_loss() -> None:
    torch.manual_seed(0)
    t, s = [torch.randn(6, 8) for _ in range(2)], [torch.randn(6, 8) for _ in range(3)]
    loss = DINOLoss(8, warmup_teacher_temp_epochs=0)
    plain = loss(t, s, 0, update_center=False)
    assert loss(t, s, 0, update_center=False, weights=torch.ones(6)).item() == pytest.approx(plain.item(), rel=1e-6)
    skew = torch.tensor([6.0, 0, 0, 0, 0, 0])
    assert loss(t, s, 0, update_center=False, weights=skew).item() != pytest.approx(plain.item(), rel=1e-3)


@pytest.mark.parametrize(
    "keys, match",
    [
        ({"method": "simclr", "augment.n_local_crops": 2}, "augment.n_local_crops"),
        ({"quality.enabled": True}, "quality.encoder"),
        ({"method": "byol"}, "method"),
    ],
)
def test_contrastive_config_errors_name_the_key(tmp_path, data, keys, match) -> None:
    with pytest.raises(GensisError, match=match):
        gensis.pretrain({**TINY, "data.path": str(data), "out": str(tmp_path / "r"), **keys})
    assert not (tmp_path / "r").exists()
