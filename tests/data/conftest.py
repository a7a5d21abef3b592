"""Tiny synthetic datasets written to tmp_path: IDX files and image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.idx import write_idx


def write_idx_set(root: Path, n_train: int = 40, n_test: int = 20, size: int = 28, gz: bool = True, seed: int = 0):
    """The four MNIST-style IDX files with random images and labels cycling 0..9; returns the arrays."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{part}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{part}-labels-idx1-ubyte{ext}", labels)
        arrays[part] = (images, labels)
    return arrays


def write_folder(root: Path, counts: dict[str, int], size=(12, 10), mode: str = "RGB", ext: str = ".png", seed: int = 0):
    """root/<class>/<i>.<ext> with random images; returns root."""
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / cls / f"{i}{ext}")
    return root


@pytest.fixture
def make_idx_set():
    return write_idx_set


@pytest.fixture
def make_folder():
    return write_folder


@pytest.fixture
def idx_root(tmp_path):
    root = tmp_path / "idx"
    return root, write_idx_set(root)
