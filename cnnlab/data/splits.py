"""Seeded stratified subsets and train/val splits: each class keeps its share of the images.

One random "stratified order" does both jobs: shuffle, rank every image within its class,
and sort by (rank + u) / class size with u ~ U(0, 1). Any prefix of that order then holds
each class in proportion to its size (within one image), so a subset of N images is the
first N and a validation split of fraction f is the first round(f * N).
"""

from __future__ import annotations

import torch


def stratified_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """A permutation of range(len(labels)) whose every prefix is class-proportional."""
    labels = labels.long()
    n = labels.numel()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)  # (N,)
    lab = labels[perm]
    counts = torch.bincount(lab, minlength=int(lab.max()) + 1 if n else 0)
    starts = torch.cumsum(counts, 0) - counts  # first position of each class after a stable sort
    by_class = torch.sort(lab, stable=True).indices
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[lab[by_class]]  # rank within its class, in shuffled order
    key = (rank.double() + torch.rand(n, generator=g, dtype=torch.float64)) / counts[lab].double()
    return perm[torch.argsort(key, stable=True)]


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a class-proportional random subset of ``n`` images (all when n >= len)."""
    if n >= labels.numel():
        return torch.arange(labels.numel())
    return torch.sort(stratified_order(labels, seed)[:n]).values


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) sorted index tensors; val holds ``fraction`` of every class (at least one image if fraction > 0)."""
    n = labels.numel()
    n_val = round(fraction * n)
    if fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = stratified_order(labels, seed)
    return torch.sort(order[n_val:]).values, torch.sort(order[:n_val]).values
