"""COCO JSON in and out: instances (boxes, polygon/RLE masks, crowd), keypoints, captions, results.

Conventions (the same in every cnnlab reader):
* Boxes are xyxy float32 pixels, pixel-edge coordinates: pixel (row i, col j) covers
  [j, j+1) x [i, i+1), so COCO's [x, y, w, h] becomes [x, y, x + w, y + h].
* Labels are contiguous 0..K-1 in sorted category-id order; ``classes[k]`` is the name and
  ``category_ids[k]`` the file's id (written back unchanged).
* Masks are uint8 (N, H, W). RLE is COCO's column-major run-length code (counts list or its
  compressed string); polygons are filled by the pixel-centre rule: a pixel is inside when
  (j + 0.5, i + 0.5) is (pycocotools' rasteriser may differ by one pixel along edges).
* Keypoints are float32 (N, K, 3): x, y, visibility (0 unlabelled, 1 hidden, 2 visible), in
  the order of the category's ``keypoints`` names; ``skeleton`` is kept 0-based.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from cnnlab.errors import DataError


@dataclass
class ImageRecord:
    """One image of an annotation file (shared by the COCO, VOC and YOLO readers)."""

    id: int
    file_name: str
    path: Path
    width: int
    height: int


@dataclass
class CocoObject:
    """One annotation, decoded: ``box`` xyxy pixels, ``label`` contiguous, ``segmentation`` as in the file."""

    id: int
    label: int
    box: tuple[float, float, float, float]
    area: float
    iscrowd: int = 0
    segmentation: Any = None  # polygons [[x, y, ...], ...] or RLE {"size": [h, w], "counts": list | str}
    keypoints: np.ndarray | None = None  # (K, 3) float32


@dataclass
class CocoDataset:
    """A parsed COCO file: images, their objects and captions, categories; ``ds[i]`` = (image, target)."""

    path: Path
    images: list[ImageRecord]
    objects: dict[int, list[CocoObject]]  # image id -> annotations in file order
    captions: dict[int, list[str]]  # image id -> captions
    classes: list[str]
    category_ids: list[int]  # label -> category id
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)  # 0-based pairs of keypoint indices
    categories: list[dict] = field(default_factory=list)  # as in the file, in label order

    def __len__(self) -> int:
        return len(self.images)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        return flip_pairs_from_names(self.keypoint_names)

    def target(self, i: int, masks: bool = True) -> dict[str, Any]:
        """DESIGN's detection target of image ``i``: boxes, labels, area, iscrowd, image_id, masks?, keypoints?."""
        return coco_target(self, self.images[i], masks=masks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        from cnnlab.data.images import load_image

        return load_image(self.images[i].path, channels=3), self.target(i)  # uint8 (3, H, W), dict


def flip_pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs that swap under a left-right mirror: left_eye/right_eye, top_left/top_right, ..."""
    index = {n: k for k, n in enumerate(names)}
    swap = {"left": "right", "right": "left"}
    pairs = []
    for k, n in enumerate(names):
        for sep in ("_", "-", " "):
            parts = n.split(sep)
            if any(p.lower() in swap for p in parts):
                j = index.get(sep.join(swap.get(p.lower(), p) for p in parts))
                if j is not None and k < j:
                    pairs.append((k, j))
                break
    return pairs


# ---------------------------------------------------------------------------- masks: RLE and polygons
def rle_encode(mask: np.ndarray) -> list[int]:
    """uint8/bool (H, W) -> COCO counts: run lengths in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def rle_decode(counts: Sequence[int], h: int, w: int) -> np.ndarray:
    """COCO counts -> uint8 (H, W); DataError (ValueError inside) when they do not add up to H * W."""
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any() or counts.sum() != h * w:
        raise ValueError(f"RLE counts add up to {int(counts.sum())}, expected height*width = {h * w}")
    flat = np.repeat((np.arange(len(counts)) % 2).astype(np.uint8), counts)
    return flat.reshape(w, h).T.copy()  # column-major -> (H, W)


def rle_to_string(counts: Sequence[int]) -> str:
    """COCO's compressed RLE string: each count (minus the one two back, from the 4th on) as 5-bit chars + 48."""
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            out.append(chr((ch | 0x20 if more else ch) + 48))
    return "".join(out)


def rle_from_string(s: str) -> list[int]:
    """Inverse of :func:`rle_to_string`."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("compressed RLE string ends inside a number")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def polygons_to_mask(polygons: Iterable[Sequence[float]], h: int, w: int) -> np.ndarray:
    """Union of polygons [x0, y0, x1, y1, ...] -> uint8 (H, W), pixel-centre rule, even-odd fill."""
    mask = np.zeros((h, w), dtype=bool)
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(p) < 3:
            continue
        r0, r1 = max(0, int(np.floor(p[:, 1].min()))), min(h, int(np.ceil(p[:, 1].max())) + 1)
        c0, c1 = max(0, int(np.floor(p[:, 0].min()))), min(w, int(np.ceil(p[:, 0].max())) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        x0, y0 = p[:, 0], p[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        xs = np.arange(c0, c1) + 0.5  # (W',) pixel centres
        step = max(1, 4_000_000 // max(1, len(p) * len(xs)))
        for a in range(r0, r1, step):
            yc = (np.arange(a, min(r1, a + step)) + 0.5)[:, None]  # (R, 1)
            crosses = (y0 <= yc) != (y1 <= yc)  # (R, E): the edge spans this row centre (half-open)
            t = (yc - y0) / np.where(y1 != y0, y1 - y0, 1.0)
            xc = np.where(crosses, x0 + t * (x1 - x0), np.inf)  # (R, E) crossing x, inf where none
            left = (xc[:, :, None] < xs[None, None, :]).sum(1)  # (R, W') crossings left of each centre
            mask[a:a + len(yc), c0:c1] |= (left % 2 == 1)
    return mask.astype(np.uint8)


def segmentation_to_mask(seg: Any, h: int, w: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, RLE counts list, compressed RLE string) -> uint8 (H, W)."""
    if isinstance(seg, list):
        return polygons_to_mask(seg, h, w)
    if isinstance(seg, dict) and "counts" in seg:
        rh, rw = (int(v) for v in seg.get("size", (h, w)))
        counts = seg["counts"]
        counts = rle_from_string(counts) if isinstance(counts, str) else counts
        m = rle_decode(counts, rh, rw)
        if (rh, rw) != (h, w):
            raise ValueError(f"RLE size {[rh, rw]} differs from the image's {[h, w]}")
        return m
    raise ValueError("segmentation must be a list of polygons or an RLE dict with 'counts' and 'size'")


def mask_to_rle(mask: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """uint8 (H, W) -> {"size": [H, W], "counts": compressed string} (what pycocotools writes)."""
    m = np.asarray(mask)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": rle_to_string(rle_encode(m))}


# ---------------------------------------------------------------------------- reading
def read_coco(path: str | os.PathLike, image_root: str | os.PathLike | None = None,
              check_files: bool = True) -> CocoDataset:
    """Parse a COCO instances / keypoints / captions file (or a folder holding annotations.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.json"
    data = _load_json(path)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: no '{key}' list (a COCO file needs 'images' and 'annotations', "
                            "and 'categories' for objects)")
    cats = data.get("categories") or []
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c for c in cats):
        raise DataError(f"{path}: 'categories' must be a list of objects with 'id' and 'name'")
    bad = next((c["id"] for c in cats if not isinstance(c["id"], int) or isinstance(c["id"], bool)), None)
    if bad is not None:  # labels follow the sorted ids, so they must be numbers (COCO's are integers)
        raise DataError(f"{path}: category id {bad!r} is not an integer; COCO category ids are integers (1, 2, ...)")
    cats = sorted(cats, key=lambda c: int(c["id"]))
    label_of = {int(c["id"]): k for k, c in enumerate(cats)}
    kp_names: list[str] = []
    skeleton: list[tuple[int, int]] = []
    k_of: dict[int, int] = {}
    for c in cats:
        if c.get("keypoints"):
            names = [str(n) for n in c["keypoints"]]
            if kp_names and names != kp_names:
                raise DataError(f"{path}: categories[id={c['id']}].keypoints differ from another category's; "
                                "cnnlab reads one keypoint layout per file")
            kp_names = names
            skeleton = [(int(a) - 1, int(b) - 1) for a, b in c.get("skeleton") or []]  # COCO's are 1-based
            k_of[int(c["id"])] = len(names)
    from cnnlab.data.coco_layouts import image_records

    images = image_records(data["images"], path, image_root, check_files)
    by_id = {im.id: im for im in images}
    objects: dict[int, list[CocoObject]] = {im.id: [] for im in images}
    captions: dict[int, list[str]] = {im.id: [] for im in images}
    for j, a in enumerate(data["annotations"]):
        where = f"{path}: annotations[{j}]"
        if not isinstance(a, dict) or "image_id" not in a:
            raise DataError(f"{where}: needs an 'image_id'")
        iid = a["image_id"]
        if iid not in by_id:
            raise DataError(f"{where} (id {a.get('id')}) has image_id {iid!r} that is not in 'images'")
        if "caption" in a and "bbox" not in a and "category_id" not in a:
            captions[iid].append(str(a["caption"]))
            continue
        objects[iid].append(_parse_object(a, j, where, label_of, k_of, len(kp_names), by_id[iid]))
    return CocoDataset(path, images, objects, captions, [str(c.get("name", c["id"])) for c in cats],
                       [int(c["id"]) for c in cats], kp_names, skeleton, cats)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (expected COCO JSON)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with 'images' and 'annotations', got a {type(data).__name__}")
    return data


def _parse_object(a: dict, j: int, where: str, label_of: dict, k_of: dict, k_any: int, im: ImageRecord) -> CocoObject:
    cid = a.get("category_id")
    if cid not in label_of:
        raise DataError(f"{where}.category_id {cid!r} is not in 'categories'")
    seg = a.get("segmentation") or None
    if isinstance(seg, list) and not any(isinstance(p, list) and len(p) >= 6 for p in seg):
        seg = None  # CVAT / Label Studio write [] or [[]] for a box-only object: no mask (its box is filled)
    bbox = a.get("bbox")
    if bbox is None and seg is not None:
        try:
            m = segmentation_to_mask(seg, im.height, im.width)
        except (ValueError, TypeError) as e:
            raise DataError(f"{where}.segmentation: {e}") from None
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        bbox = [0, 0, 0, 0] if not len(rows) else [cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]]
        bbox = [int(v) for v in bbox]  # numpy ints -> Python ints (the check below wants numbers)
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        raise DataError(f"{where}.bbox must be 4 numbers [x, y, width, height], got {bbox!r}")
    x, y, bw, bh = (float(v) for v in bbox)
    if bw < 0 or bh < 0:
        raise DataError(f"{where}.bbox {list(bbox)} has a negative width or height")
    kps = None
    if a.get("keypoints") is not None:
        vals = a["keypoints"]
        n_vals = len(vals) if isinstance(vals, list) else -1
        k = k_of.get(cid, k_any or max(1, n_vals // 3))
        if n_vals != 3 * k:
            raise DataError(f"{where}.keypoints has {n_vals if n_vals >= 0 else repr(vals)} values; "
                            f"its category names {k} keypoints, so 3*K = {3 * k} values [x, y, v]*K are expected")
        kps = np.asarray(vals, dtype=np.float32).reshape(k, 3)
    area = float(a.get("area", bw * bh))
    return CocoObject(int(a.get("id", j + 1)), label_of[cid], (x, y, x + bw, y + bh), area, int(a.get("iscrowd", 0)),
                      seg, kps)


def coco_target(ds: CocoDataset, im: ImageRecord, masks: bool = True) -> dict[str, Any]:
    """The target dict of one image (see CocoDataset.target); objects without a mask get their box filled."""
    objs = ds.objects[im.id]
    n = len(objs)
    t: dict[str, Any] = {
        "boxes": torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(n, 4),
        "labels": torch.tensor([o.label for o in objs], dtype=torch.int64),
        "area": torch.tensor([o.area for o in objs], dtype=torch.float32),
        "iscrowd": torch.tensor([o.iscrowd for o in objs], dtype=torch.uint8),
        "image_id": im.id,
    }
    if masks and any(o.segmentation is not None for o in objs):
        out = np.zeros((n, im.height, im.width), dtype=np.uint8)  # (N, H, W)
        for k, o in enumerate(objs):
            if o.segmentation is None:
                x0, y0, x1, y1 = (int(round(v)) for v in o.box)
                out[k, max(0, y0):y1, max(0, x0):x1] = 1
                continue
            try:
                out[k] = segmentation_to_mask(o.segmentation, im.height, im.width)
            except (ValueError, TypeError) as e:
                raise DataError(f"{ds.path}: annotation id {o.id} (image {im.file_name}) segmentation: {e}") from None
        t["masks"] = torch.from_numpy(out)
    if ds.keypoint_names:
        k = len(ds.keypoint_names)
        kp = np.zeros((n, k, 3), dtype=np.float32)  # (N, K, 3)
        for i, o in enumerate(objs):
            if o.keypoints is not None:
                kp[i] = o.keypoints
        t["keypoints"] = torch.from_numpy(kp)
    return t


@dataclass
class ObjectRecords:
    """What single-object tasks read: class names, one ObjectRecord per image, keypoint names and mirror pairs."""

    classes: list[str]
    records: list
    keypoint_names: list[str]
    flip_pairs: list[tuple[int, int]]


def read_object_records(path: str | os.PathLike, keypoints: bool = False) -> ObjectRecords:
    """A COCO file as ObjectRecords (crowd annotations dropped), for localization and landmarks."""
    from cnnlab.data.single_object import ObjectRecord

    ds = read_coco(path)
    records = []
    for im in ds.images:
        objs = [o for o in ds.objects[im.id] if not o.iscrowd]
        boxes = torch.tensor([o.box for o in objs], dtype=torch.float32).reshape(len(objs), 4)
        labels = torch.tensor([o.label for o in objs], dtype=torch.int64)
        kp = None
        if keypoints and ds.keypoint_names:
            k = len(ds.keypoint_names)
            kp = torch.zeros(len(objs), k, 3)
            for i, o in enumerate(objs):
                if o.keypoints is not None:
                    kp[i] = torch.from_numpy(o.keypoints)
        annotated = (im.width, im.height, f"{path}: image {im.file_name!r}")
        records.append(ObjectRecord(str(im.path), boxes, labels, kp, annotated))
    return ObjectRecords(ds.classes, records, ds.keypoint_names if keypoints else [],
                         ds.flip_pairs if keypoints else [])


# ---------------------------------------------------------------------------- writing
def _num(v) -> float:
    """A float32 value as the shortest decimal that reads back to the same float32."""
    return float(str(np.float32(v)))


def _image_entry(im: ImageRecord | dict) -> dict:
    if isinstance(im, ImageRecord):
        return {"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height}
    missing = [k for k in ("id", "file_name", "width", "height") if k not in im]
    if missing:
        raise DataError(f"image entry {im!r} lacks {', '.join(missing)}")
    return {k: v for k, v in im.items() if k != "path"}


def coco_categories(classes: Sequence[str], category_ids: Sequence[int] | None = None, keypoint_names=None,
                    skeleton=None, supercategory: str = "object") -> list[dict]:
    """COCO ``categories``: ids 1..K unless given; with keypoint names (and a 0-based skeleton) for keypoints."""
    ids = list(category_ids) if category_ids is not None else list(range(1, len(classes) + 1))
    cats = []
    for cid, name in zip(ids, classes):
        c = {"id": int(cid), "name": name, "supercategory": supercategory}
        if keypoint_names:
            c["keypoints"] = list(keypoint_names)
            c["skeleton"] = [[a + 1, b + 1] for a, b in skeleton or []]
        cats.append(c)
    return cats


def target_annotations(target: dict, image_id, first_id: int = 1, category_ids: Sequence[int] | None = None,
                       keypoints: bool = False) -> list[dict]:
    """One image's target (boxes, labels, masks?, keypoints?, iscrowd?) -> COCO annotations with ids from ``first_id``."""
    boxes = torch.as_tensor(target["boxes"]).reshape(-1, 4).tolist()
    labels = torch.as_tensor(target["labels"]).tolist()
    masks, kps = target.get("masks"), target.get("keypoints")
    crowd = torch.as_tensor(target["iscrowd"]).tolist() if target.get("iscrowd") is not None else [0] * len(boxes)
    anns = []
    for k, (b, lab) in enumerate(zip(boxes, labels)):
        w, h = max(0.0, b[2] - b[0]), max(0.0, b[3] - b[1])
        cid = int(category_ids[int(lab)]) if category_ids is not None else int(lab) + 1
        a = {"id": first_id + k, "image_id": image_id, "category_id": cid,
             "bbox": [_num(b[0]), _num(b[1]), _num(w), _num(h)], "area": _num(w * h), "iscrowd": int(crowd[k])}
        if masks is not None:
            m = np.asarray(masks[k], dtype=np.uint8)
            a["segmentation"], a["area"] = mask_to_rle(m), int(m.sum())
        if keypoints and kps is not None:
            p = torch.as_tensor(kps[k]).reshape(-1, 3).tolist()
            a["keypoints"] = [_num(v) if c < 2 else int(v) for row in p for c, v in enumerate(row)]
            a["num_keypoints"] = int(sum(row[2] > 0 for row in p))
        anns.append(a)
    return anns


def write_coco(path: str | os.PathLike, images: Sequence[ImageRecord | dict], annotations: list[dict],
               categories: list[dict] | None = None, info: dict | None = None) -> Path:
    """Any COCO file from its parts (atomically)."""
    data = {"info": info or {"description": "written by cnnlab"}, "images": [_image_entry(im) for im in images],
            "annotations": annotations}
    if categories is not None:
        data["categories"] = categories
    return _dump(path, data)


def write_coco_instances(path: str | os.PathLike, images: Sequence[ImageRecord | dict], targets: Sequence[dict],
                         classes: Sequence[str], *, category_ids: Sequence[int] | None = None,
                         keypoint_names: Sequence[str] | None = None, skeleton=None, info: dict | None = None) -> Path:
    """COCO instances (keypoints too when ``keypoint_names``): targets[i] holds boxes, labels, masks?, keypoints?.

    Masks are written as compressed RLE; category ids are 1..K unless ``category_ids`` is given.
    """
    entries = [_image_entry(im) for im in images]
    if len(entries) != len(targets):
        raise DataError(f"{path}: {len(entries)} images but {len(targets)} targets to write")
    anns: list[dict] = []
    for im, t in zip(entries, targets):
        anns += target_annotations(t, im["id"], len(anns) + 1, category_ids, keypoints=bool(keypoint_names))
    return write_coco(path, entries, anns, coco_categories(classes, category_ids, keypoint_names, skeleton), info)


def write_coco_keypoints(path: str | os.PathLike, images, targets, classes: Sequence[str],
                         keypoint_names: Sequence[str], skeleton=None, **kw) -> Path:
    """COCO person-keypoints layout: as write_coco_instances, every category names the keypoints."""
    return write_coco_instances(path, images, targets, classes, keypoint_names=keypoint_names, skeleton=skeleton, **kw)


def write_coco_captions(path: str | os.PathLike, images: Sequence[ImageRecord | dict],
                        captions: Sequence[Sequence[str]], info: dict | None = None) -> Path:
    """COCO captions layout: one annotation {id, image_id, caption} per caption."""
    entries = [_image_entry(im) for im in images]
    anns = [{"image_id": im["id"], "caption": c} for im, cs in zip(entries, captions) for c in cs]
    return write_coco(path, entries, [{"id": k + 1, **a} for k, a in enumerate(anns)], None, info)


def coco_results(predictions: Iterable[dict], category_ids: Sequence[int] | None = None) -> list[dict]:
    """Predictions dict(image_id, boxes xyxy, labels, scores, masks?) -> COCO results [{image_id, category_id, bbox, score}]."""
    out = []
    for p in predictions:
        boxes = torch.as_tensor(p["boxes"]).reshape(-1, 4).tolist()
        labels, scores = torch.as_tensor(p["labels"]).tolist(), torch.as_tensor(p["scores"]).tolist()
        for k, (b, lab, s) in enumerate(zip(boxes, labels, scores)):
            r = {"image_id": p["image_id"], "category_id": int(category_ids[lab]) if category_ids is not None else int(lab) + 1,
                 "bbox": [_num(b[0]), _num(b[1]), _num(b[2] - b[0]), _num(b[3] - b[1])], "score": _num(s)}
            if p.get("masks") is not None:
                r["segmentation"] = mask_to_rle(np.asarray(p["masks"][k]) > 0.5)
            out.append(r)
    return out


def write_coco_results(path: str | os.PathLike, predictions: Iterable[dict],
                       category_ids: Sequence[int] | None = None) -> Path:
    """Write :func:`coco_results` as the JSON list pycocotools' loadRes reads."""
    return _dump(path, coco_results(predictions, category_ids))


def _dump(path: str | os.PathLike, data) -> Path:
    """Write JSON atomically (a temporary file renamed over the target)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)
    return path
