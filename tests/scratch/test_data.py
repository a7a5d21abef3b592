import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import ConfigError, DataError
from cnnlab.scratch.data import FASHION_MNIST_ROOT, load_dataset, load_digits_data, read_idx


def _write_idx(path: Path, arr: np.ndarray, code: int, gz: bool = True) -> Path:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    payload = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)
    return path


def test_read_idx_roundtrips_uint8_images_and_big_endian_ints(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(_write_idx(tmp_path / "a-idx3-ubyte.gz", images, 0x08)), images)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    out = read_idx(_write_idx(tmp_path / "b-idx1", ints, 0x0C, gz=False))
    assert np.array_equal(out, ints) and out.dtype == np.int32


def test_read_idx_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"missing-idx3-ubyte.gz not found.*apt-get install dataset-fashion-mnist.*--data-root"):
        read_idx(tmp_path / "missing-idx3-ubyte.gz")
    bad = tmp_path / "bad.gz"
    gzip.open(bad, "wb").write(b"\x01\x02\x08\x01")
    with pytest.raises(DataError, match="bad.gz: not an IDX file"):
        read_idx(bad)
    short = _write_idx(tmp_path / "short", np.zeros((4, 2), np.uint8), 0x08, gz=False)
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(short)


def test_digits_splits_are_disjoint_sized_and_mean_subtracted():
    d = load_digits_data()
    assert [len(d[f"y_{s}"]) for s in ("train", "val", "test")] == [1257, 180, 360]
    assert d["X_train"].shape == (1257, 1, 8, 8) and d["X_train"].dtype == np.float64
    assert np.allclose(d["X_train"].mean(axis=0), 0)
    rows = {x.tobytes() for x in d["X_test"]}
    assert not any(x.tobytes() in rows for x in d["X_train"][:300])


def test_limit_and_bad_names():
    d = load_dataset("digits", limit=50)
    assert len(d["y_train"]) == len(d["y_val"]) == len(d["y_test"]) == 50
    with pytest.raises(ConfigError, match="--limit"):
        load_dataset("digits", limit=-1)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("cifar")


def test_missing_fashion_mnist_root_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz not found"):
        load_dataset("fashion-mnist", data_root=tmp_path)


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT, "t10k-labels-idx1-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    d = load_dataset("fashion-mnist", limit=100)
    assert d["X_train"].shape == (100, 1, 28, 28) and d["X_test"].shape == (100, 1, 28, 28)
    assert d["class_names"][9] == "Ankle boot" and set(d["y_train"]) <= set(range(10))
    from cnnlab.scratch.data import read_idx as r

    labels = r(Path(FASHION_MNIST_ROOT) / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and np.array_equal(np.bincount(labels), [1000] * 10)  # balanced test set
