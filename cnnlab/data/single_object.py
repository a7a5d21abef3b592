"""One annotated object per image, held in memory: what localization and landmark regression train on.

``load_single_objects(records, size)`` decodes each image, resizes it to ``size`` x ``size``
(no crop, so no object is cut; boxes and points are scaled with it) and keeps, per image, the
largest annotated object (an image with none is a negative: p_c = 0). Records come from the
format readers (COCO JSON), so a user's own folder goes through the same code as the scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.errors import DataError


@dataclass
class ObjectRecord:
    """One image and its objects as a reader found them (pixels of the original image)."""

    path: str
    boxes: torch.Tensor  # f32 (N, 4) xyxy
    labels: torch.Tensor  # i64 (N,)
    keypoints: torch.Tensor | None = None  # f32 (N, K, 3) x, y, visibility (COCO: 0 absent, 1 hidden, 2 visible)
    annotated: tuple[int, int, str] | None = None  # (width, height, file) the annotation gives, checked on decoding


@dataclass
class SingleObjectSet:
    """Images uint8 (N, 3, S, S) with one object each: box f32 (N, 4) xyxy in S-pixel units, label, presence, points."""

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    present: torch.Tensor  # f32 (N,): 1 where the image holds an object
    keypoints: torch.Tensor | None = None  # f32 (N, K, 3) in S-pixel units
    paths: list[str] = field(default_factory=list)
    transform: Any = None  # item -> item, e.g. normalization and flips (set by the task)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"images": self.images[i].float() / 255, "boxes": self.boxes[i].clone(), "labels": int(self.labels[i]),
                "present": float(self.present[i])}
        if self.keypoints is not None:
            item["keypoints"] = self.keypoints[i].clone()
        return self.transform(item) if self.transform is not None else item


def resize_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (C, H, W) -> (C, size, size), antialiased bilinear (aspect ratio not kept: no object is cropped)."""
    if img.shape[-2:] == (size, size):
        return img
    x = F.interpolate(img[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


def load_single_objects(records: list[ObjectRecord], size: int, source: str, skip_bad: bool = False,
                        skipped: list | None = None) -> SingleObjectSet:
    """Decode, resize and keep the largest object of each record (see the module docstring)."""
    from cnnlab.data.images import load_annotated_image

    if not records:
        raise DataError(f"{source}: no images listed")
    images, boxes, labels, present, kps, paths = [], [], [], [], [], []
    k = next((r.keypoints.shape[1] for r in records if r.keypoints is not None and len(r.keypoints)), None)
    for r in records:
        try:
            width, height, where = r.annotated or (None, None, r.path)  # boxes / keypoints are in these pixels
            img = load_annotated_image(r.path, width, height, where)  # uint8 (3, H, W), oriented as annotated
        except DataError as e:
            if not skip_bad:
                raise
            if skipped is not None:
                skipped.append((r.path, str(e)))
            continue
        h, w = (height, width) if width and height else img.shape[-2:]  # the boxes' / keypoints' pixel frame
        scale = torch.tensor([size / w, size / h, size / w, size / h])
        images.append(resize_image(img, size))
        paths.append(r.path)
        if len(r.boxes):
            areas = (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])
            j = int(areas.argmax())
            boxes.append(r.boxes[j].float() * scale)
            labels.append(int(r.labels[j]))
            present.append(1.0)
            if k is not None:
                pts = r.keypoints[j].float().clone() if r.keypoints is not None else torch.zeros(k, 3)
                pts[:, 0] *= size / w
                pts[:, 1] *= size / h
                kps.append(pts)
        else:
            boxes.append(torch.zeros(4))
            labels.append(0)
            present.append(0.0)
            if k is not None:
                kps.append(torch.zeros(k, 3))
    if not images:
        raise DataError(f"{source}: no readable images left after skipping bad files")
    return SingleObjectSet(torch.stack(images), torch.stack(boxes), torch.tensor(labels), torch.tensor(present),
                           torch.stack(kps) if k is not None else None, paths)


def hflip_item(item: dict[str, Any], flip_pairs: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Mirror an item left-right: image, box, and points (swapping left/right point pairs)."""
    x = item["images"]
    w = x.shape[-1]
    item["images"] = x.flip(-1)
    b = item["boxes"]
    item["boxes"] = torch.stack([w - b[2], b[1], w - b[0], b[3]])
    if "keypoints" in item:
        p = item["keypoints"].clone()
        p[:, 0] = w - p[:, 0]
        for a, c in flip_pairs or []:
            p[[a, c]] = p[[c, a]]
        item["keypoints"] = p
    return item


def shift_item(item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
    """Move the image by a random whole-pixel offset that keeps the object's box inside the frame.

    The image is rolled (what leaves one side comes back on the other), so only background wraps
    around and the object is never cut or duplicated; box and points move with it."""
    x, b = item["images"], item["boxes"]
    h, w = x.shape[-2:]
    if float(item.get("present", 1.0)) > 0:
        lo_x, hi_x = -int(torch.floor(b[0]).clamp(0, w)), w - int(torch.ceil(b[2]).clamp(0, w))
        lo_y, hi_y = -int(torch.floor(b[1]).clamp(0, h)), h - int(torch.ceil(b[3]).clamp(0, h))
    else:
        lo_x, hi_x, lo_y, hi_y = -w // 2, w // 2, -h // 2, h // 2
    dx = int(torch.randint(lo_x, max(lo_x, hi_x) + 1, (), generator=generator))
    dy = int(torch.randint(lo_y, max(lo_y, hi_y) + 1, (), generator=generator))
    item["images"] = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    item["boxes"] = b + torch.tensor([dx, dy, dx, dy], dtype=b.dtype)
    if "keypoints" in item:
        p = item["keypoints"].clone()
        p[:, 0] += dx
        p[:, 1] += dy
        item["keypoints"] = p
    return item


# ---------------------------------------------------------------------------- COCO folders -> splits
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 128  # when the images of a folder differ in size


def find_split_files(root: str, kind: str = "instances") -> dict[str, "Path"]:
    """The COCO file of each split present (train required), in any layout of :mod:`cnnlab.data.coco_layouts`
    (``root/<split>/annotations.json``, Roboflow's, COCO's own ``annotations/<kind>_<split>*.json``, CVAT's),
    or ``root`` itself when it is one JSON file."""
    from pathlib import Path

    from cnnlab.data.coco_layouts import find_coco_files

    base = Path(root)
    if not base.exists():
        raise DataError(f"--data {root}: no such folder; pass a COCO folder with train/ and val/ "
                        "(make one with `cnnlab data scenes --kind localize --out DIR`)")
    found = find_coco_files(base, kind)
    if "train" not in found:
        raise DataError(f"--data {root}: found no train/annotations.json (COCO layout: train/, val/, test/, each with "
                        f"annotations.json whose file_name entries are relative to it; also read: "
                        f"annotations/{kind}_train*.json, train/_annotations.coco.json, or the .json file itself)")
    return found


def load_coco_splits(cfg, keypoints: bool):
    """A DataBundle of SingleObjectSets from a COCO folder; val carved from train (seeded) when there is none."""
    from cnnlab.data.coco import read_object_records
    from cnnlab.data.normalize import normalization_from_images
    from cnnlab.tasks.base import DataBundle

    files = find_split_files(cfg.data, "person_keypoints" if keypoints else "instances")
    parsed = {s: read_object_records(p, keypoints=keypoints) for s, p in files.items()}
    classes = parsed["train"].classes
    for s, p in parsed.items():
        if p.classes != classes:
            raise DataError(f"{files[s]}: its categories {p.classes[:4]} differ from train's {classes[:4]}; "
                            "every split must list the same categories")
    records = {s: p.records for s, p in parsed.items()}
    limit_and_carve(records, cfg, cfg.val_fraction or 0)
    size = cfg.img_size or _common_size(records["train"]) or DEFAULT_SIZE
    skipped: list = []
    sets = {s: load_single_objects(r, size, str(files.get(s, files["train"])), cfg.skip_bad, skipped) for s, r in records.items()}
    norm = normalization_from_images(sets["train"].images, "channel")
    meta = {"classes": classes, "num_classes": len(classes), "in_chans": 3, "img_size": [size, size],
            "normalization": norm.to_dict(), "data": cfg.data}
    if keypoints:
        meta.update(keypoint_names=parsed["train"].keypoint_names, flip_pairs=parsed["train"].flip_pairs)
    source = f"COCO folder {cfg.data} ({', '.join(f'{s}/' for s in files)}), {size}x{size}"
    return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, source, skipped=skipped)


def limit_and_carve(records: dict[str, list], cfg, val_fraction: float, min_train: int = 1) -> None:
    """In place: --limit on train; without a val split, ``val_fraction`` of train becomes val (seeded by
    --seed) when train has at least ``min_train`` records; --limit-test on val and test."""
    if cfg.limit:
        records["train"] = records["train"][:cfg.limit]
    if "val" not in records and val_fraction > 0 and len(records["train"]) >= min_train:
        order = torch.randperm(len(records["train"]), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        n_val = max(1, round(len(order) * val_fraction))
        records["val"] = [records["train"][i] for i in order[:n_val]]
        records["train"] = [records["train"][i] for i in order[n_val:]]
    if cfg.limit_test:
        for s in ("val", "test"):
            if s in records:
                records[s] = records[s][:cfg.limit_test]


def _common_size(records: list[ObjectRecord]) -> int | None:
    """The images' size when the first few are all the same square, else None."""
    from cnnlab.data.images import probe_image

    sizes = {probe_image(r.path).size for r in records[:16]}
    if len(sizes) == 1:
        h, w = sizes.pop()
        if h == w:
            return h
    return None


def attach_transforms(bundle, flip: bool, flip_pairs: list | None = None, shift: bool = False) -> None:
    """Normalize every split with the training statistics; mirror training items at random when ``flip``,
    move them at random (box kept inside) when ``shift``."""
    from cnnlab.data.normalize import Normalization

    norm = Normalization.from_dict(bundle.meta["normalization"])

    def train_tf(item):
        if flip and torch.rand(()) < 0.5:
            item = hflip_item(item, flip_pairs)
        if shift:
            item = shift_item(item)
        item["images"] = norm(item["images"])
        return item

    def eval_tf(item):
        item["images"] = norm(item["images"])
        return item

    bundle.train.transform = train_tf
    for s in (bundle.val, bundle.test):
        if s is not None:
            s.transform = eval_tf


def prepare_image(meta: dict[str, Any], path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image file as (normalized model input (3, S, S), the original uint8 image)."""
    from cnnlab.data.images import load_image
    from cnnlab.data.normalize import Normalization

    img = load_image(path, channels=3)
    x = resize_image(img, meta["img_size"][0]).float() / 255
    return Normalization.from_dict(meta["normalization"])(x), img
