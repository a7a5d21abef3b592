"""The region-based detectors' parts against formulas, hand-computed values and torchvision: the box
parameterization, RoI Pool / RoI Align, Fast R-CNN's RoI sampling, the RPN's anchors and anchor targets,
Mask R-CNN's mask targets, R-CNN's warping and its SVM stage with hard negative mining."""

import math

import numpy as np
import pytest
import torch
import torchvision

from cnnlab.models import create_model
from cnnlab.models.detection.fast_rcnn import FastRCNN
from cnnlab.models.detection.faster_rcnn import FasterRCNN, anchor_sizes
from cnnlab.models.detection.rcnn import RCNN, fit_linear_svm, warp_regions
from cnnlab.models.detection.regions import RoIPooler, decode_boxes, encode_boxes, sample_rois


def random_boxes(n: int, size: float, seed: int = 0) -> torch.Tensor:
    """n boxes (n, 4) xyxy inside a size x size image, each 8 to size/2 px on a side."""
    g = torch.Generator().manual_seed(seed)
    wh = 8 + torch.rand(n, 2, generator=g) * (size / 2 - 8)
    xy = torch.rand(n, 2, generator=g) * (size - wh)
    return torch.cat([xy, xy + wh], 1)


def test_box_encoding_against_hand_values_and_its_inverse():
    p = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 20.0, 30.0, 60.0]])  # centres (5, 5), (20, 40); w, h 10x10, 20x40
    g = torch.tensor([[2.0, 2.0, 12.0, 12.0], [5.0, 30.0, 45.0, 50.0]])  # centres (7, 7), (25, 40); 10x10, 40x20
    t = encode_boxes(g, p, weights=(1, 1, 1, 1))
    assert torch.allclose(t[0], torch.tensor([0.2, 0.2, 0.0, 0.0]))
    assert torch.allclose(t[1], torch.tensor([5 / 20, 0.0, math.log(2), math.log(0.5)]))
    assert torch.allclose(encode_boxes(g, p), t * torch.tensor([10.0, 10.0, 5.0, 5.0]))  # Fast R-CNN's scaling
    assert torch.allclose(decode_boxes(encode_boxes(g, p), p), g, atol=1e-5)
    # torchvision's BoxCoder (what the RPN and RoIHeads use) agrees
    coder = torchvision.models.detection._utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(coder.encode_single(g, p), encode_boxes(g, p), atol=1e-5)


def test_roi_pool_and_align_against_torchvision_and_by_hand():
    torch.manual_seed(0)
    feats = torch.randn(2, 3, 8, 8)
    boxes = [torch.tensor([[0.0, 0.0, 64.0, 64.0], [16.0, 8.0, 40.0, 56.0]]), torch.tensor([[4.0, 4.0, 30.0, 20.0]])]
    shapes = [(64, 64)] * 2  # stride 8
    pool = RoIPooler(2, "pool")(feats, boxes, shapes)
    align = RoIPooler(2, "align")({"0": feats}, boxes, shapes)
    assert torch.equal(pool, torchvision.ops.roi_pool(feats, boxes, 2, 1 / 8))
    assert torch.allclose(align, torchvision.ops.roi_align(feats, boxes, 2, 1 / 8, 1, aligned=True))
    # RoI Pool quantizes: x 0..56 at stride 8 rounds to cells 0..7 inclusive (Fast R-CNN's +1 convention),
    # the whole 8 x 8 map, so its 2 x 2 bins are the max of each quadrant
    whole = RoIPooler(2, "pool")(feats, [torch.tensor([[0.0, 0.0, 56.0, 56.0]])], shapes)
    quadrants = feats[0].unfold(1, 4, 4).unfold(2, 4, 4).amax((-1, -2))  # (3, 2, 2)
    assert torch.equal(whole[0], quadrants)
    # RoI Align of a linear ramp samples it exactly: a bin's value is the ramp at the bin's centre
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # value = x index (pixel centres at x + 0.5 with aligned=True)
    v = RoIPooler(2, "align")(ramp, [torch.tensor([[1.0, 1.0, 5.0, 5.0]])], [(8, 8)])
    assert torch.allclose(v[0, 0], torch.tensor([[2.0, 4.0], [2.0, 4.0]]) - 0.5)  # bin centres x = 2, 4


def test_fast_rcnn_roi_sampling_on_a_constructed_case():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    props = torch.cat([gt + 1.0, torch.tensor([[30.0, 30.0, 70.0, 70.0]]), torch.tensor([[80.0, 80.0, 120.0, 120.0]]).repeat(50, 1)])
    rois, classes, targets = sample_rois(props, gt, torch.tensor([2]), num=16, generator=torch.Generator().manual_seed(0))
    assert len(rois) == 16 and (classes > 0).sum() == 2 and set(classes[classes > 0].tolist()) == {3}
    fg = classes > 0
    assert torch.allclose(targets[fg], encode_boxes(gt.expand(int(fg.sum()), 4), rois[fg]))
    assert (targets[~fg] == 0).all()
    # the IoU-0.14 proposal is a [0.1, 0.5) background; the far ones (IoU 0) fill up the rest
    assert any(torch.equal(r, torch.tensor([30.0, 30.0, 70.0, 70.0])) for r in rois[~fg])


def test_rpn_anchors_and_anchor_targets_on_a_constructed_case():
    model = FasterRCNN(create_model("mobilenet_v2", num_classes=1), 3, 128)
    assert anchor_sizes(128) == (16, 32, 64)
    from torchvision.models.detection.image_list import ImageList

    x = torch.zeros(1, 3, 128, 128)
    fmap = model.features(x)
    assert fmap.shape == (1, 128, 8, 8)  # stride 16
    anchors = model.anchor_generator(ImageList(x, [(128, 128)]), [fmap])[0]
    assert anchors.shape == (8 * 8 * 9, 4)
    # torchvision's cell anchors are centred on (16 j, 16 i), ratio-major: (0.5: 16, 32, 64), (1: 16, 32, 64), ...
    assert torch.equal(anchors[3], torch.tensor([-8.0, -8.0, 8.0, 8.0]))  # ratio 1, size 16, cell (0, 0)
    assert torch.equal(anchors[0], torch.tensor([-11.0, -6.0, 11.0, 6.0]))  # h / w = 0.5, area 16^2: 22.6 x 11.3
    cell = anchors.view(8, 8, 9, 4)
    assert torch.equal(cell[2, 3, 4], torch.tensor([48.0 - 16, 32.0 - 16, 48.0 + 16, 32.0 + 16]))  # size 32 at (x 48, y 32)
    gt = torch.tensor([[32.0, 16.0, 64.0, 48.0]])  # exactly that anchor
    labels, matched = model.rpn.assign_targets_to_anchors([anchors], [{"boxes": gt}])
    iou = torchvision.ops.box_iou(anchors, gt)[:, 0]
    assert labels[0][iou >= 0.7].eq(1).all() and labels[0].view(8, 8, 9)[2, 3, 4] == 1
    assert labels[0][iou < 0.3].eq(0).all()
    assert labels[0][(iou >= 0.3) & (iou < 0.7)].eq(-1).all()  # neither: ignored by the loss
    # the regression target of a positive anchor is the R-CNN encoding with unit weights
    shifted = gt + torch.tensor([4.0, 0.0, 4.0, 0.0])
    t = model.rpn.box_coder.encode([shifted], [cell[2, 3, 4][None]])[0]
    assert torch.allclose(t, torch.tensor([[4 / 32, 0.0, 0.0, 0.0]]))


def test_faster_and_mask_rcnn_losses_are_the_four_plus_mask_and_every_head_learns():
    torch.manual_seed(0)
    model = FasterRCNN(create_model("resnet20", num_classes=1), 2, 64, masks=True, roi="pool")
    m = torch.zeros(1, 64, 64, dtype=torch.uint8)
    m[0, 10:40, 20:50] = 1
    targets = [{"boxes": torch.tensor([[20.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([1]), "masks": m}]
    out = model.losses(torch.randn(1, 3, 64, 64), targets)
    assert set(out) == {"loss", "rpn_objectness", "rpn_box", "classifier", "box_reg", "mask"}
    out["loss"].backward()
    for head in (model.rpn.head, model.roi_heads.box_predictor, model.roi_heads.mask_predictor):
        assert sum(p.grad.abs().sum() for p in head.parameters()) > 0
    model.eval()
    det = model.detect_images(torch.randn(2, 3, 64, 64), 0.0, 0.5)
    assert len(det) == 2 and det[0]["masks"].shape[1:] == (64, 64) and det[0]["labels"].max() <= 1


def test_mask_targets_are_the_object_mask_cropped_to_the_roi():
    """Mask R-CNN's target for a RoI: the object's full-image mask cut to the RoI and resampled to M x M
    (torchvision's project_masks_on_boxes, with RoI Align, which our RoIHeads call)."""
    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    mask = torch.zeros(1, 64, 64)
    mask[0, 20:40, 10:30] = 1  # a 20 x 20 square, x 10..30, y 20..40
    rois = torch.tensor([[10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 50.0, 40.0], [10.0, 0.0, 30.0, 40.0]])
    t = project_masks_on_boxes(mask, rois, torch.zeros(3, dtype=torch.long), 28)  # (3, 28, 28)
    # (its RoI Align is the non-aligned one: pixel i sits at coordinate i, so the last row and column of
    # samples fall between the square's last pixel and the background: partly 1, a known half-pixel offset)
    inner = slice(0, 27)
    assert torch.allclose(t[0][inner, inner], torch.ones(27, 27)) and t[0].mean() > 0.95  # the RoI is the square
    assert torch.allclose(t[1][inner, :13], torch.ones(27, 13)) and torch.allclose(t[1][:, 15:], torch.zeros(28, 13))
    assert torch.allclose(t[2][:13], torch.zeros(13, 28)) and torch.allclose(t[2][15:27, inner], torch.ones(12, 27))


def test_rcnn_warps_regions_with_context_padding():
    x = torch.arange(64.0).repeat(64, 1)[None].expand(1, 3, 64, 64).contiguous()  # value = x coordinate
    crop = warp_regions(x, [torch.tensor([[16.0, 16.0, 48.0, 48.0]])], 227)  # the paper's 227 px
    # the box spans x 16..48; with 16 px of context at 227 px the warped window spans 227 / (227 - 32) of it
    width = 32 * 227 / (227 - 32)
    left = 32 - width / 2
    assert crop.shape == (1, 3, 227, 227)
    assert crop[0, 0, 100, 16] == pytest.approx(left + (16 + 0.5) * width / 227 - 0.5, abs=1e-3)


def test_svm_hard_negative_mining_adds_the_negatives_inside_the_margin():
    rng = np.random.default_rng(0)
    pos = rng.normal(2.0, 0.5, (40, 5)).astype(np.float32)
    easy = rng.normal(-4.0, 0.5, (3000, 5)).astype(np.float32)
    hard = rng.normal(0.5, 0.5, (60, 5)).astype(np.float32)  # close to the positives
    neg = np.concatenate([easy, hard])
    w, b, sizes = fit_linear_svm(pos, neg, c=1.0, rounds=2, start=100, seed=0)
    assert sizes[0] == 100 and sizes[1] > sizes[0]  # round 1 added the mined negatives
    margin_pos, margin_neg = pos @ w + b, neg @ w + b
    assert (margin_pos > 0).mean() >= 0.95 and (margin_neg < 0).mean() >= 0.99
    # the mined negatives are the ones a 100-negative SVM cannot see: its errors on the hard set drop
    w0, b0, _ = fit_linear_svm(pos, neg, c=1.0, rounds=0, start=100, seed=0)
    assert ((hard @ w + b) < 0).mean() >= ((hard @ w0 + b0) < 0).mean()


class MeanColour(torch.nn.Module):
    """A backbone whose features are the pixels themselves: pooled, a region's mean colour."""

    feature_info = [{"num_chs": 3, "reduction": 1, "module": "id"}]

    def __init__(self):
        super().__init__()
        self.id = torch.nn.Identity()
        self.unused = torch.nn.Linear(1, 1)

    def forward_features(self, x):
        return self.id(x)


def test_rcnn_fits_svms_and_regressors_and_detects():
    torch.manual_seed(0)
    model = RCNN(MeanColour(), 2, warp=16)
    items = []
    for k in range(12):
        x = torch.randn(3, 64, 64) * 0.1
        c = k % 2
        x[c, 10:40, 10:40] += 3.0  # class 0 bright in red, class 1 in green
        gt = torch.tensor([[10.0, 10.0, 40.0, 40.0]])
        props = torch.cat([gt + torch.tensor([2.0, 1.0, 2.0, 1.0]), random_boxes(30, 64, k)])
        items.append((x, gt, torch.tensor([c]), props))
    report = model.fit_svms(items, negatives_per_image=31, svm_c=1.0)
    assert float(model.fitted) == 1.0 and report["classes"][0]["positives"] == 6
    assert model.svm_w.abs().sum() > 0 and report["classes"][0]["regression"] >= 1
    x = torch.stack([it[0] for it in items[:2]])
    det = model.detect_images(x, 0.0, 0.3, proposals=[it[3] for it in items[:2]])
    assert det[0]["labels"][0] == 0 and det[1]["labels"][0] == 1  # the best detection has the right class
    # ... and lies on the object (mean colour cannot say where the box is: the SVM alone, regressors off)
    model.reg_w.zero_(), model.reg_b.zero_()
    top = model.detect_images(x, 0.0, 0.3, proposals=[it[3] for it in items[:2]])[0]["boxes"][0]
    inside = (torch.minimum(top[2:], torch.tensor([40.0, 40])) - torch.maximum(top[:2], torch.tensor([10.0, 10]))).clamp(min=0)
    assert inside.prod() / (top[2:] - top[:2]).prod() > 0.7
    out = model.losses(x, [{"boxes": it[1], "labels": it[2], "proposals": it[3]} for it in items[:2]])
    assert set(out) == {"loss", "classifier", "acc"} and float(model.fitted) == 0.0


def test_fast_rcnn_loss_and_detections():
    torch.manual_seed(0)
    model = FastRCNN(create_model("resnet20", num_classes=1), 3)
    gt = torch.tensor([[10.0, 10.0, 40.0, 40.0]])
    props = torch.cat([gt + 1, random_boxes(40, 64)])
    out = model.losses(torch.randn(1, 3, 64, 64), [{"boxes": gt, "labels": torch.tensor([1]), "proposals": props}])
    assert set(out) == {"loss", "classifier", "box_reg", "fg"} and out["classifier"] == pytest.approx(math.log(4), abs=0.05)
    out["loss"].backward()
    assert model.bbox_pred.weight.grad.abs().sum() > 0
    det = model.eval().detect_images(torch.randn(1, 3, 64, 64), 0.0, 0.5, proposals=[props])
    assert det[0]["boxes"].shape[1] == 4 and det[0]["labels"].max() < 3


def test_faster_rcnn_box_targets_stay_fp32_under_bf16_autocast(monkeypatch):
    """Regression (issue 19): under bf16 autocast torchvision's box coder decoded the RPN's bf16 deltas into
    bf16 proposals and encoded the heads' regression targets from them (0.5-px steps at 64-128 px, up to 0.3
    off at weight 10): the second stage's box targets must be fp32 and equal the fp32 run's."""
    from torchvision.models.detection.roi_heads import RoIHeads

    torch.manual_seed(0)
    model = FasterRCNN(create_model("resnet20", num_classes=1), 2, 128)
    seen = []
    original = RoIHeads.select_training_samples

    def spy(self, proposals, targets):
        out = original(self, proposals, targets)
        seen.append((proposals[0].dtype, out[0][0], out[3][0]))  # proposal dtype, sampled RoIs, their targets
        return out

    monkeypatch.setattr(RoIHeads, "select_training_samples", spy)
    x = torch.randn(1, 3, 128, 128)
    targets = [{"boxes": torch.tensor([[70.3, 81.7, 93.1, 113.9]]), "labels": torch.tensor([1])}]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.losses(x, targets)
    dtype, rois, reg = seen[-1]
    assert dtype == torch.float32 and reg.dtype == torch.float32
    expected = encode_boxes(targets[0]["boxes"].expand(len(rois), 4), rois)  # (K, 4), fp32 by hand's formula
    gt_row = (rois - targets[0]["boxes"]).abs().sum(1) < 1e-4  # the ground truth joins the proposals
    assert gt_row.any() and torch.allclose(reg[gt_row], expected[gt_row], atol=1e-5)
    assert float(reg[gt_row].abs().max()) < 1e-4  # a ground-truth RoI regresses onto itself exactly


def test_grid_sample_roi_align_matches_torchvision_values_and_gradients():
    from cnnlab.models.detection.regions import roi_align_one_sample

    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, 16, requires_grad=True)
    xy = torch.rand(2, 20, 2) * 100
    boxes = [torch.cat([p, (p + torch.rand(20, 2) * 60 + 2).clamp(max=128)], 1) for p in xy]
    boxes[0][0] = torch.tensor([0.0, 0.0, 128.0, 128.0])  # the whole map, edges included
    ours = roi_align_one_sample(x, boxes, 7, 1 / 8)
    (g_ours,) = torch.autograd.grad((ours * torch.arange(7.0)).sum(), x)
    ref = torchvision.ops.roi_align(x, boxes, 7, 1 / 8, 1, aligned=True)
    (g_ref,) = torch.autograd.grad((ref * torch.arange(7.0)).sum(), x)
    assert ours.shape == (40, 5, 7, 7)
    assert torch.allclose(ours, ref, atol=1e-5) and torch.allclose(g_ours, g_ref, atol=1e-4)


def test_feature_stride_default_and_runs_saved_before_the_option():
    from cnnlab.tasks.detect_regions import create_region_network

    meta = {"num_classes": 3, "img_size": [64, 64], "detector": "faster_rcnn", "roi": None}
    old = create_region_network(meta, create_model("mobilenet_v2", num_classes=1))  # a run saved without the key
    new = create_region_network(dict(meta, feature_stride=8), create_model("mobilenet_v2", num_classes=1))
    assert old.features.stride == 16 and new.features.stride == 8
    x = torch.randn(1, 3, 64, 64)
    assert old(x).shape[-1] == 4 and new(x).shape[-1] == 8  # 64 / 16, 64 / 8
    assert old.roi_heads.fg_bg_sampler.positive_fraction == 0.5
