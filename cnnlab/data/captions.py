"""Captioned images: COCO captions folders in, a vocabulary, and padded token batches out.

A folder holds ``train/`` and ``val/`` (``test/`` and, for scenes, ``test_novel/`` optional),
each with ``annotations.json`` in the COCO captions layout (``images`` with id/file_name,
``annotations: [{image_id, caption}]``, several captions per image). Without ``val/`` a seeded
share of train becomes val. Scenes also write ``instances.json`` (boxes, category, colour), read
here for attention correctness.

Captions are lower-cased and split into words (punctuation dropped). The vocabulary holds the
training words seen at least ``min_count`` times after the four specials
``<PAD>=0, <START>=1, <END>=2, <UNK>=3``. A caption becomes ``[<START>, w_1 .. w_n, <END>]``;
batches pad it with -1 (DESIGN "Batches"): ``images f32[B,3,S,S]``, ``tokens i64[B,T]``,
``lengths i64[B]``, plus ``index`` / ``set_id`` (which image of which split, for cached features).
"""

from __future__ import annotations

import itertools
import json
import re
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from cnnlab.errors import DataError

PAD, START, END, UNK = "<PAD>", "<START>", "<END>", "<UNK>"
SPECIALS = (PAD, START, END, UNK)
SPLITS = ("train", "val", "test", "test_novel")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """'A red circle, left of a star.' -> ['a', 'red', 'circle', 'left', 'of', 'a', 'star']."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Word <-> id, specials first; unknown words map to <UNK>."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad, self.start, self.end, self.unk = (self.index[s] for s in SPECIALS)

    @classmethod
    def build(cls, captions: Sequence[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """From tokenized training captions: words seen >= ``min_count`` times, most frequent first (ties: a-z)."""
        counts = Counter(itertools.chain.from_iterable(captions))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Sequence[str], max_len: int | None = None) -> list[int]:
        """[<START>, ids of the first max_len words, <END>]."""
        ids = [self.index.get(w, self.unk) for w in (words[:max_len] if max_len else words)]
        return [self.start, *ids, self.end]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Word ids (without <START>/<END>) -> words; stops at <END>."""
        out = []
        for i in ids:
            if i == self.end:
                break
            if i not in (self.start, self.pad):
                out.append(self.words[i])
        return out


_SETS: "weakref.WeakValueDictionary[int, CaptionSet]" = weakref.WeakValueDictionary()
_NEXT_ID = itertools.count(1)


@dataclass(eq=False)
class CaptionSet:
    """Images uint8 (N, 3, S, S) with their tokenized captions; ``objects[i]``: [(box xyxy in S px, category, colour)]."""

    images: torch.Tensor
    captions: list[list[list[str]]]  # per image, its tokenized captions
    names: list[str]  # file names, for reports
    objects: list[list[tuple[list[float], str, str | None]]] | None = None
    vocab: Vocabulary | None = None  # set by the task
    max_len: int = 24
    train: bool = False  # items draw one of the image's captions at random (else the first)
    transform: Any = None  # normalization, set by the task
    features: torch.Tensor | None = None  # cached backbone features (N, L, D) when the backbone is frozen
    cached: torch.Tensor | None = None  # bool (N,)
    set_id: int = field(default=0)

    def __post_init__(self):
        self.set_id = next(_NEXT_ID)
        _SETS[self.set_id] = self

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        caps = self.captions[i]
        c = int(torch.randint(len(caps), ())) if self.train else 0
        item = {"images": self.images[i].float() / 255,
                "tokens": torch.tensor(self.vocab.encode(caps[c], self.max_len)), "index": i, "set_id": self.set_id}
        return self.transform(item) if self.transform is not None else item

    def references(self, i: int) -> list[list[str]]:
        return self.captions[i]


def find_set(set_id: int) -> CaptionSet:
    return _SETS[set_id]


def collate_captions(items: list[dict]) -> dict[str, Any]:
    """Stack images; pad tokens with -1 to the longest caption of the batch."""
    lengths = torch.tensor([len(it["tokens"]) for it in items])
    tokens = torch.full((len(items), int(lengths.max())), -1, dtype=torch.long)  # (B, T)
    for k, it in enumerate(items):
        tokens[k, :len(it["tokens"])] = it["tokens"]
    return {"images": torch.stack([it["images"] for it in items]), "tokens": tokens, "lengths": lengths,
            "index": torch.tensor([it["index"] for it in items]), "set_id": torch.tensor([it["set_id"] for it in items])}


# ---------------------------------------------------------------------------- reading folders
def find_caption_splits(root: str) -> dict[str, Path]:
    """The caption file of each split present; train is required.

    Layouts: ``root/<split>/annotations.json`` (what the scene generator writes), COCO's own
    ``root/annotations/captions_<split>*.json`` (images in ``root/<split>*/`` or ``root/images/...``),
    or one captions JSON file (train; val is then carved from it).
    """
    base = Path(root)
    if base.is_file() and base.suffix == ".json":
        return {"train": base}
    if not base.is_dir():
        raise DataError(f"--data {root}: no such folder; pass a COCO captions folder with train/ and val/ "
                        "(make one with `cnnlab data scenes --kind caption --out DIR`)")
    from cnnlab.data.coco_layouts import find_coco_files

    found = find_coco_files(base, "captions", SPLITS)  # also a lone annotations/captions_val2017.json (as train)
    if "train" not in found:
        raise DataError(f"--data {root}: found no train/annotations.json nor annotations/captions_train*.json "
                        "(COCO captions layout: train/, val/, each with annotations.json holding 'images' and "
                        "'annotations' [{image_id, caption}])")
    return found


@dataclass
class CaptionRecord:
    path: Path
    name: str
    width: int
    height: int
    captions: list[list[str]]
    objects: list[tuple[list[float], str, str | None]] | None = None


def read_caption_records(path: Path) -> list[CaptionRecord]:
    """Images with their tokenized captions; an empty caption or an image id that is not listed is one DataError."""
    from cnnlab.data.coco import read_coco

    ds = read_coco(path)  # checks every image file and every annotation's image_id
    if not ds.images:
        raise DataError(f"{path}: lists no images")
    objects = _read_instances(path.parent / "instances.json")
    records = []
    for im in ds.images:
        caps = []
        for c in ds.captions[im.id]:
            words = tokenize(c)
            if not words:
                raise DataError(f"{path}: image id {im.id} ({im.file_name}) has an empty caption {c!r}; "
                                "write a caption or remove that annotation")
            caps.append(words)
        if caps:
            records.append(CaptionRecord(im.path, im.file_name, im.width, im.height, caps,
                                         objects.get(im.id) if objects is not None else None))
    if not records:
        raise DataError(f"{path}: no image has a caption (annotations need 'image_id' and 'caption')")
    return records


def _read_instances(path: Path) -> dict[int, list] | None:
    """image id -> [(box xyxy px, category name, colour or None)] from a scenes instances.json, if there is one."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    names = {c["id"]: c.get("name", str(c["id"])) for c in data.get("categories", [])}
    out: dict[int, list] = {}
    for a in data.get("annotations", []):
        x, y, w, h = a["bbox"]
        out.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], names.get(a["category_id"]), a.get("colour")))
    return out


def load_caption_set(records: list[CaptionRecord], size: int) -> CaptionSet:
    """Decode and resize every image to size x size (boxes scaled with it)."""
    from cnnlab.data.images import load_image
    from cnnlab.data.single_object import resize_image

    images, objects = [], []
    for r in records:
        images.append(resize_image(load_image(r.path, channels=3), size))  # uint8 (3, S, S)
        sx, sy = size / r.width, size / r.height
        objects.append([([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], cat, col) for b, cat, col in (r.objects or [])])
    have_objects = any(r.objects is not None for r in records)
    return CaptionSet(torch.stack(images), [r.captions for r in records], [r.name for r in records],
                      objects if have_objects else None)
