"""SSD: Single Shot MultiBox Detector (Liu et al. 2016) on any zoo backbone.

Default boxes of several scales and aspect ratios tile several feature maps: the backbone's stages at
strides 8, 16 and 32 (those it has), then extra stride-2 layers down to a 1 x 1 map. A 3x3 conv on each
map predicts, per default box, 4 offsets and C + 1 class scores (0 = background).

Training (the paper's): each object is matched to its best default box and to every default box with
IoU >= 0.5; the loss is smooth-L1 on the matched boxes' encoded offsets plus cross-entropy over the
matched boxes and the hardest negatives (3 per positive), both divided by the number of matches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detection.common import ConvBNAct, backbone_levels, select_detections



def default_scales(m: int, s_min: float = 0.2, s_max: float = 0.9, first: float = 0.1) -> tuple[float, ...]:
    """Scales of the default boxes as fractions of the image for ``m`` maps, plus one more (for the
    sqrt(s_k s_k+1) box of the last map): SSD's (Liu et al. 2016) VOC setting, 0.1 on the first
    (finest) map, then s_min .. s_max spaced evenly: m = 5 gives 0.1, 0.2, 0.375, 0.55, 0.725 (+ 0.9)."""
    if m == 1:
        return (s_min, s_max)
    return (first, *(s_min + (s_max - s_min) * k / (m - 1) for k in range(m)))


class SSD(nn.Module):
    """Backbone stages at strides 8-32 + extra layers -> per-map loc and conf heads; see the module docstring."""

    def __init__(self, backbone: nn.Module, num_classes: int, img_size: int, strides: tuple[int, ...] = (8, 16, 32),
                 extra_channels: int = 128, scales: tuple[float, ...] | None = None, neg_ratio: int = 3,
                 iou_threshold: float = 0.5):
        super().__init__()
        from cnnlab.ops.anchors import boxes_per_cell

        levels = backbone_levels(backbone)
        by_stride: dict[int, dict] = {}
        for lv in levels:  # the last stage of each stride (the deepest features at that resolution)
            by_stride[lv["reduction"]] = lv
        chosen = [by_stride[s] for s in strides if s in by_stride]
        if not chosen:
            chosen = [levels[-1]]
        self.backbone = backbone
        self.num_classes = num_classes
        self.img_size = img_size
        self.indices = [lv["index"] for lv in chosen]
        self.neg_ratio, self.iou_threshold = neg_ratio, iou_threshold
        size = -(-img_size // chosen[-1]["reduction"])
        chans = [lv["num_chs"] for lv in chosen]
        self.extras = nn.ModuleList()
        while size > 1:  # extra layers halve the map down to 1 x 1 (SSD's conv8_2 .. conv11_2)
            self.extras.append(nn.Sequential(ConvBNAct(chans[-1], extra_channels // 2, 1),
                                             ConvBNAct(extra_channels // 2, extra_channels, 3, stride=2)))
            chans.append(extra_channels)
            size = -(-size // 2)
        m = len(chans)
        self.scales = tuple(scales) if scales is not None else default_scales(m)
        if len(self.scales) != m + 1:
            raise ValueError(f"SSD on {m} feature maps needs {m + 1} scales, got {len(self.scales)}")
        self.aspect_ratios = tuple((2,) if k in (0, m - 1) else (2, 3) for k in range(m))
        self.loc = nn.ModuleList()
        self.conf = nn.ModuleList()
        for c, ratios in zip(chans, self.aspect_ratios):
            d = boxes_per_cell(ratios)
            self.loc.append(nn.Conv2d(c, d * 4, 3, padding=1))
            self.conf.append(nn.Conv2d(c, d * (num_classes + 1), 3, padding=1))
        self._defaults: dict[tuple, torch.Tensor] = {}

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone.forward_intermediates(x, self.indices)
        y = feats[-1]
        for extra in self.extras:
            y = extra(y)
            feats.append(y)
        return feats

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) -> {"loc": (B, D, 4) offsets, "conf": (B, D, C + 1) logits, "sizes": the maps' (h, w)}."""
        feats = self.feature_maps(x)
        b = x.shape[0]
        # (B, d * 4, h, w) -> (B, h, w, d, 4): cell by cell, the order ssd_default_boxes lists the boxes in
        loc = torch.cat([head(f).permute(0, 2, 3, 1).reshape(b, -1, 4) for head, f in zip(self.loc, feats)], 1)
        conf = torch.cat([head(f).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes + 1)
                          for head, f in zip(self.conf, feats)], 1)
        sizes = torch.tensor([f.shape[-2:] for f in feats])
        return {"loc": loc, "conf": conf, "sizes": sizes, "img_size": torch.tensor(x.shape[-2:])}

    def default_boxes(self, sizes: torch.Tensor, img_size: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(D, 4) xyxy pixels for these map sizes (cached)."""
        from cnnlab.ops.anchors import ssd_default_boxes

        key = (tuple(map(tuple, sizes.tolist())), tuple(img_size.tolist()), str(device))
        if key not in self._defaults:
            self._defaults[key] = ssd_default_boxes([tuple(s) for s in sizes.tolist()], tuple(img_size.tolist()),
                                                    aspect_ratios=self.aspect_ratios, scales=self.scales).to(device)
        return self._defaults[key]

    # ------------------------------------------------------------------ training and inference
    def loss(self, out: dict[str, torch.Tensor], targets: list[dict], img_size=None) -> dict[str, torch.Tensor]:
        from cnnlab.ops.anchors import encode_offsets, hard_negative_mining, match_default_boxes

        loc, conf = out["loc"].float(), out["conf"].float()
        defaults = self.default_boxes(out["sizes"], out["img_size"], loc.device)
        b, d = conf.shape[:2]
        cls_t = torch.zeros(b, d, dtype=torch.long, device=loc.device)
        loc_t = torch.zeros(b, d, 4, device=loc.device)
        for i, t in enumerate(targets):
            if len(t["boxes"]) == 0:
                continue
            gt = t["boxes"].to(loc.device).float()
            match = match_default_boxes(defaults, gt, self.iou_threshold)  # (D,) gt index or -1
            pos = match >= 0
            cls_t[i, pos] = t["labels"].to(loc.device)[match[pos]] + 1
            loc_t[i, pos] = encode_offsets(gt[match[pos]], defaults[pos])
        positive = cls_t > 0
        n_pos = positive.sum().clamp(min=1).float()
        ce = F.cross_entropy(conf.reshape(-1, self.num_classes + 1), cls_t.reshape(-1), reduction="none").view(b, d)
        used = hard_negative_mining(ce.detach(), positive, self.neg_ratio)
        loss_conf = ce[used].sum() / n_pos
        loss_loc = F.smooth_l1_loss(loc[positive], loc_t[positive], reduction="sum", beta=1.0) / n_pos
        return {"loss": loss_conf + loss_loc, "conf": loss_conf.detach(), "loc": loss_loc.detach(),
                "positives": positive.sum().float() / b}

    @torch.no_grad()
    def detect(self, out: dict[str, torch.Tensor], score_threshold: float = 0.01, iou_threshold: float = 0.45,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        from cnnlab.ops.anchors import decode_offsets

        defaults = self.default_boxes(out["sizes"], out["img_size"], out["loc"].device)
        scores = out["conf"].float().softmax(-1)[..., 1:]  # (B, D, C), background dropped
        res = []
        for i in range(scores.shape[0]):
            boxes = decode_offsets(out["loc"][i].float(), defaults)
            res.append(select_detections(boxes, scores[i], score_threshold, iou_threshold, max_detections))
        return res

