import math

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.ops.anchors import (
    assign_anchors,
    boxes_per_cell,
    decode_offsets,
    encode_offsets,
    hard_negative_mining,
    kmeans_anchors,
    match_default_boxes,
    mean_best_iou,
    ssd_default_boxes,
    ssd_scales,
    wh_iou,
)
from cnnlab.ops.boxes import box_iou


def test_wh_iou_is_iou_of_centred_boxes():
    wh1 = torch.tensor([[10.0, 20], [30, 5], [8, 8]])
    wh2 = torch.tensor([[20.0, 10], [8, 8]])
    centred = lambda wh: torch.cat([-wh / 2, wh / 2], dim=1)  # noqa: E731
    assert torch.allclose(wh_iou(wh1, wh2), box_iou(centred(wh1), centred(wh2)))
    assert wh_iou(wh1, wh2)[0, 0] == pytest.approx(100 / 300)


def test_assign_anchors_cell_and_best_shape():
    anchors = torch.tensor([[40.0, 80], [80, 40]])  # tall, wide (pixels)
    boxes = torch.tensor([[120.0, 210, 180, 290],  # tall box in cell (2, 1)
                          [0, 0, 90, 40]])  # wide box in cell (0, 0)
    rows, cols, idx, b = assign_anchors(boxes, 300, 300, 3, anchors)
    assert rows.tolist() == [2, 0] and cols.tolist() == [1, 0] and idx.tolist() == [0, 1]
    assert torch.allclose(b[0], torch.tensor([0.5, 0.5, 0.8, 0.6]))


def test_assign_anchors_collision_keeps_larger_box():
    anchors = torch.tensor([[40.0, 40]])
    boxes = torch.tensor([[10.0, 10, 30, 30],  # small, cell (0, 0)
                          [0, 0, 60, 60],  # larger, same cell and anchor: keeps the slot
                          [200, 200, 240, 240]])  # elsewhere
    rows, cols, idx, b, kept = assign_anchors(boxes, 300, 300, 3, anchors, return_kept=True)
    assert kept.tolist() == [1, 2]
    assert rows.tolist() == [0, 2] and cols.tolist() == [0, 2] and len(b) == 2
    # the same two in the other order: still the larger one
    _, _, _, _, kept = assign_anchors(boxes[[1, 0, 2]], 300, 300, 3, anchors, return_kept=True)
    assert kept.tolist() == [0, 2]


def _three_shape_clusters(n_per=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[12.0, 12], [60, 25], [30, 90]])  # small square, wide, tall
    wh = centres.repeat_interleave(n_per, 0) * (1 + 0.05 * torch.randn(3 * n_per, 2, generator=g))
    return wh, centres


def test_kmeans_recovers_three_shape_clusters():
    wh, centres = _three_shape_clusters()
    anchors, avg = kmeans_anchors(wh, 3)
    assert anchors.shape == (3, 2)
    assert torch.allclose(anchors, centres, rtol=0.05)  # sorted by area: small, wide, tall
    assert avg == pytest.approx(mean_best_iou(wh, anchors), abs=1e-6)
    hand_picked = torch.tensor([[16.0, 16], [32, 32], [64, 64]])
    assert avg > 0.85 > mean_best_iou(wh, hand_picked)


def test_kmeans_mean_iou_grows_with_k():
    g = torch.Generator().manual_seed(1)
    wh = torch.rand(80, 2, generator=g) * 90 + 5
    scores = [kmeans_anchors(wh, k)[1] for k in range(1, 6)]
    assert all(b >= a - 1e-3 for a, b in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("k", [0, 11])
def test_kmeans_bad_k(k):
    with pytest.raises(ConfigError, match="between 1 and the number of boxes"):
        kmeans_anchors(torch.rand(10, 2) + 1, k)


def test_ssd_scales_follow_the_paper():
    s = ssd_scales(6)
    assert s[:6] == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9]) and s[6] == 1.0


def test_ssd_default_boxes_one_map_by_hand():
    # one 2x2 map on a 100x100 image, scales (0.2, 0.8), ratio 2: 4 boxes per cell
    boxes = ssd_default_boxes([(2, 2)], 100, aspect_ratios=[(2,)], scales=[0.2, 0.8], clip=False)
    assert boxes_per_cell((2,)) == 4 and boxes_per_cell((2, 3)) == 6 and boxes.shape == (2 * 2 * 4, 4)
    r2 = math.sqrt(2)
    cell0 = torch.tensor([
        [25 - 10, 25 - 10, 25 + 10, 25 + 10],  # square s = 0.2
        [25 - 20, 25 - 20, 25 + 20, 25 + 20],  # square sqrt(0.2 * 0.8) = 0.4
        [25 - 10 * r2, 25 - 10 / r2, 25 + 10 * r2, 25 + 10 / r2],  # a = 2: wide
        [25 - 10 / r2, 25 - 10 * r2, 25 + 10 / r2, 25 + 10 * r2],  # a = 1/2: tall
    ])
    assert torch.allclose(boxes[:4], cell0)
    assert torch.allclose(boxes[4], cell0[0] + torch.tensor([50.0, 0, 50, 0]))  # cell (0, 1): row-major
    assert torch.allclose(boxes[8], cell0[0] + torch.tensor([0.0, 50, 0, 50]))  # cell (1, 0)


def test_ssd_default_boxes_count_and_range():
    sizes, ratios = [(8, 8), (4, 4), (2, 2), (1, 1)], [(2,), (2, 3), (2, 3), (2,)]
    boxes = ssd_default_boxes(sizes, (128, 160), aspect_ratios=ratios)
    assert boxes.shape == (sum(h * w * boxes_per_cell(r) for (h, w), r in zip(sizes, ratios)), 4)
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 160).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= 128).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    with pytest.raises(ConfigError):
        ssd_default_boxes(sizes, 128, scales=[0.1, 0.2])


def test_match_default_boxes():
    defaults = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [100, 100, 110, 110]])
    gt = torch.tensor([[0.0, 0, 10, 10], [52, 52, 70, 70]])
    matched = match_default_boxes(defaults, gt)
    # default 1 overlaps gt 0 with IoU 9/11 >= 0.5; default 2 is gt 1's best (IoU 64/460), forced
    assert matched.tolist() == [0, 0, 1, -1]
    assert match_default_boxes(defaults, torch.zeros(0, 4)).tolist() == [-1] * 4


def test_offsets_round_trip_and_values():
    d = torch.tensor([[0.0, 0, 10, 20], [5, 5, 25, 15]])
    g = torch.tensor([[1.0, 2, 11, 22], [0, 0, 40, 30]])
    t = encode_offsets(g, d)
    assert torch.allclose(t[0], torch.tensor([1 / (10 * 0.1), 2 / (20 * 0.1), 0, 0]), atol=1e-6)
    assert t[1, 2] == pytest.approx(math.log(40 / 20) / 0.2)
    assert torch.allclose(decode_offsets(t, d), g, atol=1e-5)
    assert torch.allclose(decode_offsets(t[None].repeat(3, 1, 1), d)[2], g, atol=1e-5)  # batched


def test_hard_negative_mining():
    loss = torch.tensor([[0.1, 0.9, 0.5, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.0],
                         [0.1, 0.9, 0.5, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.0]])
    pos = torch.zeros(2, 10, dtype=torch.bool)
    pos[0, 1] = True  # one positive: 3 hardest negatives are 3 (0.8), 5 (0.7), 7 (0.6)
    mask = hard_negative_mining(loss, pos)
    assert torch.nonzero(mask[0]).flatten().tolist() == [1, 3, 5, 7]
    # no positive: still min_negatives (= ratio) hardest negatives
    assert torch.nonzero(mask[1]).flatten().tolist() == [1, 3, 5]
    assert torch.nonzero(hard_negative_mining(loss, pos, min_negatives=0)[1]).numel() == 0
    # more positives than negatives allow: every default is used
    many = torch.zeros(2, 10, dtype=torch.bool)
    many[:, :4] = True
    assert hard_negative_mining(loss, many).all()
