"""The named datasets: Fashion-MNIST and MNIST from local IDX files, scikit-learn's digits.

Nothing is downloaded. Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``
(IDX files in /usr/share/datasets/fashion-mnist); MNIST from the same four file names in a
folder you point at; digits (1797 8x8 scans of handwritten digits, values 0..16) is bundled
with scikit-learn and is the offline fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data.idx import read_idx
from cnnlab.data.splits import stratified_split
from cnnlab.errors import DataError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
MNIST_ROOT = "/usr/share/datasets/mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
DIGIT_CLASSES = [str(d) for d in range(10)]
IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
_HOW_TO_GET = {
    "fashion-mnist": "install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) "
                     "or pass --data-root DIR",
    "mnist": "put the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) in that folder or pass --data-root DIR",
}

Split = tuple[torch.Tensor, torch.Tensor]  # uint8 (N, 1, H, W), int64 (N,)


def default_root(name: str) -> str:
    return FASHION_MNIST_ROOT if name == "fashion-mnist" else MNIST_ROOT


def find_idx_file(root: str | os.PathLike, stem: str, name: str) -> Path:
    """``root/stem.gz`` or ``root/stem``; DataError saying how to get it when neither exists."""
    for candidate in (Path(root) / f"{stem}.gz", Path(root) / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{Path(root) / stem}(.gz) not found: {_HOW_TO_GET[name]}")


def load_idx_dataset(name: str, root: str | os.PathLike) -> tuple[Split, Split, list[str]]:
    """(train, test, class names) of Fashion-MNIST or MNIST stored as the four standard IDX files."""
    paths = {key: find_idx_file(root, stem, name) for key, stem in IDX_FILES.items()}
    splits = []
    for part in ("train", "test"):
        images, labels = read_idx(paths[f"{part}_images"]), read_idx(paths[f"{part}_labels"])
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{paths[part + '_images']}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{paths[part + '_labels']}: expected {len(images)} labels to match the images, got shape {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"{paths[part + '_labels']}: labels must be 0..9, found {labels.min()}..{labels.max()}")
        x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W)
        splits.append((x, torch.from_numpy(labels.astype(np.int64))))
    if splits[0][0].shape[2:] != splits[1][0].shape[2:]:
        raise DataError(f"{paths['test_images']}: test images are {tuple(splits[1][0].shape[2:])} but the training images "
                        f"in {paths['train_images']} are {tuple(splits[0][0].shape[2:])}; the files come from different datasets")
    classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    return splits[0], splits[1], list(classes)


def load_digits_dataset(img_size: tuple[int, int] = (28, 28)) -> tuple[Split, Split, list[str]]:
    """scikit-learn's 8x8 digits scaled to uint8, resized (bilinear) to ``img_size``; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    x = resize_batch(x, img_size)
    train, test = stratified_split(y, 0.2, seed=20240101)  # fixed: the same test set for every run
    return (x[train], y[train]), (x[test], y[test]), list(DIGIT_CLASSES)


def resize_batch(x: torch.Tensor, size: tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, *size), bilinear (antialiased when shrinking), in chunks to bound memory."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        part = F.interpolate(x[i:i + chunk].float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out
