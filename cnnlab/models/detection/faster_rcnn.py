"""Faster R-CNN (Ren et al. 2015) and Mask R-CNN (He et al. 2017) on any zoo backbone.

Composed from torchvision's pieces (DESIGN principle 2): ``AnchorGenerator``, ``RegionProposalNetwork`` (RPN head:
per anchor an objectness logit and 4 box deltas; anchors with IoU >= 0.7 with an object are positive, < 0.3
negative, 256 sampled per image, half positive) and ``RoIHeads`` (proposals with IoU >= 0.5 are foreground, 64
sampled per image (the paper: 512), half foreground (the paper: a quarter); two FC layers, then class scores and
class-specific box deltas; Mask R-CNN adds a mask head, two 3x3 convs of 64 channels (the paper: four of 256) and a
2x up-convolution, predicting a 28 x 28 mask per class). Ours: the backbone adapter (``regions.FeatureMap``: one
stride-8 or stride-16 map from any backbone), the RoI pooler (``regions.RoIPooler``: RoI Align or RoI Pool, ``roi=``
swaps them), anchor sizes from the image size, and the calls: no ``GeneralizedRCNNTransform``, because the detect
task has already resized the images to its square size and normalized them with its own statistics (torchvision's
transform would resize and normalize a second time).

The four losses (plus the mask loss) come back separately: ``rpn_objectness`` (binary cross-entropy on the sampled
anchors), ``rpn_box`` (smooth L1 on the positive anchors' deltas), ``classifier`` (cross-entropy over C + 1 classes
on the sampled RoIs), ``box_reg`` (smooth L1 on the foreground RoIs' deltas of their true class) and ``mask`` (per-
pixel binary cross-entropy on the 28 x 28 mask of the true class, its target the object's mask cropped to the RoI by
RoI Align).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.detection.regions import FeatureMap, RoIPooler


def anchor_sizes(img_size: int) -> tuple[int, ...]:
    """Three anchor sizes for an S-px square image: S/8, S/4, S/2 (16, 32, 64 at 128 px; at 800 px,
    Faster R-CNN's 128, 256, 512 are S/6 .. S/1.6, for objects that fill more of the picture)."""
    return tuple(max(4, round(img_size / d)) for d in (8, 4, 2))


class FasterRCNN(nn.Module):
    """Backbone -> stride-8 (or 16) map -> RPN proposals -> RoI heads (+ the mask head with ``masks=True``)."""

    def __init__(self, backbone: nn.Module, num_classes: int, img_size: int, masks: bool = False, roi: str = "align",
                 channels: int = 128, representation: int = 256, rpn_post_nms_train: int = 300,
                 rpn_post_nms_test: int = 100, rois_per_image: int = 64, stride: int = 16,
                 positive_fraction: float = 0.5, rpn_pre_nms: tuple[int, int] = (600, 300)):
        super().__init__()
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
        from torchvision.models.detection.roi_heads import RoIHeads
        from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead

        self.features = FeatureMap(backbone, channels, stride)
        self.num_classes, self.img_size, self.with_masks, self.roi = num_classes, img_size, masks, roi
        ratios = (0.5, 1.0, 2.0)
        self.anchor_generator = AnchorGenerator((anchor_sizes(img_size),), (ratios,))
        self.rpn = RegionProposalNetwork(
            self.anchor_generator, RPNHead(channels, 3 * len(ratios)), fg_iou_thresh=0.7, bg_iou_thresh=0.3,
            batch_size_per_image=256, positive_fraction=0.5,
            pre_nms_top_n={"training": rpn_pre_nms[0], "testing": rpn_pre_nms[1]},
            post_nms_top_n={"training": rpn_post_nms_train, "testing": rpn_post_nms_test}, nms_thresh=0.7)
        mask_parts = {}
        if masks:
            mask_parts = dict(mask_roi_pool=RoIPooler(14, roi), mask_head=MaskRCNNHeads(channels, [64, 64], 1),
                              mask_predictor=MaskRCNNPredictor(64, 64, num_classes + 1))
        self.roi_heads = RoIHeads(
            RoIPooler(7, roi), TwoMLPHead(channels * 7 * 7, representation),
            FastRCNNPredictor(representation, num_classes + 1), fg_iou_thresh=0.5, bg_iou_thresh=0.5,
            batch_size_per_image=rois_per_image, positive_fraction=positive_fraction, bbox_reg_weights=None,
            score_thresh=0.01, nms_thresh=0.5, detections_per_img=100, **mask_parts)

    @property
    def backbone(self) -> nn.Module:
        return self.features.backbone

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the feature map (B, channels, H/s, W/s) the RPN and the heads read."""
        return self.features(x)

    def _run(self, x: torch.Tensor, targets: list[dict] | None):
        from torchvision.models.detection.image_list import ImageList

        sizes = [tuple(x.shape[-2:])] * x.shape[0]
        fmap = self.features(x)  # (B, channels, H/s, W/s), bf16 under --precision bf16
        # Box arithmetic in fp32: under autocast torchvision's box coder decodes the RPN's bf16 deltas into
        # bf16 proposals (0.5 px steps at 64-128 px) and encodes the heads' targets from them, up to 0.3 off
        # at weight 10 for a 16-px box: a floor under box_reg. The heads are small; only the backbone gains.
        with torch.autocast(x.device.type, enabled=False):
            feats = {"0": fmap.float()}
            images = ImageList(x.float(), sizes)
            proposals, rpn_losses = self.rpn(images, feats, targets)
            result, roi_losses = self.roi_heads(feats, proposals, sizes, targets)
        return result, {**rpn_losses, **roi_losses}

    def losses(self, x: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        """The multi-task loss: {"loss": sum, "rpn_objectness", "rpn_box", "classifier", "box_reg", "mask"?}."""
        tv_targets = []
        for t in targets:  # torchvision numbers classes from 1 (0 = background)
            d = {"boxes": t["boxes"].float(), "labels": t["labels"] + 1}
            if self.with_masks:
                d["masks"] = t["masks"]
            tv_targets.append(d)
        _, raw = self._run(x, tv_targets)
        names = {"loss_objectness": "rpn_objectness", "loss_rpn_box_reg": "rpn_box", "loss_classifier": "classifier",
                 "loss_box_reg": "box_reg", "loss_mask": "mask"}
        out = {names[k]: v for k, v in raw.items()}
        return {"loss": sum(out.values()), **{k: v.detach() for k, v in out.items()}}

    @torch.no_grad()
    def detect_images(self, x: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
                      proposals=None) -> list[dict[str, torch.Tensor]]:
        """Per image: boxes (N, 4) xyxy px, scores (N,), labels (N,) in 0..C-1, and with masks
        masks (N, H, W) f32 probabilities pasted into the image (threshold 0.5 for a binary mask)."""
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        self.roi_heads.score_thresh, self.roi_heads.nms_thresh = score_threshold, iou_threshold
        result, _ = self._run(x, None)
        out = []
        for r in result:
            d = {"boxes": r["boxes"], "scores": r["scores"], "labels": r["labels"] - 1}
            if self.with_masks:
                d["masks"] = paste_masks_in_image(r["masks"], r["boxes"], tuple(x.shape[-2:]))[:, 0]  # (N, H, W)
            out.append(d)
        return out
