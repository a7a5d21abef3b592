"""Detection data: a folder in any of the field's layouts -> in-memory train / val / test sets.

``find_detection_splits(root)`` recognizes, in this order:

- COCO in any layout of :mod:`cnnlab.data.coco_layouts` (cnnlab's ``root/<split>/annotations.json``,
  Roboflow's, COCO's own ``annotations/instances_<split>*.json``, CVAT's), or a single COCO JSON
  file given as ``--data file.json`` (train only; val is carved from it);
- Pascal VOC: ``root/Annotations/*.xml`` + ``ImageSets/Main/{train,val,test}.txt`` + ``JPEGImages/``
  (also inside ``root/VOCdevkit/VOC20xx/``); class names from ``classes.txt`` or the XML files;
- YOLO txt: ``root/data.yaml`` (ultralytics) or ``root/classes.txt`` with ``images/<split>/`` and
  ``labels/<split>/*.txt``.

Every image is decoded once, resized to ``size`` x ``size`` (aspect ratio not kept, so nothing is
cropped; boxes are scaled with it) and held as uint8. A box that leaves its image by more than a
pixel, or has no area, is refused with the file and entry named (``--skip-bad`` drops the image
instead). Items are DESIGN's detection items: ``images f32[3,S,S]`` in [0, 1] before normalization,
``targets dict(boxes f32[N,4] xyxy px, labels i64[N], image_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cnnlab.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class BoxRecord:
    """One image of a reader with its objects in the image's own pixels."""

    path: str
    boxes: torch.Tensor  # f32 (N, 4) xyxy
    labels: torch.Tensor  # i64 (N,)
    image_id: int | str  # COCO's id (some tools write strings), written back in results files
    width: int
    height: int
    where: str  # the annotation file (and image) to name in errors
    segmentations: list | None = None  # COCO, YOLO segment lines: each object's polygons / RLE (None: no mask)
    # regions the metrics ignore (neither missed nor a false positive when detected): VOC's "difficult"
    # objects and COCO's crowd regions; never trained on (as the VOC devkit's and COCO's baselines do)
    ignore_boxes: torch.Tensor | None = None  # f32 (M, 4) xyxy
    ignore_labels: torch.Tensor | None = None  # i64 (M,)
    ignore_segmentations: list | None = None  # COCO crowds' RLE (None: the box), for Mask R-CNN's mask AP


@dataclass
class DetectionSource:
    """What a folder holds: its format, class names, COCO category ids and the records of each split."""

    format: str
    classes: list[str]
    splits: dict[str, list[BoxRecord]]
    files: dict[str, str]  # split -> the file or folder it was read from
    category_ids: list[int] | None = None


# ---------------------------------------------------------------------------- finding the layout
def find_detection_splits(root: str) -> DetectionSource:
    """The splits of a COCO / VOC / YOLO folder (see the module docstring)."""
    from cnnlab.data.coco_layouts import find_coco_files

    base = Path(root)
    if not base.exists():
        raise DataError(f"--data {root}: no such folder; pass a COCO, VOC or YOLO folder "
                        "(make one with `cnnlab data scenes --kind detect --out DIR`)")
    found = find_coco_files(base, "instances")  # cnnlab's, Roboflow's, COCO's own, CVAT's layouts; one file
    if found:
        return _coco(found)
    if not base.is_dir():
        raise DataError(f"--data {root}: not a folder nor a COCO .json file; pass a COCO, VOC or YOLO folder")
    voc = _voc_root(base)
    if voc is not None:
        return _voc(voc)
    if any((base / n).is_file() for n in ("data.yaml", "dataset.yaml", "classes.txt")) or (base / "labels").is_dir():
        return _yolo(base)
    raise DataError(f"--data {root}: not a detection folder I know: expected train/annotations.json, "
                    "train/_annotations.coco.json or annotations/instances_*.json (COCO; or pass the .json file "
                    "itself), Annotations/ + JPEGImages/ (VOC), or data.yaml / classes.txt with images/ and "
                    "labels/ (YOLO)")


def _voc_root(base: Path) -> Path | None:
    if (base / "Annotations").is_dir():
        return base
    for cand in sorted(base.glob("VOCdevkit/VOC*")) + sorted(base.glob("VOC*")):
        if (cand / "Annotations").is_dir():
            return cand
    return None


def _coco(files: dict[str, Path]) -> DetectionSource:
    from cnnlab.data.coco import read_coco

    splits, classes, cat_ids = {}, None, None
    for s, path in files.items():
        ds = read_coco(path)
        if classes is None:
            classes, cat_ids = ds.classes, ds.category_ids
        elif ds.classes != classes:
            raise DataError(f"{path}: its categories {ds.classes[:4]} differ from train's {classes[:4]}; "
                            "every split must list the same categories")
        recs = []
        for im in ds.images:
            objs = [o for o in ds.objects[im.id] if not o.iscrowd]
            crowd = [o for o in ds.objects[im.id] if o.iscrowd]
            recs.append(BoxRecord(str(im.path), torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(-1, 4),
                                  torch.tensor([o.label for o in objs], dtype=torch.int64),
                                  im.id if isinstance(im.id, str) else int(im.id), im.width,  # "a1" ids are kept
                                  im.height, f"{path}: image {im.file_name!r}",
                                  [o.segmentation for o in objs],
                                  torch.tensor([o.box for o in crowd], dtype=torch.float32).reshape(-1, 4),
                                  torch.tensor([o.label for o in crowd], dtype=torch.int64),
                                  [o.segmentation for o in crowd]))
        splits[s] = recs
    return DetectionSource("coco", list(classes), splits, {s: str(p) for s, p in files.items()}, list(cat_ids))


def _voc(root: Path) -> DetectionSource:
    from cnnlab.data.voc import read_voc, voc_classes

    main = root / "ImageSets" / "Main"
    names = [s for s in SPLITS if (main / f"{s}.txt").is_file()]
    if "train" not in names:  # VOC2007/2012 also list trainval; with no lists at all, every XML is train
        names.insert(0, "trainval" if (main / "trainval.txt").is_file() else "train")
    classes = voc_classes(root)
    splits, files = {}, {}
    for s in names:
        ds = read_voc(root, s, "detection", classes)
        recs = []
        for i, im in enumerate(ds.images):
            t = ds.target(i)
            hard = t["difficult"].bool()  # the devkit ignores "difficult" objects in AP, and its baselines skip them
            recs.append(BoxRecord(str(im.path), t["boxes"][~hard], t["labels"][~hard], int(im.id), im.width, im.height,
                                  f"{root / 'Annotations' / (ds.names[i] + '.xml')}",
                                  ignore_boxes=t["boxes"][hard], ignore_labels=t["labels"][hard]))
        key = "train" if s == "trainval" else s
        splits[key], files[key] = recs, str(main / f"{s}.txt")
    return DetectionSource("voc", list(classes), splits, files)


def _yolo(root: Path) -> DetectionSource:
    from cnnlab.data.yolo import read_yolo, read_yolo_labels

    splits, files, classes = {}, {}, None
    for s in SPLITS:
        try:
            ds = read_yolo(root, s, classes)
        except DataError as e:
            # a missing val/test is fine (val is carved from train); one that data.yaml names wrongly is not
            if s == "train" or str(e).split(": ", 1)[0].endswith(".yaml"):
                raise
            continue
        classes = ds.classes
        recs = []
        for i, im in enumerate(ds.images):
            labels, boxes, polys = read_yolo_labels(ds.label_paths[i], im.width, im.height, len(ds.classes))
            # segment lines (Ultralytics -seg datasets) become COCO polygons, so Mask R-CNN can train on them
            recs.append(BoxRecord(str(im.path), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  torch.tensor(labels, dtype=torch.int64), int(im.id), im.width, im.height,
                                  str(ds.label_paths[i]), [[p] if p is not None else None for p in polys]))
        if recs:
            splits[s], files[s] = recs, str(root)
    if "train" not in splits:
        raise DataError(f"{root}: no training images found (YOLO layout: images/train/ and labels/train/)")
    return DetectionSource("yolo", list(classes or []), splits, files)


# ---------------------------------------------------------------------------- checking and loading
def check_record(r: BoxRecord, num_classes: int) -> None:
    """A box that leaves its image by more than a pixel, has no area, or names an unknown class: DataError."""
    for k, (b, c) in enumerate(zip(r.boxes.tolist(), r.labels.tolist())):
        x1, y1, x2, y2 = b
        if not (x2 > x1 and y2 > y1):
            raise DataError(f"{r.where}: object {k} has a degenerate box {_fmt(b)} (no width or height); "
                            "fix or delete it, or pass --skip-bad to drop the image")
        if x1 < -1 or y1 < -1 or x2 > r.width + 1 or y2 > r.height + 1:
            raise DataError(f"{r.where}: object {k} box {_fmt(b)} leaves the {r.width}x{r.height} image; "
                            "fix it, or pass --skip-bad to drop the image")
        if not 0 <= c < num_classes:
            raise DataError(f"{r.where}: object {k} has class {c}, outside the {num_classes} classes")


def _fmt(b) -> str:
    return "[" + ", ".join(f"{v:g}" for v in b) + "]"


@dataclass
class DetectionSet:
    """Images uint8 (N, 3, S, S), per image boxes f32 (n, 4) xyxy in S-pixel units and labels i64 (n,)."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    image_ids: list[int]
    paths: list[str]
    sizes: list[tuple[int, int]]  # original (height, width), for results in the original pixels
    transform: Callable | None = None  # item -> item (augmentation, normalization; set by the task)
    classes: list[str] = field(default_factory=list)
    masks: list[torch.Tensor] | None = None  # per image u8 (n, S, S) instance masks (with_masks=True)
    proposals: list[torch.Tensor] | None = None  # per image f32 (P, 4) region proposals (Fast R-CNN, R-CNN)
    ignore: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per image (boxes (M, 4), labels (M,)) metrics ignore
    ignore_masks: list[torch.Tensor] | None = None  # per image u8 (M, S, S) masks of those regions (with_masks=True)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"images": self.images[i].float() / 255,
                "targets": {"boxes": self.boxes[i].clone(), "labels": self.labels[i].clone(), "image_id": self.image_ids[i]}}
        if self.masks is not None:
            item["targets"]["masks"] = self.masks[i].clone()
        if self.proposals is not None:
            item["targets"]["proposals"] = self.proposals[i].clone()
        if self.ignore is not None:  # evaluation only: the training transform keeps boxes, labels, masks, proposals
            item["targets"]["ignore_boxes"], item["targets"]["ignore_labels"] = (t.clone() for t in self.ignore[i])
            if self.ignore_masks is not None:
                item["targets"]["ignore_masks"] = self.ignore_masks[i].clone()
        return self.transform(item) if self.transform is not None else item

    def all_boxes(self) -> torch.Tensor:
        """Every box of the set, (M, 4) xyxy."""
        return torch.cat([b.reshape(-1, 4) for b in self.boxes]) if self.boxes else torch.zeros(0, 4)


def load_detection_set(records: list[BoxRecord], size: int, num_classes: int, skip_bad: bool = False,
                       skipped: list | None = None, source: str = "", with_masks: bool = False) -> DetectionSet:
    """Decode, check and resize every record (see the module docstring). ``with_masks``: also decode each
    object's COCO polygons / RLE (or YOLO segment polygons) into u8 (n, S, S) instance masks (nearest
    resize); DataError when the folder has none."""
    from cnnlab.data.images import load_annotated_image
    from cnnlab.data.single_object import resize_image

    if not records:
        raise DataError(f"{source}: no images listed")
    if with_masks and not any(s is not None for r in records for s in (r.segmentations or [])):
        # box-only data (VOC, YOLO box lines, COCO without 'segmentation'); a box-only object among masked
        # ones is fine: its box is filled
        raise DataError(f"{records[0].where}: no instance masks in {source or 'the data'} (COCO 'segmentation' or "
                        "YOLO segment lines); Mask R-CNN needs them (make such data with `cnnlab data scenes "
                        "--kind segment`), or use --model faster_rcnn")
    images, boxes, labels, ids, paths, sizes, masks, ignore, ignore_masks = [], [], [], [], [], [], [], [], []
    for r in records:
        try:
            check_record(r, num_classes)
            img = load_annotated_image(r.path, r.width, r.height, r.where)  # uint8 (3, H, W), oriented as annotated
            if with_masks:
                masks.append(_instance_masks(r, size))
                ignore_masks.append(_region_masks(r.ignore_segmentations, _or_none(r.ignore_boxes), r, size))
        except DataError as e:
            if not skip_bad:
                raise
            if skipped is not None:
                skipped.append((r.path, str(e)))
            continue
        h, w = (r.height, r.width) if r.width and r.height else img.shape[-2:]  # the boxes' pixel frame
        scale = torch.tensor([size / w, size / h, size / w, size / h])
        b, ig = (bb.float().reshape(-1, 4) * scale for bb in (r.boxes, _or_none(r.ignore_boxes)))
        for bb in (b, ig):
            bb[:, 0::2] = bb[:, 0::2].clamp(0, size)
            bb[:, 1::2] = bb[:, 1::2].clamp(0, size)
        images.append(resize_image(img, size))
        boxes.append(b)
        ignore.append((ig, r.ignore_labels.long().reshape(-1) if r.ignore_labels is not None else torch.zeros(0, dtype=torch.long)))
        labels.append(r.labels.long().reshape(-1))
        ids.append(r.image_id)
        paths.append(r.path)
        sizes.append((int(h), int(w)))
    if not images:
        raise DataError(f"{source}: no usable images left after skipping bad files")
    return DetectionSet(torch.stack(images), boxes, labels, ids, paths, sizes, masks=masks if with_masks else None,
                        ignore=ignore if any(len(g) for g, _ in ignore) else None,
                        ignore_masks=ignore_masks if with_masks and any(len(g) for g, _ in ignore) else None)


def _or_none(boxes: torch.Tensor | None) -> torch.Tensor:
    return boxes if boxes is not None else torch.zeros(0, 4)


def _instance_masks(r: BoxRecord, size: int) -> torch.Tensor:
    """A record's objects as u8 (n, size, size) masks (nearest resize); an object without one gets its box."""
    return _region_masks(r.segmentations, r.boxes, r, size)


def _region_masks(segmentations: list | None, boxes: torch.Tensor, r: BoxRecord, size: int) -> torch.Tensor:
    """Polygons / RLEs (None: the box, filled) in r's width x height pixels -> u8 (n, size, size), nearest resize."""
    import numpy as np
    import torch.nn.functional as F

    from cnnlab.data.coco import segmentation_to_mask

    segs = segmentations if segmentations is not None else [None] * len(boxes)
    out = np.zeros((len(segs), r.height, r.width), dtype=np.uint8)  # (n, H, W)
    for k, seg in enumerate(segs):
        if seg is None:  # an object without a mask: its box, filled
            x0, y0, x1, y1 = (int(round(v)) for v in boxes[k].tolist())
            out[k, max(0, y0):y1, max(0, x0):x1] = 1
            continue
        try:
            out[k] = segmentation_to_mask(seg, r.height, r.width)
        except (ValueError, TypeError) as e:
            raise DataError(f"{r.where}: object {k} segmentation: {e}") from None
    m = torch.from_numpy(out)
    if m.shape[-2:] != (size, size) and len(m):
        m = F.interpolate(m[None].float(), size=(size, size), mode="nearest-exact")[0].to(torch.uint8)
    return m.reshape(-1, size, size)


def collate_detection(items: list[dict]) -> dict[str, Any]:
    """DESIGN's detection batch: ``images`` list of f32 (3, S, S), ``targets`` list of dicts."""
    return {"images": [it["images"] for it in items], "targets": [it["targets"] for it in items]}


# ---------------------------------------------------------------------------- augmentation
def detection_transform(augment: str, normalize: Callable, size: int) -> Callable:
    """Training item -> item: joint image + box augmentation with torchvision.transforms.v2, then ``normalize``.

    ``augment`` is "none" or a '+'-joined subset of: ``hflip`` (mirror), ``scale`` (zoom 0.75-1.25x and
    shift up to 10 %, boxes moved with the image, clipped at its border, dropped when under 2 px), and
    ``color`` (brightness, contrast, saturation jitter).
    """
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    steps: list = []
    parts = set(augment.split("+")) - {"none", ""}
    if "hflip" in parts:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if "scale" in parts:
        steps.append(v2.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.75, 1.25), fill=0.5))
    if "color" in parts:
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3))
    steps.append(v2.SanitizeBoundingBoxes(min_size=2.0))
    pipeline = v2.Compose(steps)

    def tf(item: dict[str, Any]) -> dict[str, Any]:
        t = item["targets"]
        sample = {"image": tv_tensors.Image(item["images"]), "labels": t["labels"],
                  "boxes": tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=(size, size))}
        if "masks" in t:  # instance masks move (and are dropped) with their boxes
            sample["masks"] = tv_tensors.Mask(t["masks"])
        out = pipeline(sample)
        image = out["image"].as_subclass(torch.Tensor)
        targets = {"boxes": out["boxes"].as_subclass(torch.Tensor).float(), "labels": out["labels"],
                   "image_id": t["image_id"]}
        if "masks" in t:
            targets["masks"] = out["masks"].as_subclass(torch.Tensor)
        if "proposals" in t:
            targets["proposals"] = t["proposals"]
        return {"images": normalize(image), "targets": targets}

    return tf


def eval_transform(normalize: Callable) -> Callable:
    def tf(item: dict[str, Any]) -> dict[str, Any]:
        item["images"] = normalize(item["images"])
        return item

    return tf
