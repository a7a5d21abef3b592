"""Fast R-CNN (Girshick 2015): one backbone pass per image, RoI pooling of the proposals on its features.

The image goes through the backbone once (``regions.FeatureMap``: a stride-8 map, or 16); each region proposal
(selective search, computed outside the network) is cut out of that map by RoI Pool into a 7 x 7 grid
(``roi="align"`` swaps in RoI Align), then two FC layers feed two sibling outputs: C + 1 class scores
and class-specific box deltas (4 per class). Training samples 64 RoIs per image, a quarter of them
foreground (IoU >= 0.5 with an object), the rest background (IoU in [0.1, 0.5)); the multi-task loss is
L = L_cls(p, u) + [u >= 1] L_loc(t^u, v): cross-entropy plus smooth L1 on the true class's deltas
(averaged over all sampled RoIs, so background RoIs add nothing to the box term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detection.regions import (FeatureMap, RoIPooler, class_boxes_to_detections, decode_boxes,
                                             sample_rois)


class FastRCNN(nn.Module):
    """Backbone -> stride-8 (or 16) map; proposals -> RoI Pool 7 x 7 -> FC -> FC -> (class scores, class-specific deltas)."""

    def __init__(self, backbone: nn.Module, num_classes: int, roi: str = "pool", channels: int = 128,
                 representation: int = 256, rois_per_image: int = 64, stride: int = 16):
        super().__init__()
        self.features = FeatureMap(backbone, channels, stride)
        self.num_classes, self.roi, self.rois_per_image = num_classes, roi, rois_per_image
        self.pool = RoIPooler(7, roi)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 49, representation), nn.ReLU(inplace=True),
                                  nn.Linear(representation, representation), nn.ReLU(inplace=True))
        self.cls_score = nn.Linear(representation, num_classes + 1)
        self.bbox_pred = nn.Linear(representation, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)  # the paper's initialization of the two siblings
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    @property
    def backbone(self) -> nn.Module:
        return self.features.backbone

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, channels, H/16, W/16)

    def roi_outputs(self, fmap: torch.Tensor, rois: list[torch.Tensor], img_hw) -> tuple[torch.Tensor, torch.Tensor]:
        """RoIs (list of (K_i, 4)) on the map -> class logits (K, C + 1) and deltas (K, C + 1, 4)."""
        h = self.head(self.pool(fmap, rois, [img_hw] * fmap.shape[0]))  # (K, representation)
        return self.cls_score(h), self.bbox_pred(h).view(-1, self.num_classes + 1, 4)

    def losses(self, x: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Multi-task loss on ``targets[i]["proposals"]``: {"loss", "classifier", "box_reg", "fg"}."""
        fmap = self.features(x)
        rois, classes, deltas = [], [], []
        for t in targets:
            r, c, d = sample_rois(t["proposals"].cpu(), t["boxes"].cpu(), t["labels"].cpu(), self.rois_per_image)
            rois.append(r.to(x.device))
            classes.append(c)
            deltas.append(d)
        classes, deltas = torch.cat(classes).to(x.device), torch.cat(deltas).to(x.device)
        logits, pred = self.roi_outputs(fmap, rois, tuple(x.shape[-2:]))
        logits, pred = logits.float(), pred.float()  # losses in fp32 under bf16 autocast (targets are fp32)
        cls_loss = F.cross_entropy(logits, classes)
        fg = classes > 0
        box_loss = F.smooth_l1_loss(pred[fg, classes[fg]], deltas[fg], beta=1 / 9, reduction="sum") / max(1, len(classes))
        return {"loss": cls_loss + box_loss, "classifier": cls_loss.detach(), "box_reg": box_loss.detach(),
                "fg": fg.float().mean()}

    @torch.no_grad()
    def detect_images(self, x: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
                      proposals: list[torch.Tensor] | None = None) -> list[dict[str, torch.Tensor]]:
        """Per image (with its proposals): softmax scores, each class's box decoded from its deltas, NMS."""
        if proposals is None:
            raise ValueError("Fast R-CNN needs region proposals for each image")
        fmap = self.features(x)
        rois = [p.to(x.device).float().reshape(-1, 4) for p in proposals]
        logits, deltas = self.roi_outputs(fmap, rois, tuple(x.shape[-2:]))
        scores = logits.softmax(-1)
        out, k = [], 0
        for r in rois:
            s, d = scores[k:k + len(r), 1:], deltas[k:k + len(r), 1:]  # background dropped
            boxes = decode_boxes(d, r)  # (K, C, 4)
            out.append(class_boxes_to_detections(boxes, s, tuple(x.shape[-2:]), score_threshold, iou_threshold))
            k += len(r)
        return out
