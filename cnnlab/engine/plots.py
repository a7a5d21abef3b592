"""PNG plots for a run folder: learning curves, learning rate, confusion matrix, prediction grids, augmented batches."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(rows: Sequence[dict], path: Path, metric: str = "acc", val_split: str = "val") -> None:
    """Loss and the monitored metric per epoch, the training split beside the validation split.

    Epoch ticks are integers; the legend names each split (``val_split`` is what the val_* columns hold).
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, ax in (("train_loss", "train", ax1), ("val_loss", val_split, ax1),
                           (f"train_{metric}", "train", ax2), (f"val_{metric}", val_split, ax2)):
        ys = [r.get(key) for r in rows]
        if any(isinstance(y, (int, float)) for y in ys):
            ax.plot(epochs, [y if isinstance(y, (int, float)) else np.nan for y in ys], marker="o", label=label)
    ax1.set(title="loss", xlabel="epoch")
    ax2.set(title=metric, xlabel="epoch")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_lr(steps: Sequence[int], lrs: Sequence[float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, lrs)
    ax.set(title="learning rate", xlabel="step", ylabel="lr")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> None:
    """Row-normalized confusion matrix (rows: true class, columns: predicted) with counts."""
    _confusion_figure(confusion, classes, path, "confusion matrix", fractions=False)


def _confusion_figure(confusion, classes: Sequence[str], path: Path, title: str, fractions: bool) -> np.ndarray:
    """Shade each row by its fraction (recall on the diagonal); cells print counts or those fractions."""
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(5.0, 0.6 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{norm[i, j]:.2f}" if fractions else int(cm[i, j]), ha="center", va="center",
                        fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return norm


def plot_predictions(images: np.ndarray, true: Sequence[int], pred: Sequence[int], classes: Sequence[str], path: Path, cols: int = 8) -> None:
    """Grid of images (N, C, H, W uint8) titled 'predicted (true)'; wrong ones in red."""
    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        _show(ax, images[i])
        ok = pred[i] == true[i]
        ax.set_title(f"{classes[pred[i]]}\n({classes[true[i]]})", fontsize=7, color="black" if ok else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _show(ax, img: np.ndarray) -> None:
    """An image (C, H, W) uint8 on an axis, grey or RGB."""
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.transpose(img[:3], (1, 2, 0)))
    ax.axis("off")


def _rect(ax, box, color: str) -> None:
    x1, y1, x2, y2 = [float(v) - 0.5 for v in box]  # imshow centres pixel i at i: its left edge is at i - 0.5
    ax.add_patch(matplotlib.patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.5))


def draw_boxes(image, boxes: Sequence, labels: Sequence[str], path: Path, points: Sequence | None = None) -> None:
    """One image (C, H, W) uint8 with boxes (xyxy pixels), their labels, and optional points (K, 2)."""
    img = np.asarray(image)
    h, w = img.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(3, w / 80), max(3, h / 80)))
    _show(ax, img)
    for box, label in zip(boxes, labels):
        _rect(ax, box, "red")
        ax.text(float(box[0]), float(box[1]), label, color="white", fontsize=8, va="bottom",
                bbox=dict(facecolor="red", alpha=0.7, pad=1, edgecolor="none"))
    if points is not None:
        pts = np.asarray(points, dtype=float).reshape(-1, 2) - 0.5
        ax.scatter(pts[:, 0], pts[:, 1], c="red", s=18)
        for k, (x, y) in enumerate(pts):
            ax.text(x + 1, y - 1, str(k), color="yellow", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_box_grid(images: np.ndarray, true_boxes, pred_boxes, titles: Sequence[str], path: Path, cols: int = 6,
                  true_points=None, pred_points=None) -> None:
    """Grid of images (N, C, H, W) uint8 with true (green) and predicted (red) boxes (each (4,) or (n, 4))
    and/or points (N, K, 2)."""
    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.1))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        _show(ax, images[i])
        if true_boxes is not None:  # one box (4,) or several (n, 4) per image
            for b in np.asarray(true_boxes[i], dtype=float).reshape(-1, 4):
                _rect(ax, b, "lime")
            for b in np.asarray(pred_boxes[i], dtype=float).reshape(-1, 4):
                _rect(ax, b, "red")
        if true_points is not None:
            t, p = np.asarray(true_points[i]) - 0.5, np.asarray(pred_points[i]) - 0.5
            ax.scatter(t[:, 0], t[:, 1], c="lime", s=10)
            ax.scatter(p[:, 0], p[:, 1], c="red", s=10, marker="x")
        ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- classification diagnostics
def plot_loss(rows: Sequence[dict], path: Path, val_split: str = "val", log: bool = True) -> None:
    """Training and validation loss per epoch (integer ticks), on a log scale by default: late progress stays visible."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", val_split)):
        ys = [r.get(key) for r in rows]
        if any(isinstance(y, (int, float)) for y in ys):
            ax.plot(epochs, [y if isinstance(y, (int, float)) and y > 0 else np.nan for y in ys], marker="o", label=label)
    if log:
        ax.set_yscale("log")
    ax.set(title=f"loss ({'log scale' if log else 'linear'}): train and {val_split}", xlabel="epoch", ylabel="loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_normalized(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path,
                              split: str = "test") -> np.ndarray:
    """Confusion matrix with each row divided by its count (recall on the diagonal), printed as fractions."""
    return _confusion_figure(confusion, classes, path, f"confusion matrix, {split} split (fraction of each true class)",
                             fractions=True)


def most_confused(confusion: Sequence[Sequence[int]], classes: Sequence[str], k: int = 5) -> list[tuple[str, str, int]]:
    """The ``k`` largest off-diagonal cells as (true class, predicted class, count), largest first (fastai's most_confused)."""
    cm = np.asarray(confusion, dtype=np.int64)
    pairs = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(classes[i], classes[j], n) for n, i, j in pairs[:k]]


def precision_recall_f1(confusion: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Per-class precision (of the predictions of a class, the right ones), recall, F1 and support (rows: true)."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def plot_prediction_grid(images: np.ndarray, pred: Sequence[int], probs: Sequence[float], classes: Sequence[str],
                         path: Path, true: Sequence[int | None] | None = None, title: str | None = None,
                         extra: Sequence[str] | None = None, cols: int = 8) -> None:
    """Grid of images (N, C, H, W uint8), each titled 'predicted p (true)'; wrong ones in red.

    ``true`` may be None (or hold None) for images of unknown class; ``extra`` adds a third line (e.g. the loss).
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 2.0 + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        _show(ax, images[i])
        t = None if true is None else true[i]
        text = f"{classes[pred[i]]} {probs[i]:.2f}" + ("" if t is None else f"\n({classes[t]})")
        if extra is not None:
            text += f"\n{extra[i]}"
        ax.set_title(text, fontsize=7, color="black" if t is None or t == pred[i] else "red")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def top_losses(probs, labels, k: int = 16):
    """Indices of the ``k`` examples with the largest cross-entropy -log p(true class), and those losses (largest first)."""
    import torch

    probs, labels = torch.as_tensor(probs), torch.as_tensor(labels)
    losses = -probs.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12).log()  # (N,)
    loss, idx = losses.topk(min(k, len(losses)))
    return idx.tolist(), loss.tolist()


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path: Path, title: str | None = None, cols: int = 8) -> None:
    """Grid of images (N, C, H, W uint8) with a title under each (e.g. a batch of augmented training images)."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8 + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            _show(ax, images[i])
            ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
