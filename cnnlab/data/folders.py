"""Image folders: one subfolder per class, optionally inside train/, val/ and test/.

    DIR/cat/*.jpg, DIR/dog/*.jpg                       one pool; val is split off it
    DIR/train/cat/*.jpg, DIR/val/cat/*.jpg, DIR/test/   given splits (val/ and test/ optional)

Class names are the sorted subfolder names of the training folder. Files are found
recursively inside each class folder; names without an image extension and hidden files or
folders (starting with ".") are ignored. Bad files (empty, not an image, truncated,
decompression bomb) raise DataError, or with ``skip_bad`` are dropped and listed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data.images import IMAGE_EXTENSIONS, ImageInfo, is_image_file, load_image, probe_image
from cnnlab.errors import DataError

SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


@dataclass
class FileList:
    """Image files of one split with their class index."""

    paths: list[str]
    labels: list[int]

    def take(self, idx: list[int]) -> "FileList":
        return FileList([self.paths[i] for i in idx], [self.labels[i] for i in idx])


def find_splits(root: str | os.PathLike) -> dict[str, Path]:
    """{"train": ..., "val"?: ..., "test"?: ...}: the split folders, or {"train": root} for a flat class layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass an image folder (one subfolder per class) or a named dataset")
    subdirs = {d.name: d for d in _subdirs(root)}
    if "train" not in subdirs or not _subdirs(subdirs["train"]):
        return {"train": root}
    splits = {"train": subdirs["train"]}
    for split in ("val", "test"):
        found = [subdirs[n] for n in SPLIT_NAMES[split] if n in subdirs]
        if len(found) > 1:
            raise DataError(f"{root}: both {found[0].name}/ and {found[1].name}/ exist; keep one validation folder")
        if found:
            splits[split] = found[0]
    return splits


def list_class_files(folder: Path, classes: list[str] | None = None) -> tuple[list[str], FileList]:
    """(class names, files) of one split folder; ``classes`` (from train/) fixes the label order for val/ and test/."""
    class_dirs = _subdirs(folder)
    if not class_dirs:
        raise DataError(f"{folder}: no class subfolders; expected one folder per class (e.g. {folder}/cat/*.jpg, "
                        f"{folder}/dog/*.jpg) or train/ and val/ folders holding them")
    names = [d.name for d in class_dirs]
    if classes is None:
        classes = names
    else:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DataError(f"{folder / unknown[0]}: class {unknown[0]!r} is not among the training classes "
                            f"({', '.join(classes)}); rename it or add it to train/")
    index = {c: i for i, c in enumerate(classes)}
    paths: list[str] = []
    labels: list[int] = []
    for d in class_dirs:
        files = _image_files(d)
        if not files:
            raise DataError(f"{d}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
        paths += files
        labels += [index[d.name]] * len(files)
    return classes, FileList(paths, labels)


def probe_files(files: FileList, skip_bad: bool, skipped: list[tuple[str, str]]) -> tuple[FileList, list[ImageInfo]]:
    """Read every header (threads): the usable files and their infos; bad ones raise or go to ``skipped``."""
    results = _map(_try(probe_image), files.paths)
    _collect_bad(files.paths, results, skip_bad, skipped)
    keep = [i for i, r in enumerate(results) if isinstance(r, ImageInfo)]
    return files.take(keep), [results[i] for i in keep]


def decode_files(files: FileList, channels: int, size: tuple[int, int], skip_bad: bool,
                 skipped: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode all files (threads) into uint8 (N, C, H, W) and int64 (N,) labels; bad ones raise or are skipped."""
    results = _map(_try(lambda p: load_image(p, channels, size=size)), files.paths)
    _collect_bad(files.paths, results, skip_bad, skipped)
    good = [i for i, r in enumerate(results) if isinstance(r, torch.Tensor)]
    images = torch.empty((len(good), channels, *size), dtype=torch.uint8)  # (N, C, H, W)
    for j, i in enumerate(good):
        images[j] = results[i]
    labels = torch.tensor([files.labels[i] for i in good], dtype=torch.int64)
    return images, labels


def _subdirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _image_files(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".") and is_image_file(f)]
    return found


def _try(fn):
    def call(path):
        try:
            return fn(path)
        except DataError as e:
            return e
    return call


def _map(fn, items: list) -> list:
    if len(items) < 64:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        return list(pool.map(fn, items, chunksize=32))


def _collect_bad(paths: list[str], results: list, skip_bad: bool, skipped: list[tuple[str, str]]) -> None:
    for path, r in zip(paths, results):
        if isinstance(r, DataError):
            if not skip_bad:
                raise r
            reason = str(r)
            skipped.append((path, reason[len(path) + 2:] if reason.startswith(path) else reason))
