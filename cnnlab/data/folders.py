"""Image folders: one subfolder per class, optionally inside train/, val/ and test/.

    DIR/cat/*.jpg, DIR/dog/*.jpg                       one pool; val is split off it
    DIR/train/cat/*.jpg, DIR/val/cat/*.jpg, DIR/test/   given splits (val/ and test/ optional)

Class names are the sorted subfolder names of the training folder. Files are found
recursively inside each class folder; names without an image extension and hidden files or
folders (starting with ".") are ignored; symbolic links to folders are followed, and a link
that leads back into its own folder (a loop) is refused. A training folder needs at least two
classes. Bad files (empty, not an image, truncated, decompression bomb, broken link) raise
DataError, or with ``skip_bad`` are dropped and listed.
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
        split_names = {n for names in SPLIT_NAMES.values() for n in names}
        if "train" in subdirs and set(subdirs) <= split_names:  # train/ (val/, test/) holding images directly
            raise DataError(f"{subdirs['train']}: holds no class subfolders; put the images in one folder per class "
                            f"({subdirs['train']}/cat/*.jpg, {subdirs['train']}/dog/*.jpg, ...)")
        return {"train": root}
    splits = {"train": subdirs["train"]}
    for split in ("val", "test"):
        found = [subdirs[n] for n in SPLIT_NAMES[split] if n in subdirs]
        if len(found) > 1:
            raise DataError(f"{root}: both {found[0].name}/ and {found[1].name}/ exist; keep one validation folder")
        if found:
            splits[split] = found[0]
    return splits


def list_class_files(folder: Path, classes: list[str] | None = None, unlabelled_ok: bool = False) -> tuple[list[str], FileList]:
    """(class names, files) of one split folder; ``classes`` (from train/) fixes the label order for val/ and test/.

    ``unlabelled_ok`` (generative models): a folder of images without class subfolders is one class named after
    it, and a single class folder is allowed."""
    class_dirs = _subdirs(folder)
    if unlabelled_ok and not class_dirs:
        files, _ = _image_files(Path(folder))
        if files:
            name = Path(folder).resolve().name or "images"
            return (classes or [name]), FileList(files, [0] * len(files))
    if not class_dirs:
        raise DataError(f"{folder}: no class subfolders; expected one folder per class (e.g. {folder}/cat/*.jpg, "
                        f"{folder}/dog/*.jpg) or train/ and val/ folders holding them")
    names = [d.name for d in class_dirs]
    if classes is None and len(names) == 1 and not unlabelled_ok:
        inner = _subdirs(class_dirs[0])
        hint = (f"if {class_dirs[0].name}/ holds the class folders, pass {class_dirs[0]} instead" if len(inner) > 1 else
                f"add a folder per class next to it (e.g. {folder}/cat/, {folder}/dog/)")
        raise DataError(f"{folder}: only one class folder ({names[0]}/), and a classifier needs at least two; {hint}")
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
        files, others = _image_files(d)
        if not files:
            seen = f"; it holds {len(others)} other files, e.g. {', '.join(others[:3])}" if others else ""
            raise DataError(f"{d}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)}){seen}; "
                            "add some or remove the folder")
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
    """Visible subfolders (symbolic links to folders included), sorted by name."""
    try:
        entries = list(folder.iterdir())
    except OSError as e:
        raise DataError(f"{folder}: cannot list the folder ({e.strerror or e}); check that it exists and is readable") from None
    # hidden folders and __MACOSX (the resource forks a zip made on a Mac unpacks to) are never classes
    return sorted((d for d in entries if not d.name.startswith(".") and d.name != "__MACOSX" and _is_dir(d)),
                  key=lambda d: d.name)


def _is_dir(path) -> bool:
    try:
        return os.path.isdir(path)
    except OSError:  # e.g. a symbolic link loop: not a folder (and, by name, maybe a bad "image")
        return False


def _image_files(folder: Path) -> tuple[list[str], list[str]]:
    """(image files, names of the other files) under ``folder``, recursively, in os.walk order.

    Symbolic links to folders are followed; one that leads back to a folder on its own path
    would list the same files forever and is refused with a DataError naming the link.
    """
    found: list[str] = []
    others: list[str] = []

    def visit(d: str, chain: frozenset[str]) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as e:
            raise DataError(f"{d}: cannot list the folder ({e.strerror or e}); fix its permissions or remove it") from None
        subdirs = []
        for e in entries:
            if _is_dir(e.path):
                subdirs.append(e.path)
            elif is_image_file(e.name):
                found.append(e.path)
            else:
                others.append(e.name)
        for sub in subdirs:
            real = os.path.realpath(sub)
            if real in chain:
                raise DataError(f"{sub}: symbolic link loop (leads back to {real}); remove the link")
            visit(sub, chain | {real})

    visit(os.fspath(folder), frozenset({os.path.realpath(folder)}))
    return found, others


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
