"""Functions the mutation run (issue 39, benchmarks/mutation.sh) found reached by no test of the
modules that decide results, each now checked against values worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from gensis.autoencoder.quality import reconstruction_table
from gensis.data.dataset import ImageData
from gensis.data.decode import _scale_to_uint8
from gensis.generator.conditioning import EmbeddingConditioner
from gensis.pipeline.verdict import Verdict, verdicts
from gensis.ssl.dino import DisentangleViews


def _u8(values, mode: str) -> list[int]:
    return _scale_to_uint8(np.array(values), mode).tolist()


def test_wide_and_float_gray_images_map_to_0_255_by_their_range() -> None:
    assert _u8([0, 32768, 65535], "I;16") == [0, 128, 255]  # 32768 * 255 / 65535 = 127.502
    assert _u8([0, 1000, 65535], "I;16B") == [0, 4, 255]  # 3.89 -> 4
    assert _u8([0.0, 0.5, 1.0], "F") == [0, 128, 255]  # 0..1 floats: times 255 (127.5 rounds to even 128)
    assert _u8([0.0, 0.2, 1.0], "F") == [0, 51, 255]
    assert _u8([0.0, 100.0, 255.0], "F") == [0, 100, 255]  # already 0..255: kept
    assert _u8([0, 100, 255], "I") == [0, 100, 255]  # 8-bit data stored wide: kept
    assert _u8([0, 1000, 65535], "I") == [0, 4, 255]  # 16-bit data in a 32-bit image
    assert _u8([-10, 0, 10], "I") == [0, 128, 255]  # out of every range: min-max
    assert _u8([0, 70000], "I") == [0, 255]
    assert _u8([2.0, 3.0], "F") == [2, 3]  # over 1 and at most 255: kept as it is
    assert _u8([300.0, 300.0], "F") == [0, 0]  # constant out of range: black, no division by zero
    assert _u8([float("nan"), 1.0], "F") == [0, 255]  # NaN read as 0
    assert _u8([float("inf"), 0.5], "F") == [0, 128]
    assert _scale_to_uint8(np.zeros((0,)), "F").dtype == np.uint8


def test_the_reconstruction_table_rows_and_headers() -> None:
    header, rows = reconstruction_table({"psnr_db": 31.2, "retrieval_top1": 40.0,
                                         "ceiling": {"retrieval_top1": 80.0}, "chance": {"retrieval_top1": 2.5}})
    assert header == ["figure", "reconstructions", "real stage-1 views (ceiling)", "chance"]
    assert rows == [["PSNR (dB)", "31.2", "-", "-"], ["source retrieval top-1 (%)", "40.0", "80.0", "2.5"]]
    _, rows = reconstruction_table({"cosine_to_source": 0.5, "retrieval_top5": 90.0, "retrieval_median_rank": 1})
    assert [r[0] for r in rows] == ["cosine to the source (stage-1 space)", "source retrieval top-5 (%)",
                                    "median rank of the source"]


def test_the_unconditional_embedding_is_the_null_vectors_projection_repeated() -> None:
    torch.manual_seed(0)
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3)
    with torch.no_grad():
        cond.null_embedding.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
        out = cond.unconditional(5)
        lin1, lin2 = cond.proj[0], cond.proj[2]
        h = torch.nn.functional.silu(cond.null_embedding @ lin1.weight.T + lin1.bias)
        expected = h @ lin2.weight.T + lin2.bias
    assert out.shape == (5, 3) and torch.allclose(out, expected.expand(5, 3))
    assert cond.unconditional(2, device="cpu").device.type == "cpu"


def test_image_data_says_what_it_holds() -> None:
    data = ImageData(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0]), ["a", "b"],
                     ["a/1", "b/2", "a/3"], "x.zip", 8)
    assert repr(data) == "ImageData(3 images, 8px, 2 classes, in memory, source='x.zip')"
    lazy = ImageData(None, None, None, ["1"], "d", 16, reader=lambda i: b"")
    assert repr(lazy) == "ImageData(1 images, 16px, unlabelled, lazy, source='d')"


def test_a_ranks_share_of_the_disentanglement_inputs() -> None:
    views = DisentangleViews(torch.arange(4.0).view(4, 1), torch.arange(10.0, 14.0).view(4, 1),
                             torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 1, 1, 0]))
    part = views.narrow(slice(1, 3))
    assert part.interpolated.flatten().tolist() == [1.0, 2.0]
    assert part.partner.flatten().tolist() == [11.0, 12.0]
    assert torch.allclose(part.alpha, torch.tensor([0.2, 0.3]))
    assert part.real_slot.tolist() == [1, 1]


def test_the_report_judges_each_stage_on_its_own_metrics_and_out_dim() -> None:
    """Each verdict gets its own stage's curve and prototypes: a swapped key or out_dim changes a line."""
    stages = SimpleNamespace(pretrain=SimpleNamespace(dino=SimpleNamespace(out_dim=100), method="dino"),
                             gen_dino=SimpleNamespace(dino=SimpleNamespace(out_dim=1000)), autoencoder=object(),
                             baseline="control")
    metrics = {"dino": [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 4.5}, {"step": 3, "loss": 5.0}],
               "generator": [{"cond_gap_mid": 40.0 - i} for i in range(10)],
               "gen-dino": [{"loss_dis": v} for v in (5.0, 4.0, 3.0)]}
    quality = {"sources": 40, "retrieval_top1": 25.0, "retrieval_median_rank": 2, "ceiling": {"retrieval_top1": 50.0},
               "chance": {"retrieval_top1": 2.5}}
    got = verdicts(stages, quality, {"gen-dino": {"knn_top1": {"20": 55.0}}}, metrics,
                   reconstruction={"images": 30, "psnr_db": 25.0})
    assert [v.stage for v in got] == ["stage 1", "autoencoder", "stage 2", "stage 3"]
    assert got[0].text.startswith("DINO loss 4.00 -> 5.00 (too few points, 3 points), against 4.61 ")  # ln 100
    assert got[1] == Verdict("autoencoder", "ok", "reconstructions of 30 held-out images: PSNR 25.00 dB")
    assert got[2].status == "warning" and "conditioning gap at mid noise (%) 40.0 -> 31.0 (falls" in got[2].text
    # uniform 6.91 = ln 1000
    assert got[3].text.startswith("disentanglement loss 5.00 -> 3.00 (too few points, 3 points) (uniform 6.91)")
    no_ae = verdicts(SimpleNamespace(**{**vars(stages), "autoencoder": None}), quality, {}, metrics)
    assert [v.stage for v in no_ae] == ["stage 1", "stage 2", "stage 3"]
