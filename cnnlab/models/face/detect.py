"""The MTCNN detection pipeline: image pyramid -> P-Net -> R-Net -> O-Net -> boxes and 5 landmarks.

1. **Pyramid + P-Net** (the convolutional sliding window): the image is scaled so that the
   smallest face sought (``min_face`` pixels) becomes 12 pixels, then by ``factor`` again and
   again while the image is at least 12 pixels. P-Net runs once on each scaled image; every cell
   of its output map is a 12x12 window (stride 2) with a face probability and a box offset.
   Windows above ``thresholds[0]`` are kept, non-max suppressed per scale (IoU 0.5) and across
   scales (IoU 0.7), moved by their offsets and made square.
2. **R-Net**: each window is cropped from the image, resized to 24x24, re-scored (``thresholds[1]``),
   suppressed (IoU 0.7), refined and made square again.
3. **O-Net**: the same at 48x48 (``thresholds[2]``), plus 5 landmarks; the last suppression
   divides the overlap by the smaller box ("Min" IoU), which removes boxes nested in others.

Pixel conventions follow the authors' MATLAB code (1-based crops, +1 widths in stages 2-3), so the
boxes match the reference implementations. Non-max suppression is ``cnnlab.ops.boxes``'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cnnlab.ops.boxes import batched_nms


@dataclass
class FaceDetection:
    box: list[float]  # x1, y1, x2, y2 pixels
    score: float
    landmarks: list[list[float]]  # 5 x (x, y): left eye, right eye, nose, left / right mouth corner

    def to_json(self) -> dict:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 5),
                "landmarks": [[round(x, 2), round(y, 2)] for x, y in self.landmarks]}


@dataclass
class MTCNNConfig:
    min_face: int = 20
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    nms: tuple[float, float, float, float] = field(default=(0.5, 0.7, 0.7, 0.7))  # per scale, P-Net, R-Net, O-Net (Min)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125  # pixels 0..255 -> about -1..1, as the nets were trained


def pyramid_scales(h: int, w: int, min_face: int, factor: float) -> list[float]:
    """Scales at which a ``min_face`` face is 12 px, 12/factor px, ...; the image stays >= 12 px."""
    m = 12.0 / min_face
    side = min(h, w) * m
    scales = []
    while side >= 12:
        scales.append(m * factor ** len(scales))
        side *= factor
    return scales


def pnet_windows(prob: torch.Tensor, reg: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
    """P-Net's output map -> windows (N, 9): x1, y1, x2, y2 in image pixels, score, 4 offsets.

    prob (H', W'), reg (4, H', W'): cell (r, c) sees the 12x12 window at (2c, 2r) of the scaled image.
    """
    rows, cols = torch.nonzero(prob >= threshold, as_tuple=True)
    yx = torch.stack([cols, rows], 1).to(reg.dtype)  # (N, 2) x, y of the cell
    top_left = ((2 * yx + 1) / scale).floor()
    bottom_right = ((2 * yx + 12) / scale).floor()
    return torch.cat([top_left, bottom_right, prob[rows, cols, None], reg[:, rows, cols].T], 1)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box (N, >=4) to a square of its longer side, same centre."""
    boxes = boxes.clone()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def regress(boxes: torch.Tensor, offsets: torch.Tensor, plus_one: bool = True) -> torch.Tensor:
    """Move box corners by offsets (N, 4) given as fractions of the box's width / height."""
    boxes = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + (1 if plus_one else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if plus_one else 0)
    boxes[:, :4] = boxes[:, :4] + offsets * torch.stack([w, h, w, h], 1)
    return boxes


def crop_resize(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops of boxes (N, >=4) clipped to the image (1-based like the authors' code), each resized to size x size.

    image f32 (3, H, W) -> (N, 3, size, size).
    """
    h, w = image.shape[-2:]
    b = boxes[:, :4].trunc().long()
    x1, y1 = b[:, 0].clamp(min=1), b[:, 1].clamp(min=1)
    x2, y2 = b[:, 2].clamp(max=w), b[:, 3].clamp(max=h)
    crops = []
    for i in range(len(b)):
        patch = image[None, :, int(y1[i]) - 1:int(y2[i]), int(x1[i]) - 1:int(x2[i])]
        if patch.shape[-1] == 0 or patch.shape[-2] == 0:
            patch = torch.zeros(1, 3, 1, 1, dtype=image.dtype)
        crops.append(F.interpolate(patch, size=(size, size), mode="area"))
    return torch.cat(crops) if crops else torch.zeros(0, 3, size, size)


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """NMS whose overlap is intersection / smaller area (pixel-inclusive areas); kept indices, best first."""
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = torch.argsort(scores, descending=True, stable=True)
    keep = []
    while order.numel() > 0:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + 1).clamp(min=0)
        ih = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + 1).clamp(min=0)
        overlap = iw * ih / torch.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return torch.tensor(keep, dtype=torch.long)


class MTCNN:
    """Face detector: ``detect(image uint8 (3, H, W))`` -> list of FaceDetection, highest score first."""

    def __init__(self, nets=None, config: MTCNNConfig | None = None):
        from cnnlab.models.face.mtcnn import load_mtcnn_nets

        self.pnet, self.rnet, self.onet = nets if nets is not None else load_mtcnn_nets()
        self.config = config or MTCNNConfig()

    @torch.no_grad()
    def detect(self, image: torch.Tensor) -> list[FaceDetection]:
        if image.ndim != 3 or image.shape[0] != 3:
            image = image.expand(3, -1, -1) if image.ndim == 3 and image.shape[0] == 1 else image
        img = image.float()  # (3, H, W) 0..255
        h, w = img.shape[-2:]
        boxes = self._stage1(img, h, w)
        if len(boxes):
            boxes = self._stage2(img, boxes)
        if not len(boxes):
            return []
        boxes, points = self._stage3(img, boxes)
        return [FaceDetection(b[:4].tolist(), float(b[4]), p.tolist()) for b, p in zip(boxes, points)]

    def _stage1(self, img: torch.Tensor, h: int, w: int) -> torch.Tensor:
        cfg = self.config
        found = []
        for scale in pyramid_scales(h, w, cfg.min_face, cfg.factor):
            scaled = F.interpolate(img[None], size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            prob, reg = self.pnet(_normalize(scaled))  # (1, H', W'), (1, 4, H', W')
            windows = pnet_windows(prob[0], reg[0], scale, cfg.thresholds[0])  # (N, 9)
            keep = batched_nms(windows[:, :4], windows[:, 4], None, cfg.nms[0])
            found.append(windows[keep])
        boxes = torch.cat(found) if found else torch.zeros(0, 9)
        if not len(boxes):
            return boxes
        boxes = boxes[batched_nms(boxes[:, :4], boxes[:, 4], None, cfg.nms[1])]
        moved = regress(boxes[:, :5], boxes[:, 5:9], plus_one=False)
        return square(moved)  # (N, 5): x1, y1, x2, y2, score

    def _stage2(self, img: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        prob, reg = self.rnet(_normalize(crop_resize(img, boxes, 24)))
        ok = prob > cfg.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], prob[ok, None]], 1)
        reg = reg[ok]
        keep = batched_nms(boxes[:, :4], boxes[:, 4], None, cfg.nms[2])
        return square(regress(boxes[keep], reg[keep]))

    def _stage3(self, img: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        prob, reg, marks = self.onet(_normalize(crop_resize(img, boxes, 48)))
        ok = prob > cfg.thresholds[2]
        boxes = torch.cat([boxes[ok, :4], prob[ok, None]], 1)
        reg, marks = reg[ok], marks[ok]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        xs = bw * marks[:, :5] + boxes[:, 0:1] - 1  # landmarks from the box before its refinement
        ys = bh * marks[:, 5:] + boxes[:, 1:2] - 1
        points = torch.stack([xs, ys], 2)  # (N, 5, 2)
        boxes = regress(boxes, reg)
        keep = nms_min(boxes[:, :4], boxes[:, 4], cfg.nms[3])
        return boxes[keep], points[keep]
