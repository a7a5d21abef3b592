"""2-D maps of a dataset's features: t-SNE (van der Maaten & Hinton 2008, scikit-learn) and PCA, drawn as a
scatter coloured by class and as a mosaic of the images at their embedded positions (Karpathy's figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.explain.common import to_hwc


def embed(feats: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with ``tsne`` or ``pca``; deterministic for a seed."""
    from sklearn.decomposition import PCA

    if len(feats) < 3:
        raise ConfigError(f"a 2-D map needs at least 3 images, got {len(feats)}")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(feats)
    if method != "tsne":
        raise ConfigError(f"embedding {method!r}: choose tsne or pca")
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=min(50, *feats.shape), random_state=seed).fit_transform(feats)  # the usual pre-step
    perplexity = float(min(30, max(2, (len(feats) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def embedding_figure(points: dict[str, np.ndarray], images, labels: np.ndarray, classes: list[str], path: str | Path,
                     mosaic: int = 20) -> Path:
    """One scatter per method (coloured by class) and a mosaic of the t-SNE (or first) map on a grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(points)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 4.2))
    for ax, name in zip(axes, names):
        p = points[name]
        sc = ax.scatter(p[:, 0], p[:, 1], c=labels, cmap="tab10", s=6)
        ax.set_title(f"{name} of the features", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if classes and len(set(labels.tolist())) > 1:
        handles = sc.legend_elements(num=len(classes))[0]
        axes[0].legend(handles, [classes[i] for i in sorted(set(labels.tolist()))][:len(handles)], fontsize=6, loc="best")
    axes[-1].imshow(mosaic_image(points[names[0]], images, mosaic))
    axes[-1].set_title(f"{names[0]} mosaic (nearest image per cell)", fontsize=9)
    axes[-1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def mosaic_image(p: np.ndarray, images, cells: int = 20, cell_px: int = 24) -> np.ndarray:
    """Each cell of a cells x cells grid over the embedding shows the image embedded nearest its centre."""
    from PIL import Image

    lo, hi = p.min(0), p.max(0)
    q = (p - lo) / np.where(hi > lo, hi - lo, 1)  # (N, 2) in [0, 1]
    canvas = np.ones((cells * cell_px, cells * cell_px, 3))
    used = set()
    centres = (np.arange(cells) + 0.5) / cells
    for r, cy in enumerate(centres):
        for c, cx in enumerate(centres):
            d = ((q - np.array([cx, 1 - cy])) ** 2).sum(1)
            i = int(d.argmin())
            if d[i] > (1.0 / cells) ** 2 or i in used:
                continue
            used.add(i)
            img = to_hwc(images[i])
            img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
            small = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize((cell_px, cell_px))) / 255
            canvas[r * cell_px:(r + 1) * cell_px, c * cell_px:(c + 1) * cell_px] = small
    return canvas
