"""Functions the mutation run (issue 39, benchmarks/mutation.sh) found reached by no test of the
modules that decide results, each now checked against values worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gensis.autoencoder.quality import reconstruction_table
from gensis.data.dataset import ImageData
from gensis.data.decode import _scale_to_uint8, one_line
from gensis.errors import CheckpointError, ConfigError
from gensis.eval.faithfulness import class_consistency, diversity, source_distance, versus_ceiling
from gensis.generator.conditioning import EmbeddingConditioner
from gensis.generator.slerp import slerp
from gensis.pipeline.verdict import Verdict, verdicts
from gensis.runtime.checkpoint import restore_state, save_state
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


def test_wide_gray_images_take_the_fixed_16_bit_scale_and_saturate() -> None:
    # 16-bit scale: x * 255 / 65535 = x / 257; 51529 = 257 * 200 + 129 -> 200.502 -> 201, 65000 / 257 = 252.92 -> 253
    # (a min-max stretch would give 51529 * 255 / 65000 = 202.2 -> 202; 256 / 65535 or 255 / 65536 give 254 or 200)
    assert _u8([0, 51529, 65000], "I;16") == [0, 201, 253]
    assert _u8([0, 51529, 65000], "I") == [0, 201, 253]  # 16-bit data in a 32-bit image: the same fixed scale
    assert _u8([0, 100, 255], "I;16") == [0, 0, 1]  # a dark 16-bit image stays dark: 100 / 257 = 0.39, 255 / 257 = 0.99
    assert _u8([1000, 65535], "I") == [4, 255]  # max exactly 65535 is still 16-bit data: 1000 / 257 = 3.89 -> 4
    assert _u8([1000, 65536], "I") == [0, 255]  # one over 16 bits: min-max
    assert _u8([0, 100, 256], "I") == [0, 0, 1]  # one over 8 bits: 16-bit scale, 256 / 257 = 0.996 -> 1
    assert _u8([-1000, 70000], "I;16") == [0, 255]  # -3.89 and 272.4: saturate at 0 and 255, never wrap around
    assert _u8([0.0, 0.75], "F") == [0, 191]  # 0..1 floats: 0.75 * 255 = 191.25
    assert _u8([0.0, 1.5], "F") == [0, 2]  # over 1 and at most 255: kept (1.5 rounds to even 2), not times 255
    assert _u8([-100.0, 50.0, 100.0], "F") == [0, 191, 255]  # min-max: 150 * 255 / 200 = 191.25
    assert _u8([float("-inf"), 0.5], "F") == [0, 128]  # -inf read as 0, then 0..1 floats: 127.5 rounds to even 128


def test_an_unreadable_files_reason_prints_on_one_line() -> None:
    assert one_line("OSError: broken\n  data\tat byte 8 ") == "OSError: broken data at byte 8"
    assert one_line(ValueError("bad  header")) == "bad header"


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


def test_the_unconditional_embedding_lands_on_the_device_asked_for() -> None:
    # "meta" stands for a GPU here: the null embedding must follow the batch it is sampled with.
    cond = EmbeddingConditioner(embed_dim=4, cond_dim=3)
    assert cond.unconditional(2, device="meta").device.type == "meta"
    assert cond.unconditional(2, device="meta").shape == (2, 3)
    assert cond.unconditional(2).device.type == "cpu"  # no device: where the conditioner lives


@pytest.mark.parametrize("alpha", [1.5, -0.25, 1 + 1e-9, [0.5, 1 + 1e-9], torch.tensor([0.0, 1.5]), float("nan")])
def test_slerp_refuses_an_alpha_outside_0_1_even_by_a_hair(alpha) -> None:
    # 1 + 1e-9 is 1.0 in float32: the check must read alpha in float64 to refuse it.
    e1, e2 = torch.eye(3)[:2], torch.eye(3)[1:]
    with pytest.raises(ConfigError, match=r"^alpha must lie in \[0, 1\]$"):
        slerp(e1, e2, alpha)


def test_slerp_on_a_quarter_circle_hand_computed() -> None:
    # e1 = x, e2 = y: W = pi / 2 and SLERP(e1, e2, a) = cos((1 - a) W) x + sin((1 - a) W) y.
    e1, e2 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)
    third = slerp(e1, e2, 1 / 3)  # (1 - 1/3) pi / 2 = pi / 3: (cos, sin) = (0.5, sqrt(3) / 2)
    assert third.dtype == torch.float64
    assert torch.allclose(third, torch.tensor([0.5, 0.8660254037844386, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    # alpha read in float64: 1 - 1e-12 still moves off e1 by about (pi / 2) * 1e-12 (float32 would round it to 1)
    near = slerp(e1, e2, 1 - 1e-12)
    assert near[0].item() == 1.0 and near[1].item() == pytest.approx(1.5707963e-12, rel=1e-3)
    rows = slerp(e1.expand(2, 3), e2.expand(2, 3), [0.0, 1 / 3])  # a Python list: one alpha per row
    assert torch.allclose(rows, torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.8660254037844386, 0.0]], dtype=torch.float64),
                          rtol=0, atol=1e-12)


def test_slerp_between_opposite_points_turns_towards_the_least_aligned_axis() -> None:
    # e2 = -e1: W = pi, u = the axis least aligned with a = e1 / |e1|, orthogonalized and normalized.
    # a = (3, 2, 1) / sqrt(14): axis z; z - (1 / sqrt(14)) a = (-3, -2, 13) / 14 -> u = (-3, -2, 13) / sqrt(182).
    # a = (1, -4, 2) / sqrt(21): axis x; x - (1 / sqrt(21)) a = (20, 4, -2) / 21 -> u = (10, 2, -1) / sqrt(105).
    e1 = torch.tensor([[3.0, 2.0, 1.0], [1.0, -4.0, 2.0]], dtype=torch.float64)
    a = e1 / torch.tensor([[14.0], [21.0]], dtype=torch.float64).sqrt()
    u = torch.tensor([[-3.0, -2.0, 13.0], [10.0, 2.0, -1.0]], dtype=torch.float64) / torch.tensor(
        [[182.0], [105.0]], dtype=torch.float64).sqrt()
    assert torch.allclose(slerp(e1, -2 * e1, 0.5), u, rtol=0, atol=1e-12)  # half way: theta = pi / 2, all u
    # alpha 0.25: theta = 3 pi / 4, cos(theta) a + sin(theta) u = (u - a) / sqrt(2)
    quarter = (u - a) / 2 ** 0.5
    assert torch.allclose(slerp(e1, -e1, 0.25), quarter, rtol=0, atol=1e-12)
    assert torch.allclose(slerp(e1[0], -e1[0], 0.25), quarter[0], rtol=0, atol=1e-12)  # one (D,) vector
    assert torch.allclose(slerp(e1[1], -e1[1], 0.5), u[1], rtol=0, atol=1e-12)


def test_class_consistency_is_a_percentage_to_two_decimals() -> None:
    """Three views all nearest to image 0 (label 0), from sources of labels 0, 1, 2: one in three
    agrees, 100 / 3 % shown as 33.33 (two decimals, as every percentage in the report)."""
    real, labels = torch.eye(3), torch.tensor([0, 1, 2])
    assert class_consistency(torch.eye(3)[[0, 0, 0]], torch.tensor([0, 1, 2]), real, labels, k=1) == 33.33


def test_diversity_is_the_mean_over_pairs_of_distinct_views_to_four_decimals() -> None:
    """Views e0, e0, e1 of one source: of the six ordered pairs of distinct views four are orthogonal
    (cosine distance 1) and two identical (0), 4 / 6 = 0.6667; likewise in pixels for black, black,
    white (RMSE 1 on the 0-1 scale). Four decimals: neither 1 nor 0.66667."""
    images = torch.zeros(1, 3, 3, 2, 2, dtype=torch.uint8)
    images[0, 2] = 255
    assert diversity(torch.eye(2)[[0, 0, 1]][None], images) == {"diversity_cosine": 0.6667,
                                                                "diversity_pixel_rmse": 0.6667}


def test_source_distance_is_the_mean_view_rmse_to_four_decimals() -> None:
    """Two views of a source at 85 everywhere: itself (RMSE 0) and black (85 / 255 = 1/3), mean 1/6."""
    source = torch.full((1, 3, 2, 2), 85, dtype=torch.uint8)
    views = torch.stack([source, torch.zeros_like(source)], dim=1)
    assert source_distance(views, source) == 0.1667


def test_versus_ceiling_covers_every_figure_where_more_is_better_to_three_decimals() -> None:
    """Generated / ceiling for top-1, class consistency, both diversities and the distance to the
    source (three decimals); top-5 has no ratio, nor a figure whose ceiling is 0 or missing."""
    generated = {"retrieval_top1": 10.0, "retrieval_top5": 20.0, "class_consistency": 30.0, "diversity_cosine": 0.2,
                 "diversity_pixel_rmse": 0.1, "source_pixel_rmse": 0.3}
    ceiling = {"retrieval_top1": 30.0, "retrieval_top5": 40.0, "class_consistency": 60.0, "diversity_cosine": 0.4,
               "diversity_pixel_rmse": 0.05, "source_pixel_rmse": 0.9}
    assert versus_ceiling(generated, ceiling) == {"retrieval_top1": 0.333, "class_consistency": 0.5,
                                                  "diversity_cosine": 0.5, "diversity_pixel_rmse": 2.0,
                                                  "source_pixel_rmse": 0.333}
    assert versus_ceiling(generated, {"retrieval_top1": 0.0, "class_consistency": 60.0}) == {"class_consistency": 0.5}


def test_slerp_computes_in_float32_at_least_and_returns_the_inputs_dtype() -> None:
    """Half-precision inputs are normalized in float32, not in half (whose ~1e-4 rounding would show in a float32
    result), whichever side they come in on; the result has the promoted input dtype, half for two halves."""
    x16 = torch.tensor([3.0, 4.0], dtype=torch.float16)  # exact in half; x / |x| = (0.6, 0.8) is not
    y = torch.tensor([-4.0, 3.0])
    first = torch.tensor([0.6, 0.8])
    assert slerp(x16, y, 1.0).dtype == torch.float32
    assert torch.allclose(slerp(x16, y, 1.0), first, rtol=0, atol=1e-6)  # alpha 1: all e1
    assert torch.allclose(slerp(y, x16, 0.0), first, rtol=0, atol=1e-6)  # alpha 0: all e2
    assert slerp(x16, y.half(), 0.5).dtype == torch.float16


def test_slerp_below_the_small_angle_cutoff_still_moves_along_the_arc() -> None:
    """Below W = 1e-4 the normalized lerp alpha e1 + (1 - alpha) e2 stands in for SLERP (the same to O(W^3)):
    the point still lies at the angle (1 - alpha) W from e1, and e1 = e2 gives e1 back."""
    t = 2e-5
    e1, e2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, t], dtype=torch.float64)
    w = math.atan(t)  # the angle between e1 and e2
    for alpha in (0.25, 0.5):
        angle = (1 - alpha) * w
        expected = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        assert torch.allclose(slerp(e1, e2, alpha), expected, rtol=0, atol=1e-12)
    same = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.allclose(slerp(same, 2 * same, 0.3), torch.tensor([[0.6, 0.8]], dtype=torch.float64),
                          rtol=0, atol=1e-12)


def test_slerp_makes_a_list_of_alphas_on_the_inputs_device() -> None:
    # "meta" stands for a GPU: one alpha per row, given as a list, must meet the embeddings on their device.
    e = torch.zeros(2, 3, device="meta")
    out = slerp(e, e, [0.5, 0.25])
    assert out.device.type == "meta" and out.shape == (2, 3)


def test_slerp_takes_one_alpha_per_row_of_a_grid_of_embeddings() -> None:
    """(2, 2, D) embeddings with a (2, 2) alpha: alpha[i, j] goes with row (i, j), as it does for (B, D) and (B,)."""
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    alpha = torch.tensor([[0.0, 1.0], [0.5, 1 / 3]], dtype=torch.float64)
    # quarter circle from x to y: angle (1 - alpha) pi / 2 from x -> y, x, 45 degrees, 60 degrees
    r = 0.5 ** 0.5
    expected = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[r, r, 0.0], [0.5, 0.8660254037844386, 0.0]]],
                            dtype=torch.float64)
    got = slerp(x.expand(2, 2, 3), y.expand(2, 2, 3), alpha)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_slerp_takes_a_perpendicular_part_of_exactly_1e_minus_6_as_no_direction() -> None:
    """Near-opposite inputs turn towards e2's part orthogonal to e1 only when its norm is above 1e-6; at exactly
    1e-6 the fixed least-aligned axis is used, as for e2 = -e1. Pins the strict threshold."""
    x = torch.tensor([1.0, 0.0, 0.0])
    # In float32 |(-1, 0, h)| rounds to 1 for these h: e2 is unit as given and its orthogonal part is (0, 0, h).
    # W = pi - h, so alpha 0.5 turns by about pi / 2: the result is (about) the turning direction u.
    at = slerp(x, torch.tensor([-1.0, 0.0, 1e-6]), 0.5)  # u = x's least-aligned axis: y (the first zero entry)
    assert torch.allclose(at, torch.tensor([0.0, 1.0, 0.0]), rtol=0, atol=1e-5)
    above = slerp(x, torch.tensor([-1.0, 0.0, 2e-6]), 0.5)  # u = z, towards e2
    assert torch.allclose(above, torch.tensor([0.0, 0.0, 1.0]), rtol=0, atol=1e-5)


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
    assert restore_state(run, "gensis.test/1", "model", lambda state: seen.append(state["w"].device.type),
                         device="meta") == 7
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
    two_groups = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(2))]},
                                    {"params": [torch.nn.Parameter(torch.zeros(1))]}])
    with pytest.raises(CheckpointError) as refused:
        restore_state(run, "gensis.test/1", "model", lambda state: None, optimizer=two_groups)
    assert str(refused.value).startswith(f"{path}: does not fit this optimizer (")


def test_class_consistency_refuses_k_below_1() -> None:
    """With no neighbour there is no vote, so no figure: k = 0 is refused, not answered."""
    from gensis.eval.faithfulness import class_consistency

    emb = torch.eye(2)
    with pytest.raises(ValueError, match=r"^class_consistency: k must be >= 1, got 0$"):
        class_consistency(emb, torch.tensor([0, 1]), emb, torch.tensor([0, 1]), k=0)
    assert class_consistency(emb, torch.tensor([0, 1]), emb, torch.tensor([0, 1]), k=1) == 100.0


def test_the_latent_downsample_factor_halves_once_per_level_but_the_last() -> None:
    """An AutoencoderKL with L levels of block_out_channels downsamples L - 1 times: a factor 2^(L - 1),
    1, 2, 4, 8 for 1 to 4 levels (a 64-px image has 8-px latents with 4 levels, not 64 / 6)."""
    from gensis.autoencoder.latent import downsample_factor

    for levels, factor in ((1, 1), (2, 2), (3, 4), (4, 8)):
        vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=[8] * levels))
        assert downsample_factor(vae) == factor


def test_a_subset_of_unlabelled_images_stays_unlabelled() -> None:
    """subset() of images without labels keeps no labels (in memory or lazy), the ids in the order asked."""
    images = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 2, 2).contiguous()
    sub = ImageData(images, None, None, ["a", "b", "c"], "x.npz", 2).subset([2, 0])
    assert sub.labels is None and sub.ids == ["c", "a"] and sub.images[:, 0, 0, 0].tolist() == [2, 0]
    lazy = ImageData(None, None, None, ["a", "b", "c"], "d", 2, reader=lambda i: b"").subset([1])
    assert lazy.labels is None and lazy.images is None and lazy.ids == ["b"]


def _fake_autoencoder_loader(monkeypatch, fail: Exception | None = None) -> list:
    """AutoencoderKL.from_pretrained replaced by one that records its arguments and returns a small
    trainable module (or raises ``fail``)."""
    import diffusers

    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        if fail is not None:
            raise fail
        return torch.nn.Linear(2, 2)

    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained", from_pretrained)
    return calls


def _autoencoder_folder(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    return folder


def test_load_vae_freezes_the_autoencoder_on_the_device_asked_for_and_looks_in_the_cache_only(
        tmp_path, monkeypatch) -> None:
    """A folder loads with low_cpu_mem_usage=False (no accelerate needed, none of diffusers' warnings
    about it), a hub id from the local hub cache only (local_files_only=True: no network); either way the
    model comes back on ``device`` ("meta" standing for a GPU), in eval mode, with no parameter trained."""
    from gensis.autoencoder.latent import load_vae

    calls = _fake_autoencoder_loader(monkeypatch)
    folder = _autoencoder_folder(tmp_path / "vae")
    for name, kwargs in ((str(folder), {"low_cpu_mem_usage": False}), ("org/vae", {"local_files_only": True})):
        calls.clear()
        vae = load_vae(name, "meta")
        assert [(str(n), k) for n, k in calls] == [(name, kwargs)]
        assert not vae.training and all(p.device.type == "meta" and not p.requires_grad for p in vae.parameters())


def test_load_vae_refusals_name_the_key_and_the_weights_file(tmp_path, monkeypatch) -> None:
    """A folder that is not an autoencoder, or whose weights diffusers cannot load, is one CheckpointError
    line naming model.vae (the default key), the weights file (the folder when it has none) and the first
    line of diffusers' error."""
    from gensis.autoencoder.latent import load_vae

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(empty))
    assert str(refused.value) == f"model.vae: {empty} holds no config.json: not an AutoencoderKL folder"
    _fake_autoencoder_loader(monkeypatch, fail=RuntimeError("bad weights\n  at byte 8"))
    folder = _autoencoder_folder(tmp_path / "vae")
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(folder))
    assert str(refused.value) == f"model.vae: {folder}: not loadable as an AutoencoderKL (bad weights)"
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError) as refused:
        load_vae(str(folder))
    assert str(refused.value) == (f"model.vae: {folder / 'diffusion_pytorch_model.safetensors'}: "
                                  "not loadable as an AutoencoderKL (bad weights)")


def test_load_vae_refuses_a_file_a_run_folder_of_another_kind_and_a_corrupt_config(tmp_path) -> None:
    """What is not an autoencoder folder is refused in one line naming model.vae and the path: a file
    (a .safetensors one called a gensis encoder or generator file), a stage-1 or train-generator run folder
    (told apart by exported/encoder.safetensors or exported/generator.safetensors), and a config.json that
    is not JSON (with the first line of the parser's error)."""
    from gensis.autoencoder.latent import load_vae

    def refusal(path) -> str:
        with pytest.raises(CheckpointError) as refused:
            load_vae(str(path))
        return str(refused.value)

    folder_rule = ("an AutoencoderKL is a folder with config.json and weights "
                   "(save_pretrained output or a train-autoencoder run folder)")
    for name, kind in (("enc.safetensors", " (a gensis encoder or generator file)"), ("vae.bin", "")):
        (tmp_path / name).write_bytes(b"x")
        assert refusal(tmp_path / name) == f"model.vae: {tmp_path / name} is a file{kind}; {folder_rule}"
    for inner, kind in (("encoder", "a stage-1 run folder (an encoder)"),
                        ("generator", "a train-generator run folder")):
        run = tmp_path / inner
        (run / "exported").mkdir(parents=True)
        (run / "exported" / f"{inner}.safetensors").write_bytes(b"x")
        assert refusal(run) == (f"model.vae: {run} is {kind}, not an autoencoder; give a train-autoencoder "
                                "run folder or an AutoencoderKL folder")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("not json")
    assert refusal(broken) == (f"model.vae: {broken / 'config.json'}: corrupt "
                               "(Expecting value: line 1 column 1 (char 0))")


def test_load_vae_goes_to_the_network_only_when_the_hub_is_reachable(tmp_path, monkeypatch) -> None:
    """A hub id missing from the local cache is refused at once, in one line saying so, when the hub is
    unreachable; when reachable it is downloaded (a second from_pretrained with no local_files_only) and
    comes back frozen on the device asked for, and a failed download is one line with diffusers' first line."""
    import diffusers

    from gensis.autoencoder import latent

    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        if kwargs.get("local_files_only") or name == "org/missing":
            raise OSError("no such repo\n  details")
        return torch.nn.Linear(2, 2)

    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained", from_pretrained)
    monkeypatch.setattr(latent, "_hub_reachable", lambda: False)
    with pytest.raises(CheckpointError) as refused:
        latent.load_vae("org/vae")
    assert str(refused.value) == ("model.vae: cannot load an AutoencoderKL from 'org/vae': no such folder, not in "
                                  "the local hub cache, and the hub is unreachable (offline); pass a folder written "
                                  "by save_pretrained, or train one: gensis train-autoencoder")
    assert calls == [("org/vae", {"local_files_only": True})]
    monkeypatch.setattr(latent, "_hub_reachable", lambda: True)
    calls.clear()
    vae = latent.load_vae("org/vae", "meta")
    assert calls == [("org/vae", {"local_files_only": True}), ("org/vae", {})]
    assert not vae.training and all(p.device.type == "meta" and not p.requires_grad for p in vae.parameters())
    with pytest.raises(CheckpointError) as refused:
        latent.load_vae("org/missing")
    assert str(refused.value) == ("model.vae: cannot load an AutoencoderKL from 'org/missing' as a folder or hub id "
                                  "(a hub id needs a network): no such repo")


def test_the_hub_is_asked_once_on_port_443_unless_the_user_said_offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1/true/yes (any case) means no connection at all; otherwise one connection to
    huggingface.co:443 with the given timeout decides, closed at once, and any OSError means offline."""
    from gensis.autoencoder import latent

    calls = []

    class _Connection:
        def close(self) -> None:
            calls.append("closed")

    def connect(address, timeout):
        calls.append((address, timeout))
        if address != ("huggingface.co", 443):
            raise OSError("wrong address")
        return _Connection()

    monkeypatch.setattr("socket.create_connection", connect)
    for offline in ("1", "TRUE", "Yes"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        assert latent._hub_reachable() is False
    assert calls == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert latent._hub_reachable(timeout=0.5) is True
    assert calls == [(("huggingface.co", 443), 0.5), "closed"]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls.clear()
    assert latent._hub_reachable() is True and calls == [(("huggingface.co", 443), 3.0), "closed"]

    def refused(address, timeout):
        raise ConnectionRefusedError("no route")

    monkeypatch.setattr("socket.create_connection", refused)
    assert latent._hub_reachable() is False
