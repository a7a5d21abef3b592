"""Nearest neighbours in feature space vs pixel space (the course's AlexNet figure): the last hidden layer's
features (``forward_head(pre_logits=True)``) find images of the same kind, while L2 in pixels finds images
with similar colours and layout. ``neighbours`` returns both index lists; the figure shows them side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.explain.common import Subject, image_grid, to_hwc


@torch.no_grad()
def features(subject: Subject, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """(N, D) penultimate-layer features (pooled, before the classifier)."""
    model = subject.model
    out = []
    for i in range(0, len(images), batch):
        x = subject.normalize(images[i:i + batch])
        if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
            f = model.forward_head(model.forward_features(x), pre_logits=True)
        else:  # a plain module: its logits are its last features
            f = model(x)
        out.append(f.flatten(1).float())
    return torch.cat(out).numpy()


def nearest(query: np.ndarray, base: np.ndarray, k: int, exclude_self: bool = True) -> np.ndarray:
    """(Q, k) indices into base of the L2-nearest rows for each query row (a row's own index skipped)."""
    d = (query ** 2).sum(1)[:, None] - 2 * query @ base.T + (base ** 2).sum(1)[None]  # (Q, N)
    if exclude_self:
        d[np.arange(len(query)), np.arange(len(query))] = np.inf  # queries are base[:Q]
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def neighbours(subject: Subject, images: torch.Tensor, queries: int = 5, k: int = 5) -> dict[str, np.ndarray]:
    """{"features": (Q, k), "pixels": (Q, k)} neighbours of the first ``queries`` images among all of them."""
    feats = features(subject, images)
    pixels = images.flatten(1).numpy()
    q = min(queries, len(images))
    k = min(k, len(images) - 1)
    return {"features": nearest(feats[:q], feats, k), "pixels": nearest(pixels[:q], pixels, k)}


def neighbours_figure(images: torch.Tensor, result: dict[str, np.ndarray], path: str | Path,
                      labels: np.ndarray | None = None, classes: list[str] | None = None) -> Path:
    """Rows: a query, then its feature-space neighbours, then its pixel-space neighbours."""
    pics, titles = [], []
    k = result["features"].shape[1]

    def name(i):
        return classes[labels[i]] if labels is not None and classes and labels[i] >= 0 else ""

    for q in range(len(result["features"])):
        for space in ("features", "pixels"):
            pics.append(to_hwc(images[q]))
            titles.append(f"query {name(q)}" if space == "features" else f"{name(q)}")
            for j in result[space][q]:
                pics.append(to_hwc(images[j]))
                titles.append(f"{space[:5]}: {name(j)}")
    return image_grid(pics, path, cols=k + 1, titles=titles, cmap="gray", cell=1.1,
                      title="each query (left) with its nearest neighbours: feature space (upper row), pixels (lower)")
