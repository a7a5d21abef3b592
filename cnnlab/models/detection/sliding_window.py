"""Sliding-window detection, and its convolutional implementation (Sermanet et al. 2014, OverFeat).

The course's first detector: train a classifier on tightly cropped windows (an object class, or
background), slide windows of several sizes over the image with some stride, classify every crop,
and keep the confident ones after non-max suppression. Run crop by crop it is slow; but a classifier
whose fully connected layers are turned into convolutions (an FC layer on a 5x5x16 volume is a 5x5
conv with as many filters; the next FC layers are 1x1 convs) can run on the whole image at once, and
each position of its output map is the classifier's answer for one window: the course's 14x14 ->
16x16 example gives 2x2 answers, one per window at stride 2, sharing all the computation.

``CourseWindowNet`` is that example exactly (no padding, so the two are numerically equal);
``SlidingWindowDetector`` puts the same idea on a zoo backbone (its padding makes border windows
differ slightly from isolated crops) and is what ``cnnlab train detect --model sliding_window`` trains.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detection.common import backbone_levels, select_detections


class CourseWindowNet(nn.Module):
    """The course's window classifier: 14x14x3 -> conv 5x5 (16) -> max pool 2 -> FC 400 -> FC 400 -> C."""

    window = 14
    stride = 2  # the max pool's: neighbouring windows of the convolutional version are 2 pixels apart

    def __init__(self, num_classes: int = 4, in_chans: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 16, 5)  # (B, 16, 10, 10)
        self.pool = nn.MaxPool2d(2)  # (B, 16, 5, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 400)
        self.fc2 = nn.Linear(400, 400)
        self.fc3 = nn.Linear(400, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 14, 14) crops -> (B, C) class scores."""
        x = self.pool(torch.relu(self.conv(x))).flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    def to_convolutional(self) -> nn.Sequential:
        """The same weights as a fully convolutional net: (B, 3, H, W) -> (B, C, (H - 14) / 2 + 1, (W - 14) / 2 + 1)."""
        fc1 = nn.Conv2d(16, 400, 5)
        fc2, fc3 = nn.Conv2d(400, 400, 1), nn.Conv2d(400, self.fc3.out_features, 1)
        with torch.no_grad():
            fc1.weight.copy_(self.fc1.weight.view(400, 16, 5, 5))  # flatten(1) ordered (channel, row, col)
            fc2.weight.copy_(self.fc2.weight.view(400, 400, 1, 1))
            fc3.weight.copy_(self.fc3.weight.view(-1, 400, 1, 1))
            for conv, fc in ((fc1, self.fc1), (fc2, self.fc2), (fc3, self.fc3)):
                conv.bias.copy_(fc.bias)
        conv = nn.Conv2d(self.conv.in_channels, 16, 5)
        conv.load_state_dict(self.conv.state_dict())
        return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), fc1, nn.ReLU(), fc2, nn.ReLU(), fc3)


def window_boxes(height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """Every window position, row by row: (N, 4) xyxy, top-left corners at multiples of ``stride``."""
    ys = torch.arange(0, height - window + 1, stride, dtype=torch.float32)
    xs = torch.arange(0, width - window + 1, stride, dtype=torch.float32)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, x + window, y + window], -1).reshape(-1, 4)


def classify_crops(classifier: nn.Module, image: torch.Tensor, window: int, stride: int, batch: int = 256) -> torch.Tensor:
    """The slow way: cut every window out of ``image`` (C, H, W) and classify the crops: (rows, cols, C)."""
    c, h, w = image.shape
    crops = image.unfold(1, window, stride).unfold(2, window, stride)  # (C, rows, cols, window, window)
    rows, cols = crops.shape[1:3]
    crops = crops.permute(1, 2, 0, 3, 4).reshape(-1, c, window, window)
    out = torch.cat([classifier(crops[k:k + batch]) for k in range(0, len(crops), batch)])
    return out.view(rows, cols, -1)


class SlidingWindowDetector(nn.Module):
    """A zoo backbone + an FC head written as convolutions, classifying ``input_size`` windows into C + 1
    classes (0 = background); ``forward`` takes crops, ``dense`` takes whole images (one answer per window).

    Windows of each size in ``window_sizes`` (pixels of the image) are resized to ``input_size``: the image
    is rescaled by ``input_size / size`` and the net runs on all of it, so windows lie ``size * R / input_size``
    pixels apart (R = the backbone's stride)."""

    def __init__(self, backbone: nn.Module, num_classes: int, input_size: int = 64,
                 window_sizes: tuple[int, ...] = (24, 36, 48), hidden: int = 256):
        super().__init__()
        deep = backbone_levels(backbone)[-1]
        self.backbone = backbone
        self.num_classes = num_classes
        self.input_size = input_size
        self.window_sizes = tuple(window_sizes)
        self.reduction = deep["reduction"]
        k = max(1, math.ceil(input_size / self.reduction))  # the feature map one window gives: the "FC" kernel
        self.fc1 = nn.Conv2d(deep["num_chs"], hidden, k)  # FC on (C, k, k) written as a k x k conv
        self.fc2 = nn.Conv2d(hidden, num_classes + 1, 1)  # FC written as a 1x1 conv
        self.drop = nn.Dropout(0.1)

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(feats))))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, input_size, input_size) windows -> (N, C + 1) logits."""
        return self.head(self.backbone.forward_features(crops)).flatten(1)

    def dense(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Whole images (B, 3, H, W) -> per window size: (window boxes (N, 4) xyxy in image pixels, logits (B, N, C + 1))."""
        h, w = images.shape[-2:]
        out = []
        for size in self.window_sizes:
            f = self.input_size / size
            x = F.interpolate(images, size=(max(self.input_size, round(h * f)), max(self.input_size, round(w * f))),
                              mode="bilinear", align_corners=False, antialias=f < 1)
            logits = self.head(self.backbone.forward_features(x))  # (B, C + 1, rows, cols)
            rows, cols = logits.shape[-2:]
            step = self.reduction / f  # image pixels between neighbouring windows
            ys = torch.arange(rows, device=x.device, dtype=torch.float32) * step
            xs = torch.arange(cols, device=x.device, dtype=torch.float32) * step
            y0, x0 = torch.meshgrid(ys, xs, indexing="ij")
            boxes = torch.stack([x0, y0, x0 + size, y0 + size], -1).reshape(-1, 4)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            out.append((boxes, logits.flatten(2).transpose(1, 2)))  # (B, rows * cols, C + 1)
        return out

    # ------------------------------------------------------------------ training and inference
    def sample_windows(self, images: torch.Tensor, targets: list[dict], negatives: int = 3,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training windows cut from a batch: each object in a square window jittered by up to 10 % (its class),
        and ``negatives`` per object (at least 2 per image) of random sizes and places overlapping every
        object by IoU < 0.3 (background). Returns (crops (N, 3, input, input), labels (N,))."""
        from torchvision.ops import roi_align

        from cnnlab.ops.boxes import box_iou

        h, w = images.shape[-2:]
        dev = images.device
        rois, labels = [], []
        for i, t in enumerate(targets):
            gt = t["boxes"].to(dev).float().reshape(-1, 4)
            if len(gt):
                c = (gt[:, :2] + gt[:, 2:]) / 2
                side = (gt[:, 2:] - gt[:, :2]).amax(1, keepdim=True)
                jit = (torch.rand(len(gt), 3, generator=generator) - 0.5).to(dev) * 0.2
                side = side * (1 + jit[:, 2:])
                c = c + jit[:, :2] * side
                pos = torch.cat([c - side / 2, c + side / 2], 1)
                rois.append(torch.cat([torch.full((len(gt), 1), float(i), device=dev), pos], 1))
                labels.append(t["labels"].to(dev) + 1)
            n_neg = max(2, negatives * len(gt))
            cand = []
            for _ in range(4):  # a few tries are plenty: objects cover a small part of the image
                lo, hi = min(self.window_sizes), max(self.window_sizes)
                s = lo + torch.rand(4 * n_neg, 1, generator=generator).to(dev) * (hi - lo)
                xy = torch.rand(4 * n_neg, 2, generator=generator).to(dev) * (torch.tensor([w, h], device=dev) - s).clamp(min=0)
                b = torch.cat([xy, xy + s], 1)
                if len(gt):
                    b = b[box_iou(b, gt).amax(1) < 0.3]
                cand.append(b)
            neg = torch.cat(cand)[:n_neg]
            rois.append(torch.cat([torch.full((len(neg), 1), float(i), device=dev), neg], 1))
            labels.append(torch.zeros(len(neg), dtype=torch.long, device=dev))
        crops = roi_align(images, torch.cat(rois), output_size=self.input_size, spatial_scale=1.0, sampling_ratio=2,
                          aligned=True)
        return crops, torch.cat(labels)

    @torch.no_grad()
    def detect(self, dense: list[tuple[torch.Tensor, torch.Tensor]], score_threshold: float = 0.01,
               iou_threshold: float = 0.3, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Every window's class probabilities (background dropped) -> per-class NMS over all window sizes."""
        boxes = torch.cat([b for b, _ in dense])
        scores = torch.cat([lg.float().softmax(-1)[..., 1:] for _, lg in dense], 1)  # (B, N, C)
        return [select_detections(boxes, scores[i], score_threshold, iou_threshold, max_detections)
                for i in range(scores.shape[0])]
