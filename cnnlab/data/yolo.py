"""YOLO txt labels in and out: one ``class cx cy w h`` line per object, fractions of the image.

Layouts found (``split`` = train / val / test)::

    root/images/<split>/a.jpg  root/labels/<split>/a.txt      (Ultralytics)
    root/<split>/images/a.jpg  root/<split>/labels/a.txt
    root/images/a.jpg          root/labels/a.txt              (flat: the train split)
    root/a.jpg                 root/a.txt                     (LabelImg: the train split, classes.txt beside)

or the folders named by ``data.yaml`` (``path``, ``train``, ``val``, ``test``; Roboflow's ``../train/images``
and a stale ``path`` are read too, see ``_yaml_folder``). A label file sits
where its image is with the last ``images`` folder replaced by ``labels`` and a .txt suffix; an
image without one has no objects. Class names: ``data.yaml`` ``names`` (list or {index: name}),
else ``classes.txt`` (one per line), else "0".."K-1". A line with more than 5 numbers is a
segment polygon ``class x1 y1 x2 y2 ...``: its box is the polygon's extent and it gets a mask.
Boxes are converted to xyxy pixels: x1 = (cx - w/2) * W, ... (pixel-edge coordinates).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cnnlab.data.coco import ImageRecord, polygons_to_mask
from cnnlab.errors import DataError

SPLIT_KEYS = ("train", "val", "test")


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """The subset of YAML a data.yaml uses: ``key: scalar``, flow lists/maps, and block lists/maps one level deep."""
    try:
        import yaml  # PyYAML when it is installed
    except ImportError:
        yaml = None
    if yaml is not None:
        data = yaml.safe_load(text)
        return data if isinstance(data, dict) else {}
    out: dict[str, Any] = {}
    key = None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line[0] in " \t-" and key is not None:  # a block item under the last key
            item = line.strip()
            if item.startswith("- "):
                out[key] = (out[key] if isinstance(out[key], list) else []) + [_scalar(item[2:])]
            elif ":" in item:
                k, v = item.split(":", 1)
                out[key] = (out[key] if isinstance(out[key], dict) else {}) | {_scalar(k): _scalar(v)}
            continue
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        key, v = k.strip(), v.strip()
        out[key] = _scalar(v) if v else None
    return out


def _scalar(v: str):
    v = v.strip()
    if v.startswith(("[", "{")):
        inner = v[1:-1]
        parts = [p.strip() for p in inner.split(",") if p.strip()]
        if v[0] == "[":
            return [_scalar(p) for p in parts]
        return {_scalar(p.split(":", 1)[0]): _scalar(p.split(":", 1)[1]) for p in parts}
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1].replace("''", "'") if v[0] == "'" else v[1:-1]
    try:
        return ast.literal_eval(v) if v[:1].isdigit() or v[:1] == "-" else v
    except (ValueError, SyntaxError):
        return v


@dataclass
class YoloDataset:
    """One split of a YOLO folder; ``ds[i]`` = (uint8 image (3, H, W), target dict)."""

    root: Path
    split: str
    images: list[ImageRecord]
    label_paths: list[Path]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def target(self, i: int) -> dict[str, Any]:
        """boxes f32 (N, 4) xyxy pixels, labels i64 (N,), image_id; masks u8 (N, H, W) when a line is a polygon."""
        im = self.images[i]
        labels, boxes, polys = read_yolo_labels(self.label_paths[i], im.width, im.height, len(self.classes))
        t: dict[str, Any] = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                             "labels": torch.tensor(labels, dtype=torch.int64), "image_id": im.id}
        if any(p is not None for p in polys):
            masks = np.zeros((len(labels), im.height, im.width), dtype=np.uint8)  # (N, H, W)
            for k, (p, b) in enumerate(zip(polys, boxes)):
                if p is not None:
                    masks[k] = polygons_to_mask([p], im.height, im.width)
                else:
                    masks[k, round(b[1]):round(b[3]), round(b[0]):round(b[2])] = 1
            t["masks"] = torch.from_numpy(masks)
        return t

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        from cnnlab.data.images import load_image

        return load_image(self.images[i].path, channels=3), self.target(i)


def read_yolo_labels(path: Path, width: int, height: int, num_classes: int | None = None):
    """(labels, xyxy pixel boxes, polygons in pixels or None) of one label file; a missing file is no objects."""
    labels, boxes, polys = [], [], []
    if not path.is_file():
        return labels, boxes, polys
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            c, vals = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{n}: expected 'class cx cy w h' (an integer and 4 fractions), got {line.strip()!r}") from None
        if len(vals) != 4 and (len(vals) < 6 or len(vals) % 2):
            raise DataError(f"{path}:{n}: expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', "
                            f"got {len(parts)} fields")
        if c < 0 or (num_classes is not None and c >= num_classes):
            raise DataError(f"{path}:{n}: class {c} is outside 0..{(num_classes or 1) - 1}; check names in data.yaml")
        if min(vals) < -1e-3 or max(vals) > 1 + 1e-3 or (len(vals) == 4 and min(vals[2:]) < 0):
            raise DataError(f"{path}:{n}: values must be fractions of the image in 0..1 (YOLO txt is normalized), "
                            f"got {line.strip()!r}")
        if len(vals) == 4:
            cx, cy, w, h = vals
            boxes.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
            polys.append(None)
        else:
            p = np.asarray(vals, dtype=np.float64).reshape(-1, 2) * (width, height)
            boxes.append([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
            polys.append(p.reshape(-1).tolist())
        labels.append(c)
    return labels, boxes, polys


def yolo_classes(root: Path) -> list[str] | None:
    """Class names from root/data.yaml (or dataset.yaml) ``names``, else root/classes.txt; None when neither."""
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            names = parse_simple_yaml((root / name).read_text()).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
            nc = parse_simple_yaml((root / name).read_text()).get("nc")
            if isinstance(nc, int) and nc > 0:  # `nc: 80` without names: the classes are "0".."79"
                return [str(k) for k in range(nc)]
    for p in (root / "classes.txt", root / "labels" / "classes.txt"):
        if p.is_file():
            return [c.strip() for c in p.read_text().splitlines() if c.strip()]
    return None


def _image_folder(root: Path, split: str) -> Path:
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            cfg = parse_simple_yaml((root / name).read_text())
            if cfg.get("kpt_shape") is not None:  # pose lines 'class cx cy w h x1 y1 v1 ...' would read as polygons
                raise DataError(f"{root / name}: has kpt_shape, an Ultralytics pose dataset; cnnlab reads YOLO box and "
                                "segment labels (for keypoints use COCO person_keypoints with `cnnlab train landmarks`)")
            entry = cfg.get(split)
            if isinstance(entry, list) and len(entry) == 1:
                entry = entry[0]
            if isinstance(entry, list):
                raise DataError(f"{root / name}: '{split}' lists {len(entry)} folders; cnnlab reads one folder per split "
                                "(merge them, or list one)")
            if isinstance(entry, str):
                return _yaml_folder(root, root / name, cfg, split, entry)
    for c in (root / "images" / split, root / split / "images") + ((root / "valid" / "images",) if split == "val" else ()):
        if c.is_dir():
            return c
    if split == "train" and (root / "images").is_dir():
        return root / "images"
    from cnnlab.data.images import is_image_file

    if split == "train" and any(is_image_file(p.name) for p in root.iterdir() if p.is_file()):
        return root  # LabelImg's YOLO mode: a.jpg, a.txt and classes.txt side by side in one folder
    raise DataError(f"{root}: no images for split {split!r} (looked for images/{split}/, {split}/images/"
                    f"{', images/, ./' if split == 'train' else ''} and data.yaml)")


def _yaml_folder(root: Path, yaml_file: Path, cfg: dict, split: str, entry: str) -> Path:
    """The folder a data.yaml names for ``split``. Ultralytics reads ``train:`` relative to ``path:``; but a
    copied dataset often keeps a ``path:`` that no longer exists (``path: coco8`` or another machine's
    absolute path), and Roboflow writes ``train: ../train/images`` next to train/: so the folder is
    looked for under ``path``, then under the yaml's own folder, then there without the leading ``../``."""
    if entry.lower().endswith(".txt"):
        raise DataError(f"{yaml_file}: '{split}: {entry}' is a list of image paths; cnnlab reads image folders: "
                        f"set {split}: to the folder of the images (e.g. images/{split})")
    base = Path(cfg["path"]) if isinstance(cfg.get("path"), str) else root
    base = base if base.is_absolute() else root / base
    candidates = [base / entry, root / entry]
    if entry.startswith("../"):
        candidates.append(root / entry[3:])
    for c in candidates:
        if c.is_dir():
            return c
    raise DataError(f"{yaml_file}: '{split}: {entry}' is not a folder (looked in "
                    f"{', '.join(str(c) for c in dict.fromkeys(candidates))}); fix {split}: or path:")


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last 'images' folder of the path becomes 'labels', the suffix .txt."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(root: str | os.PathLike, split: str = "train", classes: Sequence[str] | None = None) -> YoloDataset:
    """Read one split of a YOLO folder (see the module docstring for the layouts)."""
    from cnnlab.data.images import is_image_file, probe_image

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such YOLO folder (expected images/ and labels/)")
    folder = _image_folder(root, split)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder of split {split!r} not found")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p.name) and not p.name.startswith("."))
    records, label_paths, max_class = [], [], -1
    ids = _image_ids([p.stem for p in files])
    for i, p in enumerate(files):
        h, w = probe_image(p).size
        records.append(ImageRecord(ids[i], str(p.relative_to(folder)), p, w, h))
        label_paths.append(label_path_for(p))
    names = list(classes) if classes is not None else yolo_classes(root)
    if names is None:  # no names anywhere: number the classes found
        for lp in label_paths:
            if lp.is_file():
                for line in lp.read_text().splitlines():
                    if line.split() and line.split()[0].isdigit():
                        max_class = max(max_class, int(line.split()[0]))
        names = [str(k) for k in range(max_class + 1)]
    return YoloDataset(root, split, records, label_paths, names)


def _image_ids(stems: list[str]) -> list[int]:
    """Image ids for results files: the file names' numbers when every name is a distinct number (COCO-style
    000000139.jpg), else 0..N-1; mixing the two ("5.jpg" and the 6th file "cat.jpg") gave two images one id."""
    nums = [int(s) for s in stems if s.isdigit()]
    return nums if len(nums) == len(stems) and len(set(nums)) == len(nums) else list(range(len(stems)))


def yolo_lines(boxes, labels, width: int, height: int) -> list[str]:
    """xyxy pixel boxes (N, 4) and labels (N,) -> 'class cx cy w h' lines (6 decimals)."""
    out = []
    for (x1, y1, x2, y2), c in zip(torch.as_tensor(boxes).reshape(-1, 4).tolist(), torch.as_tensor(labels).tolist()):
        cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
        out.append(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return out


class YoloWriter:
    """Write images/<split>/<name><ext> and labels/<split>/<name>.txt; ``close()`` writes data.yaml and classes.txt."""

    def __init__(self, root: str | os.PathLike, classes: Sequence[str], ext: str = ".png"):
        self.root, self.classes, self.ext = Path(root), list(classes), ext
        self.splits: set[str] = set()

    def add(self, split: str, name: str, image: torch.Tensor | np.ndarray, target: dict[str, Any]) -> None:
        from PIL import Image

        arr = np.asarray(image)
        arr = arr.transpose(1, 2, 0) if arr.ndim == 3 and arr.shape[0] in (1, 3) else arr
        h, w = arr.shape[:2]
        for sub in ("images", "labels"):
            (self.root / sub / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.squeeze()).save(self.root / "images" / split / f"{name}{self.ext}")
        lines = yolo_lines(target["boxes"], target["labels"], w, h)
        (self.root / "labels" / split / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
        self.splits.add(split)

    def close(self) -> Path:
        lines = ["path: .", *[f"{s}: images/{s}" for s in SPLIT_KEYS if s in self.splits], f"nc: {len(self.classes)}",
                 "names:", *[f"  {k}: {_quote(c)}" for k, c in enumerate(self.classes)]]
        (self.root / "data.yaml").write_text("\n".join(lines) + "\n")
        (self.root / "classes.txt").write_text("".join(c + "\n" for c in self.classes))
        return self.root


def _quote(name: str) -> str:
    return "'" + name.replace("'", "''") + "'" if any(ch in name for ch in ":#'\"[]{},") or name != name.strip() else name
