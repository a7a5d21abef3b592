"""Make the benchmark scripts importable (they live in benchmarks/, not in the package)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(not any(FASHION_MNIST.glob("train-images-idx3-ubyte*")),
                                         reason="Fashion-MNIST IDX files not installed (dataset-fashion-mnist)")
