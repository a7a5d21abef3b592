"""Labelled image sets for classification and the one function that loads them by name or folder.

``load_classification_data("fashion-mnist")`` (or "mnist", "digits", or a path to an image
folder) returns train / val / test splits as uint8 tensors in memory (``ArrayDataset``), or,
for a folder too big for memory, as lazily decoded files (``FileDataset``). Splits and subsets
are stratified and seeded, so the same arguments always give the same images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from cnnlab.data import folders, named
from cnnlab.data.images import load_image, to_grey
from cnnlab.data.named import FASHION_MNIST_ROOT, MNIST_ROOT
from cnnlab.data.splits import stratified_split, stratified_subset
from cnnlab.errors import ConfigError, DataError

NAMED_DATASETS = ("fashion-mnist", "mnist", "digits")
FALLBACK_ALIAS = "fashion-mnist-or-digits"  # fashion-mnist if installed, else digits (what `cnnlab demo` uses)
IN_MEMORY_LIMIT_BYTES = 2 * 1024**3  # image folders bigger than this (as decoded uint8) stay on disk
DEFAULT_FOLDER_SIZE = 64  # side of the square images when a folder's images differ in size
DEFAULT_VAL_FRACTION = 0.2  # for image folders without val/

__all__ = ["ArrayDataset", "FileDataset", "ClassificationData", "NAMED_DATASETS", "FASHION_MNIST_ROOT", "MNIST_ROOT",
           "load_classification_data"]


@dataclass
class ArrayDataset:
    """A labelled image set held in memory."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"ArrayDataset images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"ArrayDataset labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])  # uint8 (C, H, W), class index

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def img_size(self) -> tuple[int, int]:
        return (self.images.shape[2], self.images.shape[3])

    def subset(self, index: torch.Tensor) -> "ArrayDataset":
        return ArrayDataset(self.images[index], self.labels[index], self.classes)


@dataclass
class FileDataset:
    """An image folder too big for memory: each item is decoded (and resized) when it is read."""

    paths: list[str]
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    channels: int
    img_size: tuple[int, int]  # (H, W) every image is resized / center-cropped to

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return load_image(self.paths[i], self.channels, size=self.img_size), int(self.labels[i])  # uint8 (C, H, W)

    def subset(self, index: torch.Tensor) -> "FileDataset":
        index = torch.as_tensor(index, dtype=torch.long)
        return FileDataset([self.paths[i] for i in index.tolist()], self.labels[index], self.classes, self.channels,
                           self.img_size)


Dataset = ArrayDataset | FileDataset


@dataclass
class ClassificationData:
    """Train / val / test splits with what a model needs to know about them."""

    train: Dataset
    val: Dataset | None  # held-out split for model selection
    test: Dataset | None  # official test split where the dataset has one
    classes: list[str]
    source: str  # human-readable origin, e.g. "fashion-mnist (/usr/share/datasets/fashion-mnist)"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) dropped with skip_bad=True

    @property
    def in_chans(self) -> int:
        return self.train.channels

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.train.img_size)


def load_classification_data(spec: str, root: str | None = None, *, val_fraction: float | None = None,
                             img_size: int | None = None, channels: int | None = None, skip_bad: bool = False,
                             seed: int = 0, limit: int | None = None, limit_test: int | None = None,
                             fallback: bool = False, in_memory: bool | None = None,
                             unlabelled_ok: bool = False) -> ClassificationData:
    """Load a named dataset ("fashion-mnist", "mnist", "digits") or an image folder (a path) as splits.

    val_fraction: share of the training images held out as val (stratified, seeded); None means 0
    for the named datasets (they have an official test split) and 0.2 for folders without val/.
    limit / limit_test cap train / (val and test) to a stratified random subset. ``fallback``
    gives digits when Fashion-MNIST or MNIST is not installed (the source says so). ``unlabelled_ok``: a folder
    may hold its images directly (one class), as generative models' data may.
    """
    _check_args(val_fraction, img_size, channels, limit, limit_test)
    if spec == FALLBACK_ALIAS:
        spec, fallback = "fashion-mnist", True
    if spec in ("fashion-mnist", "mnist"):
        data = _load_idx_named(spec, root, img_size, channels, fallback)
    elif spec == "digits":
        data = _load_digits(img_size, channels, source="digits (scikit-learn, 1797 8x8 scans)")
    elif os.path.isdir(spec):
        return _load_folder(spec, val_fraction, img_size, channels, skip_bad, seed, limit, limit_test, in_memory,
                            unlabelled_ok)
    else:
        raise DataError(f"--data {spec!r}: neither a named dataset ({', '.join(NAMED_DATASETS)}) nor an existing folder "
                        "of class subfolders")
    if val_fraction:
        train, val = stratified_split(data.train.labels, val_fraction, seed)
        data.train, data.val = data.train.subset(train), data.train.subset(val)
    return _apply_limits(data, limit, limit_test, seed)


def _check_args(val_fraction, img_size, channels, limit, limit_test) -> None:
    if val_fraction is not None and not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction {val_fraction}: must be at least 0 and below 1 (e.g. 0.1)")
    if img_size is not None and img_size < 1:
        raise ConfigError(f"--img-size {img_size}: must be a positive number of pixels")
    if channels not in (None, 1, 3):
        raise ConfigError(f"--channels {channels}: must be 1 (grey) or 3 (RGB)")
    for name, value in (("limit", limit), ("limit-test", limit_test)):
        if value is not None and value < 1:
            raise ConfigError(f"--{name} {value}: must be a positive number of images")


def _load_idx_named(name: str, root: str | None, img_size: int | None, channels: int | None,
                    fallback: bool) -> ClassificationData:
    root = root or named.default_root(name)
    if fallback:
        try:
            for stem in named.IDX_FILES.values():
                named.find_idx_file(root, stem, name)
        except DataError:
            return _load_digits(img_size, channels, source=f"digits (embedded fallback: {name} not found at {root})")
    train, test, classes = named.load_idx_dataset(name, root)
    return ClassificationData(_in_memory(train, classes, img_size, channels), None,
                              _in_memory(test, classes, img_size, channels), classes, f"{name} ({root})")


def _load_digits(img_size: int | None, channels: int | None, source: str) -> ClassificationData:
    size = (img_size, img_size) if img_size else (28, 28)
    train, test, classes = named.load_digits_dataset(size)
    return ClassificationData(_in_memory(train, classes, None, channels), None, _in_memory(test, classes, None, channels),
                              classes, source)


def _in_memory(split, classes: list[str], img_size: int | None, channels: int | None) -> ArrayDataset:
    x, y = split  # uint8 (N, C, H, W), int64 (N,)
    if img_size:
        x = named.resize_batch(x, (img_size, img_size))
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()  # grey -> RGB by repetition
    elif channels == 1 and x.shape[1] == 3:
        x = torch.cat([to_grey(part) for part in x.split(4096)])  # chunks bound the int32 temporaries
    return ArrayDataset(x, y, classes)


def _apply_limits(data: ClassificationData, limit: int | None, limit_test: int | None, seed: int) -> ClassificationData:
    if limit:
        data.train = data.train.subset(stratified_subset(data.train.labels, limit, seed + 1))
    if limit_test:
        if data.val is not None:
            data.val = data.val.subset(stratified_subset(data.val.labels, limit_test, seed + 2))
        if data.test is not None:
            data.test = data.test.subset(stratified_subset(data.test.labels, limit_test, seed + 3))
    return data


def _load_folder(path: str, val_fraction: float | None, img_size: int | None, channels: int | None, skip_bad: bool,
                 seed: int, limit: int | None, limit_test: int | None, in_memory: bool | None,
                 unlabelled_ok: bool = False) -> ClassificationData:
    """Scan, check headers, split and cap the file lists, then decode (or keep lazily on disk)."""
    split_dirs = folders.find_splits(path)
    classes, train_files = folders.list_class_files(split_dirs["train"], unlabelled_ok=unlabelled_ok)
    files = {"train": train_files}
    for split in ("val", "test"):
        if split in split_dirs:
            files[split] = folders.list_class_files(split_dirs[split], classes, unlabelled_ok=unlabelled_ok)[1]
    if "val" in files and val_fraction:
        raise ConfigError(f"--val-fraction {val_fraction}: {split_dirs['val']} already holds the validation split; "
                          "drop the option or the folder")
    skipped: list[tuple[str, str]] = []
    infos = []
    for split in list(files):
        files[split], split_infos = folders.probe_files(files[split], skip_bad, skipped)
        infos += split_infos
    for split, file_list in files.items():
        if not file_list.paths:
            raise DataError(f"{split_dirs[split]}: no readable {split} images left after skipping bad files; "
                            "fix or replace them")
    n_channels = channels or (1 if all(info.grey for info in infos) else 3)
    sizes = {info.size for info in infos}
    size = (img_size, img_size) if img_size else (sizes.pop() if len(sizes) == 1 else (DEFAULT_FOLDER_SIZE,) * 2)
    if "val" not in files:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        if fraction:
            train_idx, val_idx = stratified_split(torch.tensor(files["train"].labels), fraction, seed)
            files["train"], files["val"] = files["train"].take(train_idx.tolist()), files["train"].take(val_idx.tolist())
    caps = {"train": (limit, seed + 1), "val": (limit_test, seed + 2), "test": (limit_test, seed + 3)}
    for split, (cap, cap_seed) in caps.items():
        if cap and split in files:
            files[split] = files[split].take(stratified_subset(torch.tensor(files[split].labels), cap, cap_seed).tolist())
    total = sum(len(f.paths) for f in files.values()) * n_channels * size[0] * size[1]
    keep_in_memory = total < IN_MEMORY_LIMIT_BYTES if in_memory is None else in_memory
    splits: dict[str, Dataset] = {}
    for split, file_list in files.items():
        if keep_in_memory:
            images, labels = folders.decode_files(file_list, n_channels, size, skip_bad, skipped)
            if not len(labels):
                where = split_dirs.get(split, split_dirs["train"])
                raise DataError(f"{where}: no readable {split} images left after skipping bad files; fix or replace them")
            splits[split] = ArrayDataset(images, labels, classes)
        else:
            splits[split] = FileDataset(file_list.paths, torch.tensor(file_list.labels, dtype=torch.int64), classes,
                                        n_channels, size)
    layout = " ".join(f"{split_dirs[s].name}/" for s in ("train", "val", "test") if s in split_dirs) if len(split_dirs) > 1 else ""
    source = f"image folder {path}" + (f" ({layout})" if layout else "") + ("" if keep_in_memory else " (decoded lazily)")
    return ClassificationData(splits["train"], splits.get("val"), splits.get("test"), classes, source, skipped)
