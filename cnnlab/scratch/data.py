"""Data for the scratch classifiers: scikit-learn's bundled 8x8 digits and Fashion-MNIST
read from its IDX .gz files with cnnlab.data.idx (NumPy only, so the scratch engine needs no torch).

Every loader returns a dict with X_train, y_train, X_val, y_val, X_test, y_test: images
(N, 1, H, W) float64 scaled to [0, 1] minus the training mean image (the course's
preprocessing), labels int64 (N,), plus class_names and the dataset's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data.idx import read_idx as _read_idx
from cnnlab.errors import ConfigError, DataError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip or plain) as a numpy array: cnnlab.data.idx.read_idx, with the Fashion-MNIST hint."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; install it with `sudo apt-get install dataset-fashion-mnist` "
                        f"or point --data-root at the folder holding the IDX files")
    return _read_idx(path)


def _finish(X_train, y_train, X_val, y_val, X_test, y_test, class_names, limit: int | None, name: str) -> dict:
    """Apply --limit to each split, scale to [0, 1] and subtract the training mean image."""
    if limit is not None:
        X_train, y_train, X_val, y_val = X_train[:limit], y_train[:limit], X_val[:limit], y_val[:limit]
        X_test, y_test = X_test[:limit], y_test[:limit]
    mean = X_train.mean(axis=0, keepdims=True)  # (1, 1, H, W)
    out = {"X_train": X_train - mean, "y_train": y_train, "X_val": X_val - mean, "y_val": y_val,
           "X_test": X_test - mean, "y_test": y_test}
    out = {k: v.astype(np.float64) if k.startswith("X") else v.astype(np.int64) for k, v in out.items()}
    out["class_names"], out["name"] = class_names, name
    return out


def load_digits_data(limit: int | None = None, seed: int = 0) -> dict:
    """scikit-learn's 1797 8x8 digits, shuffled with ``seed``: 1257 train / 180 val / 360 test."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    X = (digits.images / 16.0)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order], digits.target[order]
    test, val = slice(0, 360), slice(360, 540)
    return _finish(X[540:], y[540:], X[val], y[val], X[test], y[test], [str(d) for d in range(10)], limit, "digits")


def load_fashion_mnist(root: str | Path = FASHION_MNIST_ROOT, limit: int | None = None, seed: int = 0,
                       num_val: int = 5000) -> dict:
    """Fashion-MNIST from ``root``: 55000 train / 5000 val (held out of train) / 10000 test, 28x28."""
    root = Path(root)
    X = read_idx(root / "train-images-idx3-ubyte.gz")[:, None] / 255.0  # (60000, 1, 28, 28)
    y = read_idx(root / "train-labels-idx1-ubyte.gz")
    X_test = read_idx(root / "t10k-images-idx3-ubyte.gz")[:, None] / 255.0
    y_test = read_idx(root / "t10k-labels-idx1-ubyte.gz")
    if len(X) != len(y) or len(X_test) != len(y_test):
        raise DataError(f"Fashion-MNIST in {root}: image and label counts differ; reinstall dataset-fashion-mnist")
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order], y[order]
    return _finish(X[num_val:], y[num_val:], X[:num_val], y[:num_val], X_test, y_test, FASHION_MNIST_CLASSES, limit,
                   "fashion-mnist")


def load_dataset(name: str, limit: int | None = None, data_root: str | Path | None = None, seed: int = 0) -> dict:
    """'digits' or 'fashion-mnist', optionally capped to ``limit`` examples per split."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive number of examples, got {limit}")
    if name == "digits":
        return load_digits_data(limit, seed)
    if name == "fashion-mnist":
        return load_fashion_mnist(data_root or FASHION_MNIST_ROOT, limit, seed)
    raise ConfigError(f"unknown dataset {name!r}; choose digits or fashion-mnist")
