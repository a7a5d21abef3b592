"""The conventional baseline: the recipe people copy from the classic PyTorch MNIST example, on Fashion-MNIST.

Written from that recipe's description, with its own loop (not cnnlab's trainer):
- data: per-sample torchvision transforms, each uint8 image -> PIL image -> ToTensor -> Normalize with
  the training split's own mean and std (the MNIST example's (0.1307,), (0.3081,) are MNIST's),
  through a torch DataLoader (batch 64, shuffled; num_workers 0: on a 2-core machine workers only
  compete with the training threads; test batch 1000).
- model: conv 1->32 3x3, ReLU, conv 32->64 3x3, ReLU, max-pool 2, dropout 0.25, flatten,
  fc 9216->128, ReLU, dropout 0.5, fc 128->10, log_softmax.
- optimization: Adadelta lr=1.0, StepLR gamma=0.7 stepped every epoch, NLL loss, 14 epochs.
- test accuracy after every epoch (not timed); train_seconds = cumulative wall time of the
  training loops (data loading included).

    python benchmarks/baseline.py [--epochs 14] [--seed 0] [--threads 2] [--limit N]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
LR = 1.0
GAMMA = 0.7
EPOCHS = 14


class BaselineNet(nn.Module):
    """The MNIST example's network: two convs, max-pool, dropout, two fully connected layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (B, 32, 26, 26)
        x = F.relu(self.conv2(x))  # (B, 64, 24, 24)
        x = F.max_pool2d(x, 2)  # (B, 64, 12, 12)
        x = torch.flatten(self.dropout1(x), 1)  # (B, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))  # (B, 128)
        return F.log_softmax(self.fc2(x), dim=1)  # (B, 10) log-probabilities


class PerSampleImages(Dataset):
    """Like torchvision's MNIST dataset: one PIL image per item, then the per-sample transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images = images[:, 0].numpy()  # uint8 (N, H, W)
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i])  # mode "L" (8-bit grey)
        return self.transform(img), self.labels[i]  # float (1, H, W), class index


def mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Mean and std of the pixels in [0, 1] of uint8 images (the training split's statistics)."""
    x = images.double() / 255.0
    return float(x.mean()), float(x.std())


def make_loaders(train, test, seed: int) -> tuple[DataLoader, DataLoader]:
    mean, std = mean_std(train.images)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(PerSampleImages(train.images, train.labels, transform), batch_size=BATCH_SIZE,
                              shuffle=True, num_workers=0, generator=g)
    test_loader = DataLoader(PerSampleImages(test.images, test.labels, transform), batch_size=TEST_BATCH_SIZE,
                             shuffle=False, num_workers=0)
    return train_loader, test_loader


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer) -> tuple[float, int, float]:
    """One epoch; returns (mean loss, images seen, wall seconds including data loading)."""
    model.train()
    t0 = time.perf_counter()
    loss_sum, seen = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * y.shape[0]
        seen += y.shape[0]
    return loss_sum / max(1, seen), seen, time.perf_counter() - t0


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """The loop's step on a fixed batch (for timing the step alone, without the data pipeline)."""
    def step() -> None:
        optimizer.zero_grad()
        F.nll_loss(model(x), y).backward()
        optimizer.step()

    return step


@torch.no_grad()
def test_accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += y.shape[0]
    return correct / total


def train_baseline(train, test, epochs: int = EPOCHS, seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the baseline on ArrayDatasets ``train``/``test``; per-epoch rows and the curve.

    Rows: epoch, train_loss, test_acc, epoch_seconds, train_seconds (cumulative), images_per_s, lr.
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    model = BaselineNet(num_classes=len(train.classes))
    train_loader, test_loader = make_loaders(train, test, seed)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=GAMMA)
    rows, total, images = [], 0.0, 0
    for epoch in range(1, epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        loss, seen, seconds = train_epoch(model, train_loader, optimizer)
        scheduler.step()
        total += seconds
        images += seen
        acc = test_accuracy(model, test_loader)
        rows.append({"epoch": epoch, "train_loss": loss, "test_acc": acc, "epoch_seconds": seconds,
                     "train_seconds": total, "images_per_s": seen / seconds, "lr": lr})
        if log:
            log(f"baseline epoch {epoch}/{epochs}: loss {loss:.4f}, test acc {acc:.4f}, {seconds:.1f} s ({seen / seconds:.0f} img/s)")
    return {"rows": rows, "curve": [(r["train_seconds"], r["test_acc"]) for r in rows], "final_acc": rows[-1]["test_acc"],
            "train_seconds": total, "images_per_s": images / total, "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="train on this many images (stratified; quick checks)")
    ap.add_argument("--limit-test", type=int, default=None, help="test on this many images (default: --limit)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from cnnlab.data.datasets import load_classification_data

    data = load_classification_data("fashion-mnist", seed=args.seed, limit=args.limit, limit_test=args.limit_test or args.limit)
    out = train_baseline(data.train, data.test, args.epochs, args.seed, log=lambda s: print(s, file=sys.stderr))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
