import pytest
import torch
from torchvision import ops as tv_ops

from cnnlab.ops.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    decode_cells,
    encode_cells,
    non_max_suppression,
    paired_iou,
    remove_degenerate,
)


def _random_boxes(n, size=100.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


# -- existing behaviour ----------------------------------------------------------------------

def test_convert_iou_and_paired_iou():
    b = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15]])
    assert torch.allclose(box_convert(b, "xyxy", "xywh")[1], torch.tensor([5.0, 5, 10, 10]))
    assert torch.allclose(box_convert(b, "xyxy", "cxcywh")[0], torch.tensor([5.0, 5, 10, 10]))
    iou = box_iou(b, b)
    assert iou[0, 1] == pytest.approx(25 / 175)
    assert torch.allclose(paired_iou(b, b.flip(0)), iou.diagonal(1).repeat(2))
    assert paired_iou(torch.zeros(4), torch.zeros(4)) == 0


def test_area_clip_degenerate():
    b = torch.tensor([[-5.0, 2, 20, 8], [3, 3, 3, 9], [0, 0, 1.5, 4], [4, 9, 2, 12]])
    assert torch.allclose(box_area(b[:1]), torch.tensor([150.0]))
    assert torch.equal(clip_boxes(b[:1], h=6, w=10), torch.tensor([[0.0, 2, 10, 6]]))
    assert remove_degenerate(b).tolist() == [True, False, True, False]
    assert remove_degenerate(b, min_size=2).tolist() == [True, False, False, False]


# -- YOLO cell encoding ----------------------------------------------------------------------

def test_encode_cells_course_example():
    # 3x3 grid on a 300x300 image: cells are 100 px; a 60 (w) x 80 (h) box centred at (150, 250)
    # lies in the middle column of the bottom row, at the centre of that cell.
    box = torch.tensor([[120.0, 210, 180, 290]])
    rows, cols, b = encode_cells(box, 300, 300, 3)
    assert rows.tolist() == [2] and cols.tolist() == [1]
    assert torch.allclose(b, torch.tensor([[0.5, 0.5, 0.8, 0.6]]))  # b_x, b_y, b_h, b_w
    # a box wider than a cell: b_w > 1; a non-square grid and image
    rows, cols, b = encode_cells(torch.tensor([[10.0, 0, 250, 40]]), 200, 400, (4, 2))
    assert (rows.item(), cols.item()) == (0, 0)  # cells 200 wide, 50 high; midpoint (130, 20)
    assert torch.allclose(b, torch.tensor([[0.65, 0.4, 0.8, 1.2]]))


def test_encode_decode_cells_round_trip():
    boxes = _random_boxes(50, size=200)
    rows, cols, b = encode_cells(boxes, 240, 320, (7, 5))
    assert ((b[:, :2] >= 0) & (b[:, :2] < 1)).all()
    assert rows.dtype == torch.long and rows.max() < 7 and cols.max() < 5
    assert torch.allclose(decode_cells(rows, cols, b, 240, 320, (7, 5)), boxes, atol=1e-4)


# -- NMS -------------------------------------------------------------------------------------

def test_nms_course_rules_by_hand():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [0, 0, 10, 10.5], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3])
    # box 3 (0.95) suppresses 0 and 1; box 4 is below the score threshold
    assert non_max_suppression(boxes, scores, score_threshold=0.4).tolist() == [3, 2]
    # per class: box 1 is another class, so it survives
    labels = torch.tensor([0, 1, 0, 0, 0])
    assert non_max_suppression(boxes, scores, labels, score_threshold=0.4).tolist() == [3, 1, 2]
    # p_c <= threshold is discarded (equal included)
    assert non_max_suppression(boxes, scores, score_threshold=0.95).tolist() == []


def test_nms_suppresses_iou_equal_to_threshold():
    # IoU of these two boxes is exactly 0.5: the course's >= discards it, torchvision's > keeps it.
    boxes = torch.tensor([[0.0, 0, 4, 3], [0, 0, 2, 3]])
    scores = torch.tensor([0.9, 0.8])
    assert box_iou(boxes[:1], boxes[1:]).item() == 0.5
    assert non_max_suppression(boxes, scores, iou_threshold=0.5).tolist() == [0]
    assert batched_nms(boxes, scores, None, 0.5).tolist() == [0, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_torchvision_on_random_boxes(seed):
    g = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(200, seed=seed)
    scores = torch.rand(200, generator=g)
    labels = torch.randint(0, 3, (200,), generator=g)
    for thr in (0.3, 0.5, 0.7):
        mine = non_max_suppression(boxes, scores, labels, score_threshold=0.2, iou_threshold=thr)
        keep = torch.nonzero(scores > 0.2).flatten()
        ref = keep[tv_ops.batched_nms(boxes[keep], scores[keep], labels[keep], thr)]
        assert mine.tolist() == ref.tolist()
        assert batched_nms(boxes[keep], scores[keep], labels[keep], thr).tolist() == \
            tv_ops.batched_nms(boxes[keep], scores[keep], labels[keep], thr).tolist()
    # class-agnostic
    assert non_max_suppression(boxes, scores).tolist() == tv_ops.nms(boxes, scores, 0.5).tolist()
    assert torch.all(scores[mine][:-1] >= scores[mine][1:])  # sorted by decreasing score


def test_nms_empty():
    out = non_max_suppression(torch.zeros(0, 4), torch.zeros(0))
    assert out.dtype == torch.long and out.numel() == 0
