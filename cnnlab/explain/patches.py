"""Maximally activating patches (Zeiler & Fergus 2014; the course's figure): for a unit (channel) of a layer,
the dataset image regions that excite it most, cropped by the unit's receptive field. Deeper layers see
bigger patches (receptive field from ``cnnlab.ops.conv_arith.receptive_field``).

The receptive field follows the convolutions and poolings run before the layer, in execution order (their
kernel, stride, dilation): exact for chains and for residual nets, whose skip paths add nothing larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.explain.common import Subject, get_layer, image_grid, probe_forward, record_output, to_hwc
from cnnlab.ops.conv_arith import receptive_field


@dataclass
class Geometry:
    rf: int  # receptive field (pixels)
    jump: int  # input pixels between neighbouring units
    start: float  # input coordinate of unit 0's centre


def _pair(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def layer_geometry(subject: Subject, layer: str) -> Geometry:
    """Receptive field, jump and first centre of ``layer``'s units, from the conv/pool layers run before it."""
    target = get_layer(subject.model, layer)
    seen: list[tuple[int, int, int, int]] = []  # (kernel, stride, dilation, padding) in execution order
    done = {"flag": False}

    def hook(m, _i, _o):
        if not done["flag"]:
            if isinstance(m, nn.Conv2d):
                seen.append((_pair(m.kernel_size), _pair(m.stride), _pair(m.dilation), _pair(m.padding)))
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                k = _pair(m.kernel_size)
                seen.append((k, _pair(m.stride or k), _pair(getattr(m, "dilation", 1)), _pair(m.padding)))

    def stop(_m, _i, _o):
        done["flag"] = True

    handles = [m.register_forward_hook(hook) for m in subject.model.modules()
               if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    handles.append(target.register_forward_hook(stop))  # registered last: runs after target's own conv hook
    probe_forward(subject, handles)
    rf = receptive_field([(k, s, d) for k, s, d, _ in seen]) if seen else 1
    jump, start = 1, 0.0
    for k, s, d, p in seen:
        start += ((k - 1) * d / 2 - p) * jump
        jump *= s
    return Geometry(rf, jump, start)


def patch_layers(subject: Subject, n: int = 3, max_fraction: float = 0.6) -> list[str]:
    """n layers spread over the depth whose receptive field is at most max_fraction of the image (so patches
    are parts of images, growing with depth): the course's figure."""
    from cnnlab.explain.common import default_layers

    candidates = default_layers(subject, 64)
    limit = max_fraction * min(subject.size)
    fitting = [name for name in candidates if layer_geometry(subject, name).rf <= limit] or candidates[:1]
    idx = np.linspace(0, len(fitting) - 1, min(n, len(fitting))).round().astype(int)
    return [fitting[i] for i in sorted(set(idx.tolist()))]


@dataclass
class UnitPatches:
    layer: str
    unit: int
    rf: int
    patches: list[np.ndarray]  # k crops (C, rf, rf) (padded with grey at the borders)
    scores: list[float]
    images: list[int]  # dataset index of each crop


def max_activating_patches(subject: Subject, images: torch.Tensor, layer: str, units: int = 4, k: int = 9,
                           batch: int = 64) -> list[UnitPatches]:
    """For the ``units`` channels of ``layer`` with the strongest top-k responses: their top-k patches."""
    geo = layer_geometry(subject, layer)
    maps = []
    with record_output(get_layer(subject.model, layer)) as box, torch.no_grad():
        for i in range(0, len(images), batch):
            subject(images[i:i + batch])
            maps.append(box["out"].float())
    acts = torch.cat(maps)  # (N, C, h, w)
    n, c, h, w = acts.shape
    flat = acts.permute(1, 0, 2, 3).reshape(c, -1)  # (C, N*h*w)
    kk = min(k, flat.shape[1])
    top, where = flat.topk(kk, dim=1)  # (C, k)
    chosen = top.mean(1).topk(min(units, c)).indices.tolist()
    pad = geo.rf  # grey margin so crops at the border keep their size
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=0.5)
    out = []
    for u in chosen:
        crops, scores, idx = [], [], []
        for score, pos in zip(top[u].tolist(), where[u].tolist()):
            img, rest = divmod(pos, h * w)
            yy, xx = divmod(rest, w)
            cy, cx = geo.start + yy * geo.jump, geo.start + xx * geo.jump  # centre in input pixels
            y0, x0 = int(round(cy - (geo.rf - 1) / 2)) + pad, int(round(cx - (geo.rf - 1) / 2)) + pad
            y0 = min(max(y0, 0), padded.shape[2] - geo.rf)
            x0 = min(max(x0, 0), padded.shape[3] - geo.rf)
            crops.append(padded[img, :, y0:y0 + geo.rf, x0:x0 + geo.rf].numpy().copy())
            scores.append(score)
            idx.append(img)
        out.append(UnitPatches(layer, u, geo.rf, crops, scores, idx))
    return out


def patches_figure(results: list[list[UnitPatches]], path: str | Path) -> Path:
    """One row per (layer, unit): its top patches, titled with the layer, unit and receptive field."""
    pics, titles = [], []
    cols = max(len(r.patches) for per in results for r in per)
    for per_layer in results:
        for r in per_layer:
            for j in range(cols):
                pics.append(to_hwc(r.patches[j]) if j < len(r.patches) else np.ones((2, 2)))
                titles.append(f"{r.layer} u{r.unit} rf{r.rf}" if j == 0 else "")
    return image_grid(pics, path, cols=cols, titles=titles, title="maximally activating patches (rows: layer, unit)",
                      cmap="gray", cell=0.9)
