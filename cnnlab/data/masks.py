"""Semantic-segmentation data: images and class masks from the three layouts users bring.

- **Pascal VOC**: ``JPEGImages/``, ``SegmentationClass/<id>.png`` (palette PNGs of class indices),
  ``ImageSets/Segmentation/{train,val,test}.txt``; classes from ``classes.txt``, else VOC's 20.
- **COCO instances**: ``train/``, ``val/`` (``test/``) each with ``annotations.json``; every object's
  polygon / RLE mask is rasterized into its class (later objects on top), crowd regions become 255.
- **images/ + masks/**: ``images/<name>.jpg|png`` and ``masks/<name>.png`` (class indices, palette or
  grey), either at the top of the folder or under ``train/``, ``val/``, ``test/``; classes from
  ``classes.txt`` (else ``class_1..K`` from the largest label found).

Everywhere: 0 = background, k = the k-th name of ``classes.txt`` (a ``background`` line is
skipped), 255 = ignore. A mask whose size differs from its image, or a label above the class
count that is not 255, stops with one line naming the file. Everything is resized to one square
size (images antialiased bilinear, masks nearest) and held in memory as uint8.
Joint augmentation goes through ``torchvision.transforms.v2``: the mask is a ``tv_tensors.Mask``,
so flips and crops move it with the image, with nearest interpolation, and colour jitter leaves it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import DataError

IGNORE = 255
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 128
DEFAULT_VAL_FRACTION = 0.1  # of train, held out (seeded) when a folder has no val split; --val-fraction 0: none
AUGMENTS = ("hflip", "scale", "colour")


@dataclass
class MaskRecord:
    """One image and where its class mask comes from: a PNG file, or a function (COCO rasterization)."""

    image: Path
    mask: Path | None = None
    make_mask: Callable[[], np.ndarray] | None = None  # -> uint8 (H, W)
    label_file: str = ""  # the file to name in errors about this mask

    def read_mask(self) -> np.ndarray:
        if self.make_mask is not None:
            return self.make_mask()
        from cnnlab.data.voc import read_palette_png

        return read_palette_png(self.mask)


@dataclass
class MaskSet:
    """Images uint8 (N, 3, S, S) and class masks uint8 (N, S, S) in memory; ``ds[i]`` = {images f32, masks i64}."""

    images: torch.Tensor
    masks: torch.Tensor
    paths: list[str] = field(default_factory=list)
    transform: Any = None  # item -> item (set by the task: augmentation, normalization)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"images": self.images[i].float() / 255, "masks": self.masks[i].long()}
        return self.transform(item) if self.transform is not None else item


# ---------------------------------------------------------------------------- finding the layout
def detect_layout(root: Path) -> str:
    """'voc', 'coco' or 'folders'; DataError naming what was looked for when none fits."""
    if (root / "SegmentationClass").is_dir():
        return "voc"
    from cnnlab.data.coco_layouts import find_coco_files

    if find_coco_files(root, "instances"):  # cnnlab's, Roboflow's, COCO's own or CVAT's layout, or one .json
        return "coco"
    if (root / "images").is_dir() or (root / "train" / "images").is_dir():
        return "folders"
    raise DataError(f"--data {root}: not a segmentation folder; expected a VOC folder (SegmentationClass/, JPEGImages/), "
                    "a COCO folder (train/annotations.json, val/...) or images/ + masks/")


def read_class_file(root: Path) -> list[str] | None:
    """root/classes.txt without a 'background' line, or None."""
    path = root / "classes.txt"
    if not path.is_file():
        return None
    return [c.strip() for c in path.read_text().splitlines() if c.strip() and c.strip().lower() != "background"]


def voc_records(root: Path) -> tuple[dict[str, list[MaskRecord]], list[str]]:
    from cnnlab.data.voc import VOC_CLASSES, read_voc

    found = [s for s in SPLITS if (root / "ImageSets" / "Segmentation" / f"{s}.txt").is_file()] or ["train"]
    records = {}
    for split in found:
        ds = read_voc(root, split, task="segmentation", classes=[])
        masks = [root / "SegmentationClass" / f"{n}.png" for n in ds.names]
        records[split] = [MaskRecord(im.path, m, label_file=str(m)) for im, m in zip(ds.images, masks)]
    return records, read_class_file(root) or list(VOC_CLASSES)


def coco_records(root: Path) -> tuple[dict[str, list[MaskRecord]], list[str]]:
    from cnnlab.data.coco import coco_target, read_coco
    from cnnlab.data.single_object import find_split_files

    files = find_split_files(str(root))
    records, classes = {}, None
    for split, path in files.items():
        ds = read_coco(path)
        if classes is not None and ds.classes != classes:
            raise DataError(f"{path}: its categories {ds.classes[:4]} differ from train's {classes[:4]}; every split must "
                            "list the same categories")
        classes = ds.classes

        def rasterize(ds=ds, im=None) -> np.ndarray:
            t = coco_target(ds, im, masks=True)
            sem = np.zeros((im.height, im.width), dtype=np.uint8)
            masks = t.get("masks")
            if masks is not None:
                for m, label, crowd in zip(masks.numpy().astype(bool), t["labels"].tolist(), t["iscrowd"].tolist()):
                    sem[m] = IGNORE if crowd else label + 1
            return sem

        records[split] = [MaskRecord(im.path, make_mask=lambda ds=ds, im=im: rasterize(ds, im), label_file=str(path))
                          for im in ds.images]
    return records, list(classes or [])


def folder_records(root: Path) -> tuple[dict[str, list[MaskRecord]], list[str] | None]:
    from cnnlab.data.images import is_image_file

    bases = {s: root / s for s in SPLITS if (root / s / "images").is_dir()} or {"train": root}
    records = {}
    for split, base in bases.items():
        images = sorted(p for p in (base / "images").iterdir() if p.is_file() and is_image_file(p.name))
        if not images:
            raise DataError(f"{base / 'images'}: no image files (.png, .jpg, ...)")
        masks_dir = base / "masks"
        if not masks_dir.is_dir():
            raise DataError(f"{masks_dir}: not found; put one mask PNG per image there (masks/<image name>.png)")
        recs = []
        for p in images:
            m = masks_dir / f"{p.stem}.png"
            if not m.is_file():
                raise DataError(f"{p}: has no mask {m}; every image needs masks/<its name>.png")
            recs.append(MaskRecord(p, m, label_file=str(m)))
        records[split] = recs
    return records, read_class_file(root)


# ---------------------------------------------------------------------------- decoding
def resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (H, W) -> (size, size), nearest (labels are never blended)."""
    if mask.shape[-2:] == (size, size):
        return mask
    return F.interpolate(mask[None, None].float(), size=(size, size), mode="nearest-exact")[0, 0].to(torch.uint8)


def load_mask_set(records: list[MaskRecord], size: int, num_classes: int | None, source: str, skip_bad: bool = False,
                  skipped: list | None = None) -> MaskSet:
    """Decode, check and resize every (image, mask) pair; ``num_classes`` None skips the label check."""
    from cnnlab.data.images import load_image
    from cnnlab.data.single_object import resize_image

    if not records:
        raise DataError(f"{source}: no images listed")
    images, masks, paths = [], [], []
    for r in records:
        try:
            img = load_image(r.image, channels=3)  # uint8 (3, H, W)
            m = r.read_mask()  # uint8 (H, W)
            check_mask(m, img.shape[-2:], num_classes, r)
        except DataError as e:
            if not skip_bad:
                raise
            if skipped is not None:
                skipped.append((str(r.image), str(e)))
            continue
        images.append(resize_image(img, size))
        masks.append(resize_mask(torch.from_numpy(np.ascontiguousarray(m)), size))
        paths.append(str(r.image))
    if not images:
        raise DataError(f"{source}: no readable images left after skipping bad files")
    return MaskSet(torch.stack(images), torch.stack(masks), paths)


def check_mask(mask: np.ndarray, image_hw, num_classes: int | None, r: MaskRecord) -> None:
    """One line naming the mask file when its size or its labels are wrong."""
    where = r.label_file or str(r.mask)
    if mask.shape != tuple(image_hw):
        raise DataError(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {r.image.name} is "
                        f"{image_hw[1]}x{image_hw[0]}; a mask must have its image's size")
    if num_classes is not None:
        labels = np.unique(mask)
        bad = labels[(labels >= num_classes) & (labels != IGNORE)]
        if len(bad):
            raise DataError(f"{where}: label {int(bad[0])} is above the class count ({num_classes} classes with "
                            f"background: 0..{num_classes - 1}) and is not 255 (ignore); fix the mask or add the class "
                            "to classes.txt")


def _common_size(records: list[MaskRecord]) -> int | None:
    from cnnlab.data.images import probe_image

    sizes = {probe_image(r.image).size for r in records[:16]}
    if len(sizes) == 1:
        h, w = sizes.pop()
        if h == w:
            return h
    return None


def load_segmentation_splits(cfg) -> "DataBundle":
    """A DataBundle of MaskSets from any of the three layouts; val carved from train (seeded) when there is none."""
    from cnnlab.data.normalize import normalization_from_images
    from cnnlab.tasks.base import DataBundle

    root = Path(cfg.data)
    if not root.is_dir() and not (root.is_file() and root.suffix.lower() == ".json"):
        raise DataError(f"--data {cfg.data}: no such folder; pass a VOC, COCO or images/ + masks/ folder "
                        "(make one with `cnnlab data scenes --kind segment --out DIR`)")
    layout = detect_layout(root)
    records, names = {"voc": voc_records, "coco": coco_records, "folders": folder_records}[layout](root)
    if names is None:  # images/ + masks/ without classes.txt: as many classes as the largest label says
        top = max(int(v) for r in records["train"][:256] for v in np.unique(r.read_mask()) if v != IGNORE)
        names = [f"class_{k}" for k in range(1, max(1, top) + 1)]
    classes = ["background", *names]
    from cnnlab.data.single_object import limit_and_carve

    limit_and_carve(records, cfg, DEFAULT_VAL_FRACTION if cfg.val_fraction is None else cfg.val_fraction)
    size = cfg.img_size or _common_size(records["train"]) or DEFAULT_SIZE
    skipped: list = []
    sets = {s: load_mask_set(r, size, len(classes), f"{root} ({s})", cfg.skip_bad, skipped) for s, r in records.items()}
    norm = normalization_from_images(sets["train"].images, "channel")
    meta = {"classes": classes, "num_classes": len(classes), "in_chans": 3, "img_size": [size, size],
            "normalization": norm.to_dict(), "data": cfg.data, "layout": layout}
    source = f"{layout.upper() if layout != 'folders' else 'images/ + masks/'} folder {cfg.data} " \
             f"({len(classes)} classes with background), {size}x{size}"
    return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, source, skipped=skipped)


# ---------------------------------------------------------------------------- joint transforms
def parse_augment(text: str) -> tuple[str, ...]:
    from cnnlab.errors import ConfigError

    parts = tuple(p for p in text.split("+") if p and p != "none")
    bad = [p for p in parts if p not in AUGMENTS]
    if bad:
        raise ConfigError(f"--augment {text!r}: {bad[0]!r} is unknown; join any of {', '.join(AUGMENTS)} with + (or none)")
    return parts


def joint_transform(augment: tuple[str, ...], size: int, scale: tuple[float, float] = (0.5, 1.0)):
    """torchvision.transforms.v2 on (image, tv_tensors.Mask): what moves the image moves the mask (nearest)."""
    from torchvision.transforms import v2

    steps = []
    if "scale" in augment:
        steps.append(v2.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True))
    if "hflip" in augment:
        steps.append(v2.RandomHorizontalFlip())
    if "colour" in augment:
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05))  # images only
    return v2.Compose(steps) if steps else None


def attach_transforms(bundle, augment: tuple[str, ...]) -> None:
    """Training items: joint augmentation then normalization; val/test: normalization only."""
    from torchvision import tv_tensors

    from cnnlab.data.normalize import Normalization

    norm = Normalization.from_dict(bundle.meta["normalization"])
    joint = joint_transform(augment, bundle.meta["img_size"][0])

    def train_tf(item):
        if joint is not None:
            img, mask = joint(tv_tensors.Image(item["images"]), tv_tensors.Mask(item["masks"]))
            item = {"images": img.as_subclass(torch.Tensor), "masks": mask.as_subclass(torch.Tensor)}
        item["images"] = norm(item["images"])
        return item

    def eval_tf(item):
        item["images"] = norm(item["images"])
        return item

    bundle.train.transform = train_tf
    for s in (bundle.val, bundle.test):
        if s is not None:
            s.transform = eval_tf
