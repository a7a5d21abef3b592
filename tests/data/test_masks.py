"""Segmentation readers on tiny folders the tests write: VOC, images/ + masks/, COCO; bad masks; joint transforms;
the shapes10 object set of the scenes generator."""

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import masks as md
from cnnlab.data.coco import mask_to_rle
from cnnlab.data.voc import read_palette_png, write_palette_png
from cnnlab.errors import DataError


def scene(rng, size=16, classes=2):
    """A noisy image and its mask: one bright square of a random class, a 255 (ignore) border around it."""
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    s = int(rng.integers(4, size // 2))
    y, x = (int(v) for v in rng.integers(1, size - s - 1, 2))
    label = int(rng.integers(1, classes + 1))
    mask[y - 1:y + s + 1, x - 1:x + s + 1] = 255
    mask[y:y + s, x:x + s] = label
    img[y:y + s, x:x + s] = (230, 200, 40) if label == 1 else (40, 200, 230)
    return img, mask, (x, y, s, label)


def write_voc(root, n=(6, 3), size=16, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), n):
        names = []
        for i in range(count):
            img, mask, _ = scene(rng, size)
            name = f"{split}_{i:03d}"
            (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "JPEGImages" / f"{name}.png")
            write_palette_png(root / "SegmentationClass" / f"{name}.png", mask)
            names.append(name)
        (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    (root / "classes.txt").write_text("background\nyellow\ncyan\n")
    return root


def write_folders(root, n=8, size=16, seed=0, classes_txt=True):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img, mask, _ = scene(rng, size)
        Image.fromarray(img).save(root / "images" / f"{i:03d}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")  # grey PNG of indices
    if classes_txt:
        (root / "classes.txt").write_text("yellow\ncyan\n")
    return root


def write_coco(root, n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        images, anns, truth = [], [], {}
        for i in range(n):
            img, _, (x, y, s, label) = scene(rng, size)
            Image.fromarray(img).save(root / split / "images" / f"{i}.png")
            images.append({"id": i + 1, "file_name": f"images/{i}.png", "width": size, "height": size})
            m = np.zeros((size, size), dtype=np.uint8)
            m[y:y + s, x:x + s] = 1
            anns.append({"id": 2 * i + 1, "image_id": i + 1, "category_id": 10 + label, "bbox": [x, y, s, s],
                         "area": s * s, "iscrowd": 0, "segmentation": mask_to_rle(m)})
            crowd = np.zeros((size, size), dtype=np.uint8)
            crowd[0, :3] = 1
            anns.append({"id": 2 * i + 2, "image_id": i + 1, "category_id": 11, "bbox": [0, 0, 3, 1], "area": 3,
                         "iscrowd": 1, "segmentation": mask_to_rle(crowd)})
            truth[i] = (x, y, s, label)
        cats = [{"id": 11, "name": "yellow"}, {"id": 12, "name": "cyan"}]
        (root / split / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                                   "categories": cats}))
    return root, truth


def cfg(data, **kw):
    base = dict(data=str(data), limit=None, limit_test=None, val_fraction=0.25, seed=0, img_size=None, skip_bad=False)
    return SimpleNamespace(**(base | kw))


def test_voc_folder_reads_images_masks_classes_and_ignore(tmp_path):
    root = write_voc(tmp_path / "voc")
    b = md.load_segmentation_splits(cfg(root))
    assert b.meta["classes"] == ["background", "yellow", "cyan"] and b.meta["layout"] == "voc"
    assert len(b.train) == 6 and len(b.val) == 3 and b.test is None and b.meta["img_size"] == [16, 16]
    truth = read_palette_png(root / "SegmentationClass" / "train_000.png")
    assert torch.equal(b.train.masks[0], torch.from_numpy(truth)) and 255 in truth
    item = b.train[0]
    assert item["images"].shape == (3, 16, 16) and item["masks"].dtype == torch.int64


def test_images_and_masks_folders_carve_val_and_resize_masks_nearest(tmp_path):
    root = write_folders(tmp_path / "f")
    b = md.load_segmentation_splits(cfg(root, img_size=32))
    assert b.meta["classes"] == ["background", "yellow", "cyan"] and len(b.train) == 6 and len(b.val) == 2
    assert b.train.masks.shape[-2:] == (32, 32)
    assert set(torch.unique(b.train.masks).tolist()) <= {0, 1, 2, 255}  # no blended labels
    (tmp_path / "g").mkdir()
    b2 = md.load_segmentation_splits(cfg(write_folders(tmp_path / "g" / "x", classes_txt=False)))
    assert b2.meta["classes"][0] == "background" and b2.meta["classes"][1].startswith("class_")


def test_coco_folder_rasterizes_objects_per_class_and_crowds_as_ignore(tmp_path):
    root, truth = write_coco(tmp_path / "coco")
    b = md.load_segmentation_splits(cfg(root))
    assert b.meta["classes"] == ["background", "yellow", "cyan"] and b.meta["layout"] == "coco"
    x, y, s, label = truth[0]
    m = b.val.masks[0]
    assert (m[y:y + s, x:x + s] == label).all() and (m[0, :3] == 255).all()
    assert int((m == label).sum()) == s * s or (y == 0 and x < 3)


def test_a_mask_of_another_size_names_the_file(tmp_path):
    root = write_folders(tmp_path / "f")
    Image.fromarray(np.zeros((10, 16), dtype=np.uint8)).save(root / "masks" / "003.png")
    with pytest.raises(DataError) as e:
        md.load_segmentation_splits(cfg(root))
    msg = str(e.value)
    assert "003.png" in msg and "16x10" in msg and "16x16" in msg and "\n" not in msg


def test_a_label_above_the_class_count_names_the_file(tmp_path):
    root = write_voc(tmp_path / "voc")
    bad = read_palette_png(root / "SegmentationClass" / "val_001.png").copy()
    bad[0, 0] = 7
    write_palette_png(root / "SegmentationClass" / "val_001.png", bad)
    with pytest.raises(DataError) as e:
        md.load_segmentation_splits(cfg(root))
    msg = str(e.value)
    assert "val_001.png" in msg and "label 7" in msg and "255" in msg and "\n" not in msg


def test_missing_mask_and_unknown_folder(tmp_path):
    root = write_folders(tmp_path / "f")
    (root / "masks" / "002.png").unlink()
    with pytest.raises(DataError, match="002.jpg: has no mask"):
        md.load_segmentation_splits(cfg(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a segmentation folder"):
        md.load_segmentation_splits(cfg(tmp_path / "empty"))


def test_joint_transform_moves_the_mask_with_the_image():
    """A flip keeps mask == (red channel bright) pixel for pixel; scale/crop too but for the image's blended edges;
    labels are never blended (nearest), 255 stays 255."""
    rng = np.random.default_rng(0)
    img = torch.zeros(3, 32, 32)
    mask = torch.zeros(32, 32, dtype=torch.int64)
    for _ in range(4):
        y, x = (int(v) for v in rng.integers(0, 24, 2))
        img[0, y:y + 8, x:x + 6] = 1.0
        mask[y:y + 8, x:x + 6] = 1
    mask[0, :] = 255
    img[1, 0, :] = 1.0
    ds = md.MaskSet((img * 255).to(torch.uint8)[None], mask.to(torch.uint8)[None])
    bundle = SimpleNamespace(train=ds, val=None, test=None,
                             meta={"img_size": [32, 32], "normalization": {"mode": "channel", "mean": [[[0]], [[0]], [[0]]], "std": [1, 1, 1]}})
    flipped = 0
    for augment in (("hflip",), ("hflip", "scale")):
        md.attach_transforms(bundle, augment)
        for seed in range(6):
            torch.manual_seed(seed)
            item = ds[0]
            m, x = item["masks"], item["images"]
            assert m.dtype == torch.int64 and set(torch.unique(m).tolist()) <= {0, 1, 255}
            agree = ((m == 1) == ((x[0] > 0.5) & (x[1] < 0.5))).float().mean()
            if augment == ("hflip",):
                assert agree == 1.0
                flipped += not torch.equal(m, mask)
            else:
                assert agree > 0.93
    assert flipped > 0
    with pytest.raises(Exception, match="colour"):
        md.parse_augment("hflip+rotate")


# ---------------------------------------------------------------------------- scenes: the shapes10 set
def test_segment_scenes_default_to_ten_shapes_plus_background(tmp_path):
    from cnnlab.data.scenes import SHAPES10, SceneSpec, make_scenes

    spec = SceneSpec("segment", 6).resolve()
    assert spec.objects == "shapes10" and spec.classes == list(SHAPES10) and len(spec.classes) == 10
    out = make_scenes("segment", 12, tmp_path / "s", n_val=0, n_test=0, size=64, seed=1)
    b = md.load_segmentation_splits(cfg(out / "voc", val_fraction=0))
    assert b.meta["classes"] == ["background", *SHAPES10]
    assert int(b.train.masks.max()) <= 10 and len(torch.unique(b.train.masks)) > 4


def test_the_five_shapes_set_is_unchanged(tmp_path):
    """shapes10 added new draws only for its new shapes: the original set makes the same pixels as before."""
    from cnnlab.data.scenes import make_scenes

    out = make_scenes("segment", 4, tmp_path / "s", objects="shapes", n_val=0, n_test=0, seed=0)
    pixels = b"".join(np.asarray(Image.open(out / "train" / "images" / f"{i:05d}.png")).tobytes() for i in range(4))
    assert hashlib.sha256(pixels).hexdigest()[:16] == SHAPES_DIGEST


SHAPES_DIGEST = "4566d0a6796a0833"  # pixels of the 5-shape set made before shapes10 existed
