"""Scenes: annotated images generated offline, written in the formats users bring (COCO, VOC, YOLO).

No real boxes, masks, keypoints or captions can be had without the internet, so cnnlab makes
them: real objects (Fashion-MNIST items, scikit-learn's handwritten digits, drawn shapes) are
pasted with an alpha matte on crops of real textures and photos (scikit-image), among clutter
(short strokes and dots smaller than any object). Because the generator places every pixel,
the annotations are exact: boxes are the extent of each object's visible pixels, instance and
semantic masks are what is visible after occlusion, keypoints are the corners that were drawn,
captions describe the colours, shapes and their arrangement.

Kinds (``make_scenes(kind, n, out)`` or ``cnnlab data scenes --kind K``):

- ``localize``   one object per image (course: classification + localization)
- ``detect``     1..max_objects objects per image, may overlap (visible part >= 60 %)
- ``segment``    as detect, plus semantic masks; also written in the Pascal-VOC layout
- ``keypoints``  one textured quadrilateral, its corners top_left, top_right, bottom_right,
                 bottom_left (named so that a left-right mirror swaps them in pairs)
- ``caption``    1..3 coloured shapes on a named texture with five template captions each; a
                 ``test_novel/`` split holds colour-shape pairs (NOVEL_COMBOS) that no other split shows

Object sets (``objects=``): ``fashion`` = Fashion-MNIST items in 7 categories (T-shirt,
pullover, coat and shirt are one category, "top": at 28 px they are ambiguous even to people,
whose accuracy on the 10 labels is 83.5 %, Xiao et al. 2017); ``fashion10`` = the 10 original
labels; ``digits`` = the 8x8 digit scans scaled up; ``shapes`` = circle, square, triangle,
star, cross; ``shapes10`` = those five and ring, crescent, heart, arrow, diamond (the segment
default: 10 classes + background, none of them ambiguous at 18 px). Train scenes take items from Fashion-MNIST's training file, val and test scenes
from two halves of its test file (digits: a fixed 70/15/15 split), so no item is in two splits.

Layout written under ``out`` (a new folder)::

    train/images/00000.png  train/annotations.json    (COCO; val/ and test/ alike)
    voc/JPEGImages ... ImageSets/Segmentation/train.txt  (segment, or formats=("voc",))
    yolo/images/train/... labels/train/... data.yaml     (formats=("yolo",))
    scenes.json  (what was generated, to make it again)   preview.png (a few training scenes)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from cnnlab.data.coco import ImageRecord, write_coco_captions, write_coco_instances, write_coco_keypoints
from cnnlab.data.scene_captions import SHAPE_PLURALS, make_captions  # noqa: F401 (SHAPE_PLURALS re-exported)
from cnnlab.data.scene_sources import (SHAPES, SHAPES10, TEXTURES, Backgrounds, ItemPool,  # noqa: F401 (re-exported)
                                       ShapePool, Sprite, _item_colour, add_clutter, draw_polygon, draw_shape)
from cnnlab.errors import DataError

KINDS = ("localize", "detect", "segment", "keypoints", "caption")
OBJECT_SETS = ("fashion", "fashion10", "digits", "shapes", "shapes10")
FORMATS = ("coco", "voc", "yolo")
SPLITS = ("train", "val", "test")

FASHION10 = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FASHION7 = ("top", "trouser", "dress", "sandal", "sneaker", "bag", "boot")
FASHION_TO_7 = (0, 1, 0, 2, 0, 3, 0, 4, 5, 6)  # Fashion-MNIST label -> FASHION7 index
DIGITS = tuple(str(d) for d in range(10))
QUAD_POINTS = ("top_left", "top_right", "bottom_right", "bottom_left")
QUAD_SKELETON = [(0, 1), (1, 2), (2, 3), (3, 0)]
COLOURS = {"red": (0.85, 0.12, 0.1), "green": (0.15, 0.7, 0.15), "blue": (0.15, 0.3, 0.95), "yellow": (0.97, 0.86, 0.1),
           "white": (0.97, 0.97, 0.97), "black": (0.04, 0.04, 0.04), "purple": (0.6, 0.15, 0.75), "orange": (1.0, 0.55, 0.05)}
CAPTION_TEXTURES = {"brick": "bricks", "grass": "grass", "gravel": "gravel"}
# colour-shape pairs held out of train/val/test; every test_novel scene shows one (compositional generalization)
NOVEL_COMBOS = (("red", "star"), ("green", "circle"), ("blue", "triangle"), ("yellow", "square"), ("purple", "cross"))

# kind -> (image size, object set, min size, max size, max objects, formats)
KIND_DEFAULTS: dict[str, tuple[int, str, int, int, int, tuple[str, ...]]] = {
    "localize": (64, "fashion", 28, 44, 1, ("coco",)),
    "detect": (128, "fashion", 18, 48, 4, ("coco",)),
    "segment": (128, "shapes10", 18, 48, 4, ("coco", "voc")),
    "keypoints": (64, "shapes", 24, 44, 1, ("coco",)),
    "caption": (96, "shapes", 22, 40, 3, ("coco",)),
}


@dataclass
class SceneSpec:
    """Everything that decides a scenes set; the same spec and seed give the same files."""

    kind: str
    n: int
    n_val: int | None = None  # default n // 6
    n_test: int | None = None  # default n // 6
    n_novel: int | None = None  # caption only: test_novel/ images (default n // 6; 0 lifts the hold-out)
    size: int | None = None  # kind default
    objects: str | None = None
    min_size: int | None = None  # object's longer side in pixels
    max_size: int | None = None
    max_objects: int | None = None
    clutter: int = 6  # strokes and dots per image (0 for clean scenes)
    formats: tuple[str, ...] | None = None
    seed: int = 0
    data_root: str | None = None  # Fashion-MNIST IDX folder (default: the Debian package's)
    classes: list[str] = field(default_factory=list)  # filled by resolve()

    def resolve(self) -> "SceneSpec":
        """Fill the kind's defaults and check every value (DataError naming the option and the rule)."""
        if self.kind not in KINDS:
            raise DataError(f"--kind {self.kind!r}: unknown; choose one of {', '.join(KINDS)}")
        size, objects, lo, hi, most, formats = KIND_DEFAULTS[self.kind]
        self.size = self.size or size
        self.objects = self.objects or objects
        self.min_size, self.max_size = self.min_size or min(lo, self.size), self.max_size or min(hi, self.size)
        self.max_objects = self.max_objects or most
        self.n_val = self.n // 6 if self.n_val is None else self.n_val
        self.n_test = self.n // 6 if self.n_test is None else self.n_test
        self.n_novel = (self.n // 6 if self.kind == "caption" else 0) if self.n_novel is None else self.n_novel
        if self.n_novel and self.kind != "caption":
            raise DataError(f"--n-novel {self.n_novel}: held-out colour-shape pairs exist only for --kind caption")
        self.formats = tuple(self.formats or formats)
        for name in ("n", "n_val", "n_test", "n_novel", "clutter"):
            if getattr(self, name) < 0:
                raise DataError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if self.n < 1:
            raise DataError(f"--n {self.n}: at least one training image is needed")
        if not 16 <= self.size <= 1024:
            raise DataError(f"--size {self.size}: must be between 16 and 1024 pixels")
        if not 6 <= self.min_size <= self.max_size <= self.size:
            raise DataError(f"--min-size {self.min_size} / --max-size {self.max_size}: need 6 <= min <= max <= --size {self.size}")
        if self.objects not in OBJECT_SETS:
            raise DataError(f"--objects {self.objects!r}: unknown; choose one of {', '.join(OBJECT_SETS)}")
        if self.kind == "caption" and self.objects != "shapes":  # captions name the five shapes
            raise DataError("--kind caption describes colours and shapes: use --objects shapes")
        if self.kind == "keypoints" and self.objects != "shapes":
            raise DataError("--kind keypoints draws quadrilaterals (their corners are the keypoints): use --objects shapes")
        if self.max_objects < 1 or (self.kind in ("localize", "keypoints") and self.max_objects != 1):
            raise DataError(f"--max-objects {self.max_objects}: {self.kind} scenes hold exactly one object" if
                            self.kind in ("localize", "keypoints") else f"--max-objects {self.max_objects}: must be >= 1")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise DataError(f"--format {bad[0]!r}: unknown; choose from {', '.join(FORMATS)}")
        if self.kind in ("keypoints", "caption") and set(self.formats) - {"coco"}:
            raise DataError(f"--format: {self.kind} annotations exist only in COCO JSON; use --format coco")
        self.classes = list(class_names(self.kind, self.objects))
        return self


def class_names(kind: str, objects: str) -> tuple[str, ...]:
    if kind == "keypoints":
        return ("quad",)
    return {"fashion": FASHION7, "fashion10": FASHION10, "digits": DIGITS, "shapes": SHAPES, "shapes10": SHAPES10}[objects]


def object_pools(spec: SceneSpec) -> dict[str, Any]:
    """split -> the pool its objects come from (disjoint items per split)."""
    if spec.objects in ("shapes", "shapes10"):
        return {s: ShapePool(class_names(spec.kind, spec.objects)) for s in SPLITS}
    if spec.objects == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.rint(d.images * (255 / 16)).astype(np.uint8)
        order = np.random.default_rng(20240101).permutation(len(x))
        cut = [0, int(0.7 * len(x)), int(0.85 * len(x)), len(x)]
        return {s: ItemPool(x[order[cut[k]:cut[k + 1]]], d.target[order[cut[k]:cut[k + 1]]]) for k, s in enumerate(SPLITS)}
    from cnnlab.data.named import FASHION_MNIST_ROOT, load_idx_dataset

    (xtr, ytr), (xte, yte), _ = load_idx_dataset("fashion-mnist", spec.data_root or FASHION_MNIST_ROOT)
    xtr, ytr, xte, yte = xtr[:, 0].numpy(), ytr.numpy(), xte[:, 0].numpy(), yte.numpy()
    if spec.objects == "fashion":
        to7 = np.asarray(FASHION_TO_7)
        ytr, yte = to7[ytr], to7[yte]
    half = len(xte) // 2
    return {"train": ItemPool(xtr, ytr), "val": ItemPool(xte[:half], yte[:half]), "test": ItemPool(xte[half:], yte[half:])}


# ---------------------------------------------------------------------------- one scene
@dataclass
class Scene:
    """One generated image and its exact annotations (pixel-edge coordinates: a pixel k spans [k, k+1))."""

    image: np.ndarray  # uint8 (H, W, 3)
    boxes: np.ndarray  # f32 (N, 4) xyxy, the extent of the visible pixels
    labels: np.ndarray  # i64 (N,)
    masks: np.ndarray  # u8 (N, H, W) visible pixels of each object
    keypoints: np.ndarray | None = None  # f32 (N, K, 3) x, y, v (2 = visible)
    captions: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)  # caption scenes: each object's colour name

    @property
    def semantic(self) -> np.ndarray:
        """(H, W) uint8: 0 background, label + 1 where an object is visible."""
        sem = np.zeros(self.image.shape[:2], dtype=np.uint8)
        for m, lab in zip(self.masks, self.labels):
            sem[m > 0] = lab + 1
        return sem

    def target(self) -> dict[str, Any]:
        t = {"boxes": torch.from_numpy(self.boxes), "labels": torch.from_numpy(self.labels),
             "masks": torch.from_numpy(self.masks)}
        if self.keypoints is not None:
            t["keypoints"] = torch.from_numpy(self.keypoints)
        return t


def _mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _caption_colour(rng: np.random.Generator, shape: str, hold_out: bool, novel: bool) -> str:
    """A colour name for a caption object: any, or (``hold_out``) none of NOVEL_COMBOS, or (``novel``) one of them."""
    names = list(COLOURS)
    if hold_out or novel:
        held = [c for c, s in NOVEL_COMBOS if s == shape]
        names = held if novel and held else [c for c in names if c not in held]
    return names[int(rng.integers(len(names)))]


def make_scene(spec: SceneSpec, pool, backgrounds: Backgrounds, rng: np.random.Generator, novel: bool = False) -> Scene:
    """One scene of ``spec.kind`` (objects from ``pool``); ``novel``: its first object is a held-out colour-shape pair."""
    size = spec.size
    caption = spec.kind == "caption"
    dark_objects = bool(rng.random() < 0.5)  # dark objects on a light background, or the reverse
    if caption:
        canvas, texture = backgrounds.sample(rng, size, (0.3, 0.62), saturation=0.15)
    else:
        canvas, texture = backgrounds.sample(rng, size, (0.55, 0.95) if dark_objects else (0.05, 0.42))
    add_clutter(canvas, rng, spec.clutter, max(3, spec.min_size // 2))
    if spec.kind == "keypoints":
        return _quad_scene(spec, canvas, backgrounds, rng, dark_objects)
    n = 1 if spec.max_objects == 1 else int(rng.integers(1, spec.max_objects + 1))
    owner = np.full((size, size), -1, dtype=np.int32)
    full_areas, labels, colours, centres = [], [], [], []
    for k in range(n):
        for _attempt in range(30):
            s = int(rng.integers(spec.min_size, spec.max_size + 1))
            sp = pool.sample(rng, s)
            h, w = sp.alpha.shape
            y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            new = np.zeros((size, size), dtype=bool)
            new[y:y + h, x:x + w] = sp.alpha >= 0.5
            trial = owner.copy()
            trial[new] = k
            if all((trial == j).sum() >= 0.6 * full_areas[j] for j in range(k)) and new.sum() >= 12:
                break
        else:
            break  # no room for another object
        name = _caption_colour(rng, SHAPES[sp.label], bool(spec.n_novel), novel and k == 0) if caption else None
        colour = np.asarray(COLOURS[name], dtype=np.float32) if caption else _item_colour(rng, dark_objects)
        a = sp.alpha[..., None]
        region = canvas[y:y + h, x:x + w]
        region[:] = region * (1 - a) + (sp.shade[..., None] * colour) * a
        owner = trial
        full_areas.append(int(new.sum()))
        labels.append(sp.label)
        colours.append(name)
        centres.append((x + w / 2, y + h / 2))
    masks = np.stack([(owner == k).astype(np.uint8) for k in range(len(labels))]) if labels else \
        np.zeros((0, size, size), dtype=np.uint8)
    boxes = np.asarray([_mask_box(m) for m in masks], dtype=np.float32).reshape(-1, 4)
    scene = Scene(_to_uint8(canvas), boxes, np.asarray(labels, dtype=np.int64), masks)
    scene.colours = colours if caption else []
    if caption:
        scene.captions = make_captions([SHAPES[lab] for lab in labels], colours, centres, size,
                                       CAPTION_TEXTURES.get(texture, texture), rng)
    return scene


def _quad_scene(spec: SceneSpec, canvas: np.ndarray, backgrounds: Backgrounds, rng: np.random.Generator,
                dark_objects: bool) -> Scene:
    """A convex quadrilateral filled with another texture; its 4 corners in QUAD_POINTS order."""
    size = spec.size
    s = rng.uniform(spec.min_size, spec.max_size)
    aspect = rng.uniform(0.6, 1.0)
    hw, hh = s / 2, s / 2 * aspect
    if rng.random() < 0.5:
        hw, hh = hh, hw
    base = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])  # top_left, top_right, bottom_right, bottom_left
    base += rng.uniform(-0.18, 0.18, size=(4, 2)) * np.array([hw, hh])
    turn = rng.uniform(-0.5, 0.5)  # < 45 degrees: each named corner stays in its quadrant
    c, sn = math.cos(turn), math.sin(turn)
    pts = base @ np.array([[c, sn], [-sn, c]])
    pts *= min(1.0, (size - 3) / float((pts.max(0) - pts.min(0)).max()))  # rotated, it must still fit
    lo, hi = pts.min(0), pts.max(0)
    centre = np.array([rng.uniform(-lo[0] + 1, size - hi[0] - 1), rng.uniform(-lo[1] + 1, size - hi[1] - 1)])
    pts = pts + centre
    alpha = draw_polygon(pts, size, size)[..., None]
    fill, _ = backgrounds.sample(rng, size, (0.05, 0.35) if dark_objects else (0.65, 1.0), saturation=0.9)
    canvas[:] = canvas * (1 - alpha) + fill * alpha
    mask = (alpha[..., 0] >= 0.5).astype(np.uint8)[None]
    kps = np.concatenate([pts, np.full((4, 1), 2.0)], 1).astype(np.float32)[None]  # (1, 4, 3)
    return Scene(_to_uint8(canvas), np.asarray([_mask_box(mask[0])], dtype=np.float32), np.zeros(1, dtype=np.int64),
                 mask, kps)


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(canvas, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------- a whole set
def make_scenes(spec: SceneSpec | str, n: int | None = None, out: str | os.PathLike | None = None, *,
                progress: bool | Callable = False, **options) -> Path:
    """Generate train/val/test scenes into the new folder ``out``; returns it.

    ``out`` must not exist or be empty. Files are written into ``out.partial`` and renamed at the
    end, so an interrupted run leaves nothing that looks complete.
    """
    if isinstance(spec, str):
        spec = SceneSpec(spec, n if n is not None else 1000, **options)
    spec.resolve()
    if out is None:
        raise DataError("out: a folder to write the scenes into is needed")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out}: exists and is not an empty folder; choose a new folder (nothing was written)")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as e:
        raise DataError(f"--out {out}: cannot create it ({e.strerror}); choose a writable folder") from None
    try:
        _write_all(spec, partial, progress)
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _write_all(spec: SceneSpec, root: Path, progress) -> None:
    from cnnlab.data.voc import VocWriter
    from cnnlab.data.yolo import YoloWriter

    pools = object_pools(spec)
    backgrounds = Backgrounds(CAPTION_TEXTURES if spec.kind == "caption" else TEXTURES)
    counts = {"train": spec.n, "val": spec.n_val, "test": spec.n_test, "test_novel": spec.n_novel}
    voc = VocWriter(root / "voc", spec.classes) if "voc" in spec.formats else None
    yolo = YoloWriter(root / "yolo", spec.classes) if "yolo" in spec.formats else None
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=sum(counts.values()), desc=f"scenes ({spec.kind})", unit="image")
    previews: list[Scene] = []
    for k, split in enumerate((*SPLITS, "test_novel")):
        if counts[split] == 0:
            continue
        rng = np.random.default_rng([spec.seed, k])
        (root / split / "images").mkdir(parents=True)
        records, targets, captions, colours = [], [], [], []
        for i in range(counts[split]):
            scene = make_scene(spec, pools.get(split, pools["test"]), backgrounds, rng, novel=split == "test_novel")
            name = f"{i:05d}"
            path = root / split / "images" / f"{name}.png"
            Image.fromarray(scene.image).save(path)
            records.append(ImageRecord(i + 1, f"images/{name}.png", path, spec.size, spec.size))
            targets.append(scene.target())
            captions.append(scene.captions)
            colours.append(scene.colours)
            if voc is not None:
                voc.add(split, f"{split}_{name}", scene.image.transpose(2, 0, 1), scene.target(),
                        semantic=scene.semantic if spec.kind == "segment" else None)
            if yolo is not None:
                yolo.add(split, name, scene.image.transpose(2, 0, 1), scene.target())
            if split == "train" and len(previews) < 16:
                previews.append(scene)
            if bar is not None:
                bar.update()
            elif callable(progress):
                progress(split, i)
        info = {"description": f"cnnlab scenes: {spec.kind}, {spec.objects}, seed {spec.seed}", "version": "1"}
        ann = root / split / "annotations.json"
        if spec.kind == "keypoints":
            write_coco_keypoints(ann, records, targets, spec.classes, QUAD_POINTS, QUAD_SKELETON, info=info)
        elif spec.kind == "caption":
            write_coco_captions(ann, records, captions, info=info)
            write_coco_instances(root / split / "instances.json", records, targets, spec.classes, info=info)
            _add_colours(root / split / "instances.json", colours)
        else:
            write_coco_instances(ann, records, targets, spec.classes, info=info)
    if bar is not None:
        bar.close()
    if voc is not None:
        voc.close()
    if yolo is not None:
        yolo.close()
    spec_d = asdict(spec)
    spec_d["formats"] = list(spec.formats)
    (root / "scenes.json").write_text(json.dumps(spec_d, indent=2) + "\n")
    draw_preview(previews, spec, root / "preview.png")


def _add_colours(path: Path, colours: list[list[str]]) -> None:
    """Caption scenes: each instance annotation gets its object's ``colour`` (words of a caption name it)."""
    data = json.loads(path.read_text())
    per_image = {i + 1: list(c) for i, c in enumerate(colours)}
    for a in data["annotations"]:
        a["colour"] = per_image[a["image_id"]].pop(0)
    path.write_text(json.dumps(data))


def draw_preview(scenes: Sequence[Scene], spec: SceneSpec, path: Path, cols: int = 4) -> None:
    """A grid of scenes with their boxes, class names, keypoints or first caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not scenes:
        return
    rows = (len(scenes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.4, rows * 2.6))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= len(scenes):
            continue
        sc = scenes[i]
        ax.imshow(sc.image, extent=(0, spec.size, spec.size, 0))
        for b, lab in zip(sc.boxes, sc.labels):
            ax.add_patch(plt.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, edgecolor="lime", lw=1))
            ax.text(b[0], b[1], spec.classes[lab], color="black", fontsize=6, va="bottom",
                    bbox=dict(facecolor="lime", alpha=0.7, pad=0.5, edgecolor="none"))
        if sc.keypoints is not None:
            for p in sc.keypoints:
                ax.scatter(p[:, 0], p[:, 1], c=["red", "yellow", "cyan", "magenta"][:len(p)], s=10)
        if sc.captions:
            ax.set_title(sc.captions[0], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
