import os

import numpy as np
import pytest
import torch

from cnnlab.data import datasets
from cnnlab.data.datasets import ArrayDataset, FileDataset, load_classification_data
from cnnlab.data.named import FASHION_MNIST_CLASSES, FASHION_MNIST_ROOT
from cnnlab.errors import ConfigError, DataError


def test_idx_named_dataset(idx_root):
    root, arrays = idx_root
    data = load_classification_data("fashion-mnist", str(root))
    assert data.val is None and len(data.train) == 40 and len(data.test) == 20
    assert data.train.images.shape == (40, 1, 28, 28) and data.train.images.dtype == torch.uint8
    np.testing.assert_array_equal(data.train.images[:, 0].numpy(), arrays["train"][0])
    np.testing.assert_array_equal(data.test.labels.numpy(), arrays["t10k"][1])
    assert data.classes == FASHION_MNIST_CLASSES and data.in_chans == 1 and data.img_size == (28, 28)
    assert data.source == f"fashion-mnist ({root})"
    assert load_classification_data("mnist", str(root)).classes == [str(d) for d in range(10)]


def test_plain_idx_and_resize_and_channels(tmp_path, make_idx_set):
    make_idx_set(tmp_path, gz=False)
    data = load_classification_data("mnist", str(tmp_path), img_size=32, channels=3)
    assert data.train.images.shape == (40, 3, 32, 32) and data.in_chans == 3 and data.img_size == (32, 32)
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])


def test_val_fraction_and_limits(idx_root):
    root, _ = idx_root
    data = load_classification_data("fashion-mnist", str(root), val_fraction=0.25, limit=20, limit_test=10, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (20, 10, 10)
    assert torch.bincount(data.train.labels, minlength=10).tolist() == [2] * 10  # stratified
    # train and val are disjoint pieces of the original training set
    rows = lambda ds: {bytes(im.numpy()) for im in ds.images}  # noqa: E731
    assert not rows(data.train) & rows(data.val)
    again = load_classification_data("fashion-mnist", str(root), val_fraction=0.25, limit=20, limit_test=10, seed=3)
    assert torch.equal(again.train.images, data.train.images)


def test_missing_idx_file_names_it_and_the_fix(tmp_path, make_idx_set):
    make_idx_set(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\(\.gz\) not found: install the Debian package "
                                         r"dataset-fashion-mnist \(sudo apt-get install dataset-fashion-mnist\) or pass --data-root DIR"):
        load_classification_data("fashion-mnist", str(tmp_path))


def test_fallback_to_digits(tmp_path):
    data = load_classification_data("fashion-mnist", str(tmp_path / "none"), fallback=True)
    assert data.source == f"digits (embedded fallback: fashion-mnist not found at {tmp_path / 'none'})"
    assert len(data.train) + len(data.test) == 1797
    alias = load_classification_data("fashion-mnist-or-digits", str(tmp_path / "none"))
    assert alias.source == data.source


def test_digits():
    from sklearn.datasets import load_digits

    data = load_classification_data("digits")
    assert (len(data.train), len(data.test)) == (1438, 359) and data.train.images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(data.test.labels, minlength=10)
    full = torch.bincount(torch.from_numpy(load_digits().target), minlength=10)
    assert ((counts.double() - 0.2 * full.double()).abs() <= 1).all()  # stratified 80/20
    small = load_classification_data("digits", img_size=8)
    assert small.train.images.shape[1:] == (1, 8, 8) and small.train.images.max() == 255
    # at 8x8 no resizing happens: values are the scanned 0..16 scaled by 255/16
    assert set((small.train.images.double() * 16 / 255).round().unique().tolist()) <= set(range(17))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="--val-fraction 1.0"):
        load_classification_data("digits", val_fraction=1.0)
    with pytest.raises(ConfigError, match="--val-fraction -0.1"):
        load_classification_data("digits", val_fraction=-0.1)
    with pytest.raises(ConfigError, match="--channels 2"):
        load_classification_data("digits", channels=2)
    with pytest.raises(DataError, match="'no/such/dir': neither a named dataset"):
        load_classification_data("no/such/dir")


def test_flat_folder_split_is_stratified(tmp_path, make_folder):
    make_folder(tmp_path, {"cat": 10, "dog": 20}, size=(12, 10))
    data = load_classification_data(str(tmp_path))
    assert data.classes == ["cat", "dog"] and data.test is None
    assert torch.bincount(data.val.labels).tolist() == [2, 4] and torch.bincount(data.train.labels).tolist() == [8, 16]
    assert data.img_size == (12, 10) and data.in_chans == 3  # a common size is kept
    data = load_classification_data(str(tmp_path), val_fraction=0.5, seed=1)
    assert torch.bincount(data.val.labels).tolist() == [5, 10]
    assert load_classification_data(str(tmp_path), val_fraction=0).val is None


def test_train_val_test_folders(tmp_path, make_folder):
    make_folder(tmp_path / "train", {"a": 3, "b": 3}, mode="L")
    make_folder(tmp_path / "val", {"a": 2, "b": 1}, mode="L")
    make_folder(tmp_path / "test", {"b": 2}, mode="L")
    data = load_classification_data(str(tmp_path), img_size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 2)
    assert data.in_chans == 1 and data.train.images.shape == (6, 1, 8, 8)  # all grey -> 1 channel
    assert data.test.labels.tolist() == [1, 1] and data.source == f"image folder {tmp_path} (train/ val/ test/)"
    with pytest.raises(ConfigError, match="already holds the validation split"):
        load_classification_data(str(tmp_path), val_fraction=0.1)


def test_mixed_sizes_default_to_64(tmp_path, make_folder):
    make_folder(tmp_path, {"a": 2}, size=(20, 30))
    make_folder(tmp_path, {"b": 2}, size=(40, 10), seed=1)
    data = load_classification_data(str(tmp_path), val_fraction=0)
    assert data.img_size == (64, 64) and data.train.images.shape == (4, 3, 64, 64)


def test_file_dataset_when_too_big(tmp_path, monkeypatch, make_folder):
    make_folder(tmp_path, {"a": 4, "b": 4}, size=(9, 9))
    lazy = load_classification_data(str(tmp_path), in_memory=False, seed=2)
    eager = load_classification_data(str(tmp_path), in_memory=True, seed=2)
    assert isinstance(lazy.train, FileDataset) and isinstance(eager.train, ArrayDataset)
    assert "decoded lazily" in lazy.source
    for i in range(len(lazy.train)):
        assert torch.equal(lazy.train[i][0], eager.train.images[i]) and lazy.train[i][1] == eager.train.labels[i]
    monkeypatch.setattr(datasets, "IN_MEMORY_LIMIT_BYTES", 9 * 9 * 3 * 8)  # exactly 8 images -> not below the limit
    assert isinstance(load_classification_data(str(tmp_path)).train, FileDataset)


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_ROOT), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    data = load_classification_data("fashion-mnist")
    assert data.train.images.shape == (60000, 1, 28, 28) and data.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train.labels).tolist() == [6000] * 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
