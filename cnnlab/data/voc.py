"""Pascal VOC in and out: Annotations/*.xml, palette-PNG masks, ImageSets lists, JPEGImages.

Layout::

    root/JPEGImages/<id>.jpg          root/SegmentationClass/<id>.png   (palette: 0 background, k class, 255 ignore)
    root/Annotations/<id>.xml         root/SegmentationObject/<id>.png  (palette: k = k-th <object> of the XML)
    root/ImageSets/Main/{train,val,test}.txt, root/ImageSets/Segmentation/{train,val,test}.txt

Boxes: VOC's ``xmin..ymax`` are 1-based, inclusive pixel indices; cnnlab's xyxy are 0-based
pixel edges (pixel j covers [j, j+1)), so ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``
(width = xmax - xmin + 1) and the writer does the inverse. Labels are 0..K-1 over ``classes``
(no background); semantic masks hold 0 = background, k + 1 = classes[k], 255 = ignore.
Classes: ``classes.txt`` in root when present, VOC's 20 when every name is one of them, else
the sorted names found in Annotations/.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from cnnlab.data.coco import ImageRecord
from cnnlab.errors import DataError

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
IGNORE = 255


def voc_colormap(n: int = 256) -> np.ndarray:
    """VOC's palette (n, 3) uint8: the bits of index i spread over the high bits of r, g, b."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def read_palette_png(path: str | os.PathLike) -> np.ndarray:
    """A VOC mask PNG -> uint8 (H, W) of indices; RGB files are mapped back through the VOC colour map."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found")
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L"):
                return np.array(im, dtype=np.uint8)
            rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable PNG mask ({e})") from None
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (H, W)
    cmap = voc_colormap().astype(np.int64)
    lut = {int(k): i for i, k in enumerate((cmap[:, 0] << 16) | (cmap[:, 1] << 8) | cmap[:, 2])}
    values, inverse = np.unique(key, return_inverse=True)
    bad = [v for v in values.tolist() if v not in lut]
    if bad:
        v = bad[0]
        raise DataError(f"{path}: colour {(v >> 16, (v >> 8) & 255, v & 255)} is not in the VOC colour map; "
                        "save masks as palette PNGs (mode P) of class indices")
    return np.array([lut[v] for v in values.tolist()], dtype=np.uint8)[inverse].reshape(key.shape)


def write_palette_png(path: str | os.PathLike, mask: np.ndarray | torch.Tensor) -> Path:
    """uint8 (H, W) class/instance indices -> a palette PNG with VOC's colour map."""
    m = np.asarray(mask)
    if m.min(initial=0) < 0 or m.max(initial=0) > 255:
        raise DataError(f"{path}: mask values must be 0..255, got {m.min()}..{m.max()}")
    im = Image.frombytes("P", (m.shape[1], m.shape[0]), np.ascontiguousarray(m, dtype=np.uint8).tobytes())
    im.putpalette(voc_colormap().reshape(-1).tolist())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@dataclass
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # xyxy, 0-based pixel edges
    difficult: int = 0
    truncated: int = 0


def read_voc_xml(path: str | os.PathLike) -> tuple[dict, list[VocObject]]:
    """One Annotations/*.xml -> ({filename, width, height, depth}, objects in file order)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML ({e})") from None
    size = root.find("size")

    def num(node, tag: str, where: str) -> float:
        el = node.find(tag) if node is not None else None
        try:
            return float(el.text)  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{path}: <{where}><{tag}> is missing or not a number") from None

    # Some tools (LabelImg on unreadable images, hand-written files) omit <size> or write 0 x 0:
    # width = height = 0 then, and read_voc takes the size from the image file itself (a <size> that is
    # there but not a number is still an error).
    has_size = size is not None and (size.find("width") is not None or size.find("height") is not None)
    info = {"filename": (root.findtext("filename") or "").strip(),
            "width": int(num(size, "width", "size")) if has_size else 0,
            "height": int(num(size, "height", "size")) if has_size else 0,
            "depth": int(float(size.findtext("depth") or 3)) if size is not None else 3}
    objects = []
    for k, o in enumerate(root.findall("object")):
        name = (o.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: <object> {k} has no <name>")
        bb = o.find("bndbox")
        if bb is None:
            raise DataError(f"{path}: <object> {k} ({name}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (num(bb, t, "bndbox") for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise DataError(f"{path}: <object> {k} ({name}) <bndbox> has xmax < xmin or ymax < ymin")
        flag = lambda t: _flag(o.findtext(t))  # noqa: E731
        objects.append(VocObject(name, (xmin - 1, ymin - 1, xmax, ymax), flag("difficult"), flag("truncated")))
    return info, objects


def _flag(text: str | None) -> int:
    """<difficult> / <truncated> as 0 or 1; empty or a word ("Unspecified", as some exporters write) is 0."""
    try:
        return int(float(text or 0))
    except ValueError:
        return 1 if text.strip().lower() in ("true", "yes") else 0


def write_voc_xml(path: str | os.PathLike, filename: str, width: int, height: int, names: Sequence[str],
                  boxes, difficult=None, truncated=None, depth: int = 3, segmented: bool = False) -> Path:
    """One Annotations/*.xml from 0-based xyxy boxes (written as VOC's 1-based inclusive integers)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, v in (("width", width), ("height", height), ("depth", depth)):
        ET.SubElement(size, tag).text = str(int(v))
    ET.SubElement(root, "segmented").text = str(int(segmented))
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4).tolist()
    for k, (name, b) in enumerate(zip(names, boxes)):
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = name
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = str(int(truncated[k]) if truncated is not None else 0)
        ET.SubElement(o, "difficult").text = str(int(difficult[k]) if difficult is not None else 0)
        bb = ET.SubElement(o, "bndbox")
        vals = (round(b[0]) + 1, round(b[1]) + 1, round(b[2]), round(b[3]))
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), vals):
            ET.SubElement(bb, tag).text = str(int(v))
    ET.indent(root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8")
    return path


def read_image_set(path: str | os.PathLike) -> list[str]:
    """An ImageSets list: the first token of every non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image set list not found")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


@dataclass
class VocDataset:
    """One split of a VOC folder; ``ds[i]`` = (uint8 image (3, H, W), target dict)."""

    root: Path
    split: str
    images: list[ImageRecord]
    classes: list[str]
    names: list[str]  # VOC ids, e.g. 2007_000027
    segmentation: bool = False
    objects: list[list[VocObject]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def target(self, i: int) -> dict[str, Any]:
        """boxes, labels, difficult, truncated, image_id; plus masks u8 (N, H, W) from SegmentationObject and
        semantic i64 (H, W) from SegmentationClass when those PNGs exist."""
        objs, im = self.objects[i], self.images[i]
        index = {c: k for k, c in enumerate(self.classes)}
        for o in objs:
            if o.name not in index:
                raise DataError(f"{self.root / 'Annotations' / (self.names[i] + '.xml')}: class {o.name!r} is not "
                                f"in the class list ({len(self.classes)} classes); add it to classes.txt")
        t: dict[str, Any] = {
            "boxes": torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(len(objs), 4),
            "labels": torch.tensor([index[o.name] for o in objs], dtype=torch.int64),
            "difficult": torch.tensor([o.difficult for o in objs], dtype=torch.uint8),
            "truncated": torch.tensor([o.truncated for o in objs], dtype=torch.uint8),
            "image_id": im.id,
        }
        obj_png = self.root / "SegmentationObject" / f"{self.names[i]}.png"
        if obj_png.is_file() and objs:
            inst = read_palette_png(obj_png)  # (H, W): k = k-th object, 255 boundary
            t["masks"] = torch.from_numpy((inst[None] == np.arange(1, len(objs) + 1)[:, None, None]).astype(np.uint8))
        cls_png = self.root / "SegmentationClass" / f"{self.names[i]}.png"
        if cls_png.is_file():
            t["semantic"] = torch.from_numpy(read_palette_png(cls_png).astype(np.int64))
        return t

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        from cnnlab.data.images import load_image

        return load_image(self.images[i].path, channels=3), self.target(i)


def read_voc(root: str | os.PathLike, split: str = "train", task: str = "detection",
             classes: Sequence[str] | None = None) -> VocDataset:
    """Read one split of a VOC folder; ``task`` picks ImageSets/Main (detection) or ImageSets/Segmentation."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such VOC folder (expected JPEGImages/, Annotations/, ImageSets/)")
    if task not in ("detection", "segmentation"):
        raise DataError(f"task {task!r}: use 'detection' or 'segmentation'")
    listing = root / "ImageSets" / ("Main" if task == "detection" else "Segmentation") / f"{split}.txt"
    if listing.is_file():
        names = read_image_set(listing)
    else:
        folder = root / ("Annotations" if task == "detection" else "SegmentationClass")
        if not folder.is_dir():
            raise DataError(f"{listing}: not found, and no {folder.name}/ to list images from")
        names = sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in (".xml", ".png"))
    classes = list(classes) if classes is not None else voc_classes(root)
    images, objects, index = [], [], {}
    first_missing, found_any = None, False
    for i, name in enumerate(names):
        xml = root / "Annotations" / f"{name}.xml"
        if xml.is_file():
            info, objs = read_voc_xml(xml)
        elif task == "segmentation":
            info, objs = {"filename": "", "width": 0, "height": 0}, []
        else:
            raise DataError(f"{listing}: lists {name!r} but {xml} does not exist")
        w, h = info["width"], info["height"]
        try:
            path = _find_image(root, name, info["filename"], listing, index)
            found_any = True
        except DataError as e:
            if not (w > 0 and h > 0):
                raise
            # An XML whose image was not copied along: kept, so decoding names the missing file and
            # --skip-bad skips it; when no image is found at all, this error is raised below instead.
            first_missing = first_missing or e
            path = root / "JPEGImages" / (info["filename"] or f"{name}.jpg")
        if not (w > 0 and h > 0):
            from cnnlab.data.images import probe_image

            h, w = probe_image(path).size
        images.append(ImageRecord(i, path.name, path, w, h))
        objects.append(objs)
    if first_missing is not None and not found_any:
        raise first_missing
    from cnnlab.data.yolo import _image_ids

    for im, iid in zip(images, _image_ids(names)):  # VOC2007's 000005 -> 5; distinct ids when names mix
        im.id = iid
    return VocDataset(root, split, images, classes, names, task == "segmentation", objects)


def voc_classes(root: Path) -> list[str]:
    """root/classes.txt, else VOC's 20 classes when every name found is one of them, else the sorted names."""
    listed = root / "classes.txt"
    if listed.is_file():
        return [c.strip() for c in listed.read_text().splitlines() if c.strip() and c.strip() != "background"]
    names: set[str] = set()
    if (root / "Annotations").is_dir():
        for p in sorted((root / "Annotations").glob("*.xml")):
            names.update(o.name for o in read_voc_xml(p)[1])
    return list(VOC_CLASSES) if names <= set(VOC_CLASSES) else sorted(names)


def _find_image(root: Path, name: str, filename: str, listing: Path, index: dict | None = None) -> Path:
    """JPEGImages/<filename> or <name>.jpg/.jpeg/.png; then the same names in any letter case (cameras and
    Windows tools write 2008_000001.JPG while the XML says .jpg). ``index``: lower-case name -> path, filled once."""
    folder = root / "JPEGImages"
    candidates = ([folder / filename] if filename else []) + [folder / f"{name}{e}" for e in (".jpg", ".jpeg", ".png")]
    for c in candidates:
        if c.is_file():
            return c
    if index is not None and folder.is_dir():
        if not index:
            index.update((p.name.lower(), p) for p in folder.iterdir() if p.is_file())
        for c in candidates:
            if c.name.lower() in index:
                return index[c.name.lower()]
    raise DataError(f"{listing}: image for {name!r} not found (looked for {', '.join(c.name for c in candidates)} "
                    f"in {folder})")


class VocWriter:
    """Write images, XML boxes and palette masks into a VOC folder, one image at a time; ``close()`` writes lists."""

    def __init__(self, root: str | os.PathLike, classes: Sequence[str], jpeg_quality: int = 95):
        self.root, self.classes, self.quality = Path(root), list(classes), jpeg_quality
        self.sets: dict[tuple[str, str], list[str]] = {}
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets/Segmentation"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def add(self, split: str, name: str, image: torch.Tensor | np.ndarray, target: dict[str, Any],
            semantic: torch.Tensor | np.ndarray | None = None) -> None:
        """image uint8 (3, H, W); target with boxes, labels, masks? (instance PNG), semantic (H, W)? (class PNG)."""
        arr = np.asarray(image)
        arr = arr.transpose(1, 2, 0) if arr.ndim == 3 and arr.shape[0] in (1, 3) else arr
        h, w = arr.shape[:2]
        Image.fromarray(arr.squeeze()).save(self.root / "JPEGImages" / f"{name}.jpg", quality=self.quality)
        labels = torch.as_tensor(target["labels"]).tolist()
        segmented = semantic is not None or target.get("masks") is not None
        write_voc_xml(self.root / "Annotations" / f"{name}.xml", f"{name}.jpg", w, h,
                      [self.classes[k] for k in labels], target["boxes"], target.get("difficult"),
                      target.get("truncated"), segmented=segmented)
        self.sets.setdefault(("Main", split), []).append(name)
        if target.get("masks") is not None and len(labels):
            masks = np.asarray(target["masks"]).astype(bool)  # (N, H, W)
            inst = np.zeros((h, w), dtype=np.uint8)
            for k in range(len(masks)):
                inst[masks[k]] = k + 1
            if semantic is not None:
                inst[np.asarray(semantic) == IGNORE] = IGNORE
            write_palette_png(self.root / "SegmentationObject" / f"{name}.png", inst)
        if semantic is not None:
            write_palette_png(self.root / "SegmentationClass" / f"{name}.png", np.asarray(semantic))
            self.sets.setdefault(("Segmentation", split), []).append(name)

    def close(self) -> Path:
        for (kind, split), names in self.sets.items():
            (self.root / "ImageSets" / kind / f"{split}.txt").write_text("".join(n + "\n" for n in names))
        (self.root / "classes.txt").write_text("".join(c + "\n" for c in self.classes))
        return self.root
