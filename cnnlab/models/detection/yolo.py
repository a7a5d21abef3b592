"""YOLO with anchor boxes (Redmon et al. 2016; YOLOv2, Redmon & Farhadi 2017) on any zoo backbone.

The image is cut into an S x S grid; each cell predicts, for each of its A anchor boxes, the course's
vector y = [p_c, b_x, b_y, b_h, b_w, c_1..c_C]: output (B, S, S, A, 5 + C). An object is the
responsibility of the cell holding its midpoint and of the anchor whose shape fits it best (IoU).

    b_x, b_y = sigmoid(t_x), sigmoid(t_y)       midpoint inside the cell, as fractions of the cell
    w, h     = anchor_w * exp(t_w), anchor_h * exp(t_h)

The grid: the backbone's deepest features (stride 32 for MobileNetV2) are upsampled and joined with the
stride-16 ones (YOLOv2's passthrough idea), so a 128-px image gets an 8 x 8 grid; a backbone whose
deepest stride is already <= ``stride`` is used as it is.

Loss (summed over the grid, averaged over images): objectness as logistic loss on every anchor slot
(slots whose predicted box already overlaps an object by IoU > ``ignore_iou`` are not pushed to 0,
as in YOLOv2; empty slots weighted ``noobj_weight``), squared error on (b_x, b_y, t_w, t_h) and
cross-entropy on the classes for the responsible slots only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detection.common import ConvBNAct, backbone_levels, select_detections

HAND_PICKED_ANCHORS = ((0.15, 0.15), (0.2, 0.3), (0.3, 0.2), (0.3, 0.4), (0.45, 0.45))  # fractions of the image (w, h)


class YOLO(nn.Module):
    """Backbone -> passthrough neck -> 1x1 conv to A * (5 + C) per cell; see the module docstring."""

    def __init__(self, backbone: nn.Module, num_classes: int, anchors: list | torch.Tensor, stride: int = 16,
                 width: int = 128, coord_weight: float = 5.0, noobj_weight: float = 0.5, ignore_iou: float = 0.6,
                 extra_anchor_iou: float = 1.0):
        super().__init__()
        levels = backbone_levels(backbone)
        deep = levels[-1]
        self.backbone = backbone
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32).reshape(-1, 2))  # (A, 2) px (w, h)
        self.coord_weight, self.noobj_weight, self.ignore_iou = coord_weight, noobj_weight, ignore_iou
        self.extra_anchor_iou = extra_anchor_iou
        skip = next((lv for lv in levels if lv["reduction"] == stride), None) if deep["reduction"] > stride else None
        if deep["reduction"] > stride and skip is None:
            raise ValueError(f"{type(backbone).__name__} has no feature stage at stride {stride} "
                             f"(its strides: {[lv['reduction'] for lv in levels]})")
        self.stride = stride if skip is not None else deep["reduction"]
        self.indices = [skip["index"], deep["index"]] if skip is not None else [deep["index"]]
        self.reduce_deep = ConvBNAct(deep["num_chs"], width, 1)
        self.reduce_skip = ConvBNAct(skip["num_chs"], width // 2, 1) if skip is not None else None
        cin = width + (width // 2 if skip is not None else 0)
        self.neck = nn.Sequential(ConvBNAct(cin, width, 3), ConvBNAct(width, width, 3))
        a = len(self.anchors)
        self.pred = nn.Conv2d(width, a * (5 + num_classes), 1)
        with torch.no_grad():  # start every slot at p_c ~ 0.01: the empty grid does not swamp the first steps
            self.pred.bias.zero_()
            self.pred.bias.view(a, 5 + num_classes)[:, 0] = -4.6

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, S_h, S_w, A, 5 + C) raw outputs [t_o, t_x, t_y, t_w, t_h, class logits]."""
        feats = self.backbone.forward_intermediates(x, self.indices)
        y = self.reduce_deep(feats[-1])
        if self.reduce_skip is not None:
            s = self.reduce_skip(feats[0])
            y = torch.cat([F.interpolate(y, size=s.shape[-2:], mode="nearest"), s], 1)  # (B, 1.5 width, S, S)
        y = self.pred(self.neck(y))  # (B, A (5 + C), S, S)
        b, _, h, w = y.shape
        return y.view(b, len(self.anchors), 5 + self.num_classes, h, w).permute(0, 3, 4, 1, 2)

    # ------------------------------------------------------------------ boxes
    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs (B, S, S, A, 5 + C) -> predicted boxes (B, S, S, A, 4) xyxy pixels."""
        _, sh, sw, _, _ = out.shape
        rows = torch.arange(sh, device=out.device, dtype=torch.float32).view(1, sh, 1, 1)
        cols = torch.arange(sw, device=out.device, dtype=torch.float32).view(1, 1, sw, 1)
        t = out[..., 1:5].float()
        cx = (cols + torch.sigmoid(t[..., 0])) * self.stride
        cy = (rows + torch.sigmoid(t[..., 1])) * self.stride
        w = self.anchors[:, 0] * torch.exp(t[..., 2].clamp(max=6))
        h = self.anchors[:, 1] * torch.exp(t[..., 3].clamp(max=6))
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)

    def encode_targets(self, targets: list[dict], grid: tuple[int, int], img_size: tuple[int, int]):
        """The course's target grid: (responsible mask (B, S, S, A) bool, box targets (B, S, S, A, 4) as
        (b_x, b_y, t_w, t_h), class targets (B, S, S, A) i64)."""
        from cnnlab.ops.anchors import assign_anchors, wh_iou

        b, a = len(targets), len(self.anchors)
        dev = self.anchors.device
        resp = torch.zeros(b, *grid, a, dtype=torch.bool, device=dev)
        box_t = torch.zeros(b, *grid, a, 4, device=dev)
        cls_t = torch.zeros(b, *grid, a, dtype=torch.long, device=dev)
        cell_h, cell_w = img_size[0] / grid[0], img_size[1] / grid[1]
        for i, t in enumerate(targets):
            if len(t["boxes"]) == 0:
                continue
            # one object per (cell, anchor): on a collision the larger object keeps the slot (kept = its index)
            rows, cols, k, enc, kept = assign_anchors(t["boxes"].to(dev).float(), img_size[0], img_size[1], grid,
                                                      self.anchors, return_kept=True)
            bx, by, bh, bw = enc.unbind(-1)  # cell-relative (b_x, b_y, b_h, b_w)
            tw = torch.log((bw * cell_w / self.anchors[k, 0]).clamp(min=1e-6))
            th = torch.log((bh * cell_h / self.anchors[k, 1]).clamp(min=1e-6))
            labels = t["labels"].to(dev)[kept]
            resp[i, rows, cols, k] = True
            box_t[i, rows, cols, k] = torch.stack([bx, by, tw, th], -1)
            cls_t[i, rows, cols, k] = labels
            if self.extra_anchor_iou < 1:  # YOLOv4: other anchors of the cell that fit the object well train on it too
                wh = torch.stack([bw * cell_w, bh * cell_h], -1)  # (K, 2) pixels
                fit = (wh_iou(wh, self.anchors) >= self.extra_anchor_iou).nonzero().tolist()  # [(object, anchor)]
                for n, j in fit:
                    r, c = int(rows[n]), int(cols[n])
                    if resp[i, r, c, j]:
                        continue  # a best-anchor slot, or taken by a larger object already
                    resp[i, r, c, j] = True
                    box_t[i, r, c, j] = torch.stack([bx[n], by[n], torch.log(wh[n, 0] / self.anchors[j, 0]),
                                                     torch.log(wh[n, 1] / self.anchors[j, 1])])
                    cls_t[i, r, c, j] = labels[n]
        return resp, box_t, cls_t

    # ------------------------------------------------------------------ training and inference
    def loss(self, out: torch.Tensor, targets: list[dict], img_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        from cnnlab.ops.boxes import box_iou

        out = out.float()
        grid = tuple(out.shape[1:3])
        resp, box_t, cls_t = self.encode_targets(targets, grid, img_size)
        b = out.shape[0]
        with torch.no_grad():  # YOLOv2: a slot whose box already fits an object is not told "no object"
            pred = self.decode(out).reshape(b, -1, 4)
            ignore = torch.zeros(b, pred.shape[1], dtype=torch.bool, device=out.device)
            for i, t in enumerate(targets):
                if len(t["boxes"]):
                    ignore[i] = box_iou(pred[i], t["boxes"].to(out.device).float()).amax(1) > self.ignore_iou
            ignore = ignore.view_as(resp) & ~resp
        obj = F.binary_cross_entropy_with_logits(out[..., 0], resp.float(), reduction="none")
        loss_obj = obj[resp].sum() + self.noobj_weight * obj[~resp & ~ignore].sum()
        p = out[resp]  # (P, 5 + C)
        xy = torch.sigmoid(p[:, 1:3])
        loss_box = F.mse_loss(xy, box_t[resp][:, :2], reduction="sum") + F.mse_loss(p[:, 3:5], box_t[resp][:, 2:], reduction="sum")
        loss_cls = F.cross_entropy(p[:, 5:], cls_t[resp], reduction="sum") if len(p) else out.sum() * 0
        loss = (loss_obj + self.coord_weight * loss_box + loss_cls) / b
        return {"loss": loss, "obj": loss_obj.detach() / b, "box": loss_box.detach() / b, "cls": loss_cls.detach() / b}

    @torch.no_grad()
    def detect(self, out: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Per image: score of class c = p_c * P(c | object); keep above the threshold, per-class NMS."""
        out = out.float()
        boxes = self.decode(out).flatten(1, 3)  # (B, S*S*A, 4)
        scores = (torch.sigmoid(out[..., :1]) * out[..., 5:].softmax(-1)).flatten(1, 3)  # (B, S*S*A, C)
        return [select_detections(boxes[i], scores[i], score_threshold, iou_threshold, max_detections)
                for i in range(out.shape[0])]
