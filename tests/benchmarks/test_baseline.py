"""The PyTorch-example baseline: its published layer sizes, its per-sample pipeline, a tiny run."""

from __future__ import annotations

import pytest
import torch

import baseline as base
from cnnlab.data.datasets import ArrayDataset

CLASSES = [str(i) for i in range(10)]


def tiny_set(n: int, seed: int) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return ArrayDataset(images, torch.arange(n) % 10, CLASSES)


def test_parameter_counts_of_the_mnist_example_net():
    net = base.BaselineNet()
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_children()}
    assert counts == {"conv1": 320, "conv2": 18496, "dropout1": 0, "dropout2": 0, "fc1": 1179776, "fc2": 1290}
    assert sum(counts.values()) == 1199882


def test_forward_gives_log_probabilities():
    net = base.BaselineNet().eval()
    out = net(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))


def test_per_sample_pipeline_normalizes_with_the_training_statistics():
    train = tiny_set(20, 0)
    mean, std = base.mean_std(train.images)
    x = train.images.double() / 255
    assert mean == pytest.approx(float(x.mean())) and std == pytest.approx(float(x.std()))
    train_loader, test_loader = base.make_loaders(train, tiny_set(10, 1), seed=0)
    assert train_loader.batch_size == base.BATCH_SIZE == 64 and train_loader.num_workers == 0
    img, label = train_loader.dataset[3]
    assert img.shape == (1, 28, 28) and img.dtype == torch.float32 and label == 3
    expected = (train.images[3].float() / 255 - mean) / std
    torch.testing.assert_close(img, expected, atol=1e-5, rtol=1e-5)


def test_tiny_baseline_run_records_the_curve():
    torch.manual_seed(0)
    out = base.train_baseline(tiny_set(70, 0), tiny_set(30, 1), epochs=2, seed=0)
    rows = out["rows"]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["lr"] for r in rows] == pytest.approx([1.0, 0.7])  # StepLR gamma 0.7 per epoch
    assert rows[1]["train_seconds"] == pytest.approx(rows[0]["epoch_seconds"] + rows[1]["epoch_seconds"])
    assert all(0.0 <= r["test_acc"] <= 1.0 and r["test_acc"] * 30 == round(r["test_acc"] * 30) for r in rows)
    assert rows[0]["images_per_s"] * rows[0]["epoch_seconds"] == pytest.approx(70)  # batches of 64 + 6, none dropped
    assert out["curve"] == [(r["train_seconds"], r["test_acc"]) for r in rows]
    assert out["final_acc"] == rows[-1]["test_acc"] and out["parameters"] == 1199882


def test_training_step_updates_the_weights():
    net = base.BaselineNet().train()
    opt = torch.optim.Adadelta(net.parameters(), lr=base.LR)
    before = net.fc2.weight.detach().clone()
    base.training_step(net, opt, torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))()
    assert not torch.equal(before, net.fc2.weight)
