"""Mini-batch loaders: (x float32 (B, C, H, W) normalized, y int64 (B,)) for an epoch at a time.

Each batch is made in this order: uint8 -> float / 255 -> augment -> normalize -> optional
channels_last. The order of the images and every augmentation draw are a pure function of
(seed, epoch, rank): after ``set_epoch(k)`` the batches are the same whether or not earlier
epochs ran in this process, which is what an exact resume needs.

With ``world_size > 1`` (DDP), training shards are disjoint slices of one shared permutation,
wrap-padded to equal length like torch's DistributedSampler, so every rank runs the same
number of steps. Evaluation shards are disjoint and not padded (sizes differ by at most one
image), so every image is counted exactly once when the ranks' metric sums are added.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnlab.data.augment import AugmentConfig, BatchAugment, build_sample_transform, parse_augment, pca_lighting_basis
from cnnlab.data.datasets import ArrayDataset, FileDataset
from cnnlab.data.normalize import Normalization
from cnnlab.data.progressive import ProgressiveResize, resize_batch
from cnnlab.errors import ConfigError, DataError

Batch = dict[str, torch.Tensor]
PCA_FILE_SAMPLE = 256  # images decoded to estimate the PCA lighting basis of a FileDataset


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence), e.g. (seed, epoch, rank, batch)."""
    state = np.random.SeedSequence([int(p) % (1 << 64) for p in parts]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def shard_indices(n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  pad: bool = True) -> torch.Tensor:
    """This rank's dataset indices for one epoch: a seeded permutation (or 0..n-1), sliced rank::world_size."""
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))  # same on every rank
    else:
        order = torch.arange(n)
    if world_size == 1:
        return order
    if pad and n % world_size:
        total = math.ceil(n / world_size) * world_size
        order = torch.cat([order, order.repeat(math.ceil(total / n))[: total - n]])  # wrap-pad like DistributedSampler
    return order[rank::world_size]


def _num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """drop_last drops the final partial batch, but never the only batch of a split smaller than batch_size."""
    return n // batch_size if drop_last and n >= batch_size else math.ceil(n / batch_size)


def _check(batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} of world size {world_size}: need 0 <= rank < world_size")


class InMemoryLoader:
    """Mini-batches from an ArrayDataset: shuffle, augment and normalize whole batches at once."""

    def __init__(self, ds: ArrayDataset, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                 augment: BatchAugment | None = None, normalization: Normalization | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 device: torch.device | str | None = None, resize: ProgressiveResize | None = None, epochs: int = 1):
        _check(batch_size, rank, world_size)
        self.device = torch.device(device) if device is not None else ds.images.device
        self.images = ds.images.to(self.device)  # uint8 (N, C, H, W), moved once
        self.labels = ds.labels.to(self.device)  # int64 (N,)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment = augment if augment is not None and augment.cfg.enabled else None
        self.normalization = normalization
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.resize, self.epochs = resize, epochs
        self.epoch = 0
        self.n_shard = len(self._indices())
        # uint8 -> normalized in one multiply and one add when no augmentation sits in between
        if normalization is not None:
            scale, shift = normalization._scale_shift(self.device)
            self._direct = (scale / 255.0, shift)
        else:
            self._direct = (torch.full((1, 1, 1), 1 / 255.0, device=self.device), torch.zeros((1, 1, 1), device=self.device))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        return shard_indices(len(self.labels), shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
                             world_size=self.world_size, pad=self.shuffle)

    def __len__(self) -> int:
        return _num_batches(self.n_shard, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[Batch]:
        """The epoch's batches from batch ``start`` on, without computing the skipped ones (for resuming)."""
        idx = self._indices().to(self.device)
        for b in range(start, len(self)):
            j = idx[b * self.batch_size:(b + 1) * self.batch_size]  # (B,)
            x = self.images.index_select(0, j).float()  # (B, C, H, W) in 0..255
            if self.augment is None:
                x = x.mul_(self._direct[0]).add_(self._direct[1])  # in place: faster than addcmul
            else:
                g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, self.rank, b))
                x = self.augment(x.mul_(1 / 255.0), g)
                if self.normalization is not None:
                    x = self.normalization(x)
            if self.resize is not None:
                x = resize_batch(x, self.image_size())
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield {"images": x, "labels": self.labels.index_select(0, j)}

    def image_size(self) -> int:
        """The shorter side of this epoch's training images (smaller than the data's under progressive resizing)."""
        return _epoch_size(self.resize, self.epoch, self.epochs, min(self.images.shape[-2:]))


class _KeySampler(Sampler):
    """Yields (dataset index, augmentation seed) so a worker's draws depend only on (seed, epoch, index)."""

    def __init__(self, loader: "FileLoader"):
        self.loader = loader

    def __len__(self) -> int:
        return self.loader.n_shard

    def __iter__(self):
        ld = self.loader
        base = mix_seed(ld.seed, ld.epoch, ld.rank)
        for i in ld._indices().tolist():
            yield i, (base + i * 0x9E3779B97F4A7C15) % (1 << 63)


class _TransformedFiles(Dataset):
    def __init__(self, ds: FileDataset, transform, random: bool):
        self.ds, self.transform, self.random = ds, transform, random

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key
        img, label = self.ds[i]  # uint8 (C, H, W)
        if not self.random:
            return self.transform(img), label
        with torch.random.fork_rng(devices=[]):  # seeded per image; the caller's RNG state is untouched
            torch.manual_seed(seed)
            return self.transform(img), label


class FileLoader:
    """Mini-batches from a FileDataset: a torch DataLoader over per-image v2 transforms, same interface."""

    def __init__(self, ds: FileDataset, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                 transform=None, normalization: Normalization | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1, channels_last: bool = False, num_workers: int = 0, random: bool = False,
                 resize: ProgressiveResize | None = None, epochs: int = 1):
        _check(batch_size, rank, world_size)
        self.shuffle, self.seed, self.rank, self.world_size, self.epoch = shuffle, seed, rank, world_size, 0
        self.resize, self.epochs, self.full_size = resize, epochs, min(ds.img_size)
        self.normalization, self.channels_last = normalization, channels_last
        self._n, self.batch_size = len(ds), batch_size
        self.n_shard = len(self._indices())
        self._len = _num_batches(self.n_shard, batch_size, drop_last)
        transform = transform or build_sample_transform(AugmentConfig(), ds.img_size, train=False)
        self.dataloader = DataLoader(_TransformedFiles(ds, transform, random), batch_size=batch_size,
                                     sampler=_KeySampler(self), drop_last=drop_last and self.n_shard >= batch_size,
                                     num_workers=num_workers, generator=torch.Generator().manual_seed(seed))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        return shard_indices(self._n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
                             world_size=self.world_size, pad=self.shuffle)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Batch]:
        batches = iter(self.dataloader)
        while True:
            try:
                x, y = next(batches)  # (B, C, H, W) float in [0, 1], (B,)
            except StopIteration:
                return
            except DataError as e:  # from a worker the message is a whole traceback: keep its last line
                raise DataError(str(e).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
            if self.normalization is not None:
                x = self.normalization(x)
            if self.resize is not None:
                x = resize_batch(x, self.image_size())
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield {"images": x, "labels": y.long()}

    def image_size(self) -> int:
        """The shorter side of this epoch's training images (smaller than the data's under progressive resizing)."""
        return _epoch_size(self.resize, self.epoch, self.epochs, self.full_size)


class _SeededItems(Dataset):
    """Items of a dict dataset drawn under a per-(seed, epoch, index) torch seed, so random transforms replay exactly."""

    def __init__(self, ds, random: bool):
        self.ds, self.random = ds, random

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]):
        i, seed = key
        if not self.random:
            return self.ds[i]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.ds[i]


def collate_dicts(items: list[dict]) -> dict:
    """Stack each key's tensors when their shapes agree (images, boxes of one object), else keep a list
    (detection's images and targets); numbers become tensors, anything else a list."""
    out: dict = {}
    for key in items[0]:
        values = [it[key] for it in items]
        first = values[0]
        if isinstance(first, torch.Tensor) and all(isinstance(v, torch.Tensor) and v.shape == first.shape for v in values):
            out[key] = torch.stack(values)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


class DictLoader:
    """Mini-batches of a map-style dataset of dict items, in an order that is a pure function of (seed, epoch).

    ``iter_from(b)`` resumes mid-epoch at batch ``b``; items are made under a seed of (seed, epoch,
    index), so random augmentations inside the dataset replay exactly after a resume.
    """

    def __init__(self, ds, batch_size: int, *, shuffle: bool, drop_last: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1, collate=None, num_workers: int = 0):
        _check(batch_size, rank, world_size)
        self.ds, self.batch_size, self.shuffle, self.seed = ds, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.drop_last = drop_last
        self.n_shard = len(self._indices())
        self._len = _num_batches(self.n_shard, batch_size, drop_last)
        self.collate = collate or collate_dicts
        self.dataloader_kwargs = dict(num_workers=num_workers)
        self.items = _SeededItems(ds, random=shuffle)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        return shard_indices(len(self.ds), shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
                             world_size=self.world_size, pad=self.shuffle)

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, start: int):
        idx = self._indices().tolist()
        base = mix_seed(self.seed, self.epoch, self.rank)
        keys = [(i, (base + i * 0x9E3779B97F4A7C15) % (1 << 63)) for i in idx]
        batches = [keys[b * self.batch_size:(b + 1) * self.batch_size] for b in range(start, len(self))]
        loader = DataLoader(_ListDataset(batches, self.items), batch_size=None, collate_fn=self.collate_batch,
                            **self.dataloader_kwargs)
        try:
            yield from loader
        except DataError as e:  # from a worker the message is a whole traceback: keep its last line
            raise DataError(str(e).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None

    def collate_batch(self, items: list) -> dict:
        return self.collate(items)


class _ListDataset(Dataset):
    """Batch b of an epoch: the list of its items (so workers build whole batches)."""

    def __init__(self, batches: list[list[tuple[int, int]]], items: _SeededItems):
        self.batches, self.items = batches, items

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> list:
        return [self.items[k] for k in self.batches[b]]


def _epoch_size(resize: ProgressiveResize | None, epoch: int, epochs: int, full: int) -> int:
    return full if resize is None else resize.size(epoch, epochs, full)


def make_loader(ds: ArrayDataset | FileDataset, batch_size: int, *, train: bool,
                augment: AugmentConfig | str | None = None, normalization: Normalization | None = None, seed: int = 0,
                rank: int = 0, world_size: int = 1, num_workers: int = 0, channels_last: bool = False,
                pca_basis: tuple[torch.Tensor, torch.Tensor] | None = None, device: torch.device | str | None = None,
                resize: ProgressiveResize | None = None, epochs: int = 1):
    """The right loader for ``ds``: shuffled, augmented and drop_last when ``train``; plain order otherwise.

    ``resize`` (training only) is progressive resizing over ``epochs`` epochs: see cnnlab.data.progressive.

    ``pca_basis`` defaults to the colour basis of ``ds`` itself when PCA lighting is on.
    ``device`` (in-memory data only) moves the whole dataset there once and builds batches on it.
    """
    cfg = parse_augment(augment) if train else AugmentConfig()
    if cfg.pca_lighting and pca_basis is None:
        if isinstance(ds, ArrayDataset):
            pca_basis = pca_lighting_basis(ds.images)
        else:
            pick = torch.linspace(0, len(ds) - 1, min(len(ds), PCA_FILE_SAMPLE)).round().long().tolist()
            pca_basis = pca_lighting_basis(torch.stack([ds[i][0] for i in pick]))
    common = dict(shuffle=train, drop_last=train, normalization=normalization, seed=seed, rank=rank,
                  world_size=world_size, channels_last=channels_last, resize=resize if train else None, epochs=epochs)
    if isinstance(ds, ArrayDataset):
        aug = BatchAugment(cfg, pca_basis) if cfg.enabled else None
        return InMemoryLoader(ds, batch_size, augment=aug, device=device, **common)
    if isinstance(ds, FileDataset):
        transform = build_sample_transform(cfg, ds.img_size, train=train and cfg.enabled, pca_basis=pca_basis)
        return FileLoader(ds, batch_size, transform=transform, num_workers=num_workers, random=cfg.enabled, **common)
    raise ConfigError(f"make_loader needs an ArrayDataset or FileDataset, got {type(ds).__name__}")
