import json

import numpy as np
import pytest
import torch

from cnnlab.data.datasets import ArrayDataset, FileDataset
from cnnlab.data.normalize import Normalization, compute_normalization
from cnnlab.errors import ConfigError


def _ds(n=50, c=3, h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)
    return ArrayDataset(images, torch.zeros(n, dtype=torch.long), ["x"])


def test_channel_statistics_match_numpy():
    ds = _ds()
    x = ds.images.numpy().astype(np.float64) / 255
    norm = compute_normalization(ds, "channel")
    assert norm.mean.shape == (3, 1, 1) and norm.std.shape == (3, 1, 1) and norm.mean.dtype == torch.float32
    np.testing.assert_allclose(norm.mean.flatten(), x.mean((0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(norm.std.flatten(), x.std((0, 2, 3)), rtol=1e-5)
    out = norm(torch.from_numpy(x).float())
    np.testing.assert_allclose(out.mean((0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std((0, 2, 3), unbiased=False), 1, atol=1e-5)


def test_image_statistics_match_numpy():
    ds = _ds(c=1)
    x = ds.images.numpy().astype(np.float64) / 255
    norm = compute_normalization(ds, "image")
    assert norm.mean.shape == (1, 6, 5) and norm.std.shape == (1, 1, 1)
    np.testing.assert_allclose(norm.mean, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.std.item(), (x - x.mean(0)).std(), rtol=1e-5)
    single = norm(torch.from_numpy(x[0]).float())  # (C, H, W) works too
    np.testing.assert_allclose(single, (x[0] - x.mean(0)) / (x - x.mean(0)).std(), rtol=1e-4, atol=1e-5)


def test_round_trip_dict_and_inverse():
    norm = compute_normalization(_ds(), "image")
    back = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert back.mode == "image" and torch.equal(back.mean, norm.mean) and torch.equal(back.std, norm.std)
    x = torch.rand(2, 3, 6, 5)
    torch.testing.assert_close(norm.inverse(norm(x)), x)


def test_constant_channel_does_not_divide_by_zero():
    ds = ArrayDataset(torch.full((4, 1, 3, 3), 7, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ["x"])
    norm = compute_normalization(ds)
    assert norm.std.item() == pytest.approx(1 / 255) and norm.mean.item() == pytest.approx(7 / 255)


def test_file_dataset_sample(tmp_path, make_folder):
    make_folder(tmp_path, {"a": 5}, size=(4, 4))
    paths = sorted(str(p) for p in tmp_path.glob("a/*.png"))
    fds = FileDataset(paths, torch.zeros(5, dtype=torch.long), ["a"], 3, (4, 4))
    images = torch.stack([fds[i][0] for i in range(5)])
    exact = compute_normalization(ArrayDataset(images, fds.labels, ["a"]))
    est = compute_normalization(fds)  # fewer files than the sample size: exact too
    torch.testing.assert_close(est.mean, exact.mean)
    torch.testing.assert_close(est.std, exact.std)


def test_errors():
    with pytest.raises(ConfigError, match="--normalize 'pixel'"):
        compute_normalization(_ds(), "pixel")
    norm = compute_normalization(_ds(c=3))
    with pytest.raises(ConfigError, match="cannot apply to images of shape"):
        norm(torch.rand(2, 1, 6, 5))
    with pytest.raises(ConfigError, match="malformed"):
        Normalization.from_dict({"mode": "channel"})
