"""Sliding-window segmentation: classify the centre pixel of a patch, for a patch around every pixel.

The course's first idea, and why it is abandoned: nothing is shared between overlapping patches, so
an H x W image costs (H / stride) x (W / stride) full forward passes of the patch classifier. Here the
patches are cut with ``F.unfold`` (strided, batched in chunks); each decides the class of the
stride x stride block at its centre (stride 1: every pixel, the true sliding window). Training
classifies ``samples`` random pixels per image, the patch around each one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.segmentation.base import conv_bn_relu


class PatchClassifier(nn.Module):
    """A small CNN: (N, C, P, P) patches -> (N, K) scores for their centre pixels."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu(in_chans, width), nn.MaxPool2d(2), conv_bn_relu(width, 2 * width),
                                      nn.MaxPool2d(2), conv_bn_relu(2 * width, 4 * width), nn.MaxPool2d(2),
                                      conv_bn_relu(4 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class SlidingWindowSegmenter(nn.Module):
    def __init__(self, num_classes: int, in_chans: int = 3, patch: int = 32, stride: int = 8, width: int = 16,
                 samples: int = 32, chunk: int = 1024):
        super().__init__()
        self.patch, self.stride, self.samples, self.chunk = patch, stride, samples, chunk
        self.classifier = PatchClassifier(num_classes, in_chans, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p, s = self.patch, self.stride
        if h % s or w % s:
            raise ValueError(f"sliding window: image sides {h}x{w} must be multiples of the stride {s}")
        xp = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2))[:, :, s // 2:, s // 2:]  # windows centred in their blocks
        gh, gw = h // s, w // s
        out = []
        for i in range(b):  # one image at a time: its patches are (gh * gw) copies of a P x P window
            window = xp[i:i + 1, :, :(gh - 1) * s + p, :(gw - 1) * s + p]
            cols = F.unfold(window, p, stride=s)  # (1, C * P * P, gh * gw)
            patches = cols[0].T.reshape(-1, c, p, p)  # (gh * gw, C, P, P)
            scores = torch.cat([self.classifier(patches[j:j + self.chunk]) for j in range(0, len(patches), self.chunk)])
            out.append(scores.T.reshape(1, -1, gh, gw))  # (1, K, H / s, W / s)
        y = torch.cat(out)
        return y.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)  # (B, K, H, W): each block its patch's class

    def sample_logits(self, x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B * samples, K) for the patches around random pixels, and those pixels' labels (B * samples,)."""
        b, _, h, w = x.shape
        p = self.patch
        xp = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2))
        ys = torch.randint(0, h, (b, self.samples), device=x.device)
        xs = torch.randint(0, w, (b, self.samples), device=x.device)
        patches = torch.stack([xp[i, :, y:y + p, x_:x_ + p] for i in range(b)
                               for y, x_ in zip(ys[i].tolist(), xs[i].tolist())])  # (B * samples, C, P, P)
        labels = masks[torch.arange(b, device=x.device)[:, None], ys, xs].reshape(-1)
        return self.classifier(patches), labels
