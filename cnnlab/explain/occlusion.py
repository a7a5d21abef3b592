"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey square over the image and record the
probability of the class with each position covered. Low probability = the square hid evidence.

``occlusion(...)`` returns the probability map (H, W) (each pixel: the mean over the squares covering it)
and the importance map p(original) - p(occluded), which ranks pixels for the deletion test.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.explain.common import Subject


def occlusion(subject: Subject, x: torch.Tensor, target: int, size: int | None = None, stride: int | None = None,
              fill: float = 0.5, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """((H, W) probability of ``target`` with the square over each pixel, (H, W) importance = p0 - that)."""
    _, c, h, w = x.shape
    size = size or max(2, min(h, w) // 7)
    stride = stride or max(1, size // 2)
    ys = list(range(0, max(h - size, 0) + 1, stride))
    xs = list(range(0, max(w - size, 0) + 1, stride))
    if ys[-1] + size < h:
        ys.append(h - size)
    if xs[-1] + size < w:
        xs.append(w - size)
    boxes = [(y, x_) for y in ys for x_ in xs]
    p0 = float(subject.probs(x)[0, target])
    total = torch.zeros(h, w, dtype=torch.float64)
    count = torch.zeros(h, w, dtype=torch.float64)
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        xb = x.repeat(len(chunk), 1, 1, 1)  # (b, C, H, W)
        for k, (y, x_) in enumerate(chunk):
            xb[k, :, y:y + size, x_:x_ + size] = fill
        p = subject.probs(xb)[:, target].double()  # (b,)
        for k, (y, x_) in enumerate(chunk):
            total[y:y + size, x_:x_ + size] += p[k]
            count[y:y + size, x_:x_ + size] += 1
    prob = (total / count.clamp_min(1)).where(count > 0, torch.tensor(p0, dtype=torch.float64)).float().numpy()
    return prob, (p0 - prob).astype(np.float32)
