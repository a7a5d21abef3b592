"""Scenes: every kind is written in the standard formats and reads back exactly through cnnlab's readers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.data import scenes
from cnnlab.data.coco import flip_pairs_from_names, read_coco
from cnnlab.data.scenes import SceneSpec, make_scene, make_scenes
from cnnlab.errors import DataError

TINY = dict(n_val=2, n_test=2)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One tiny folder per kind (shapes and digits objects: no Fashion-MNIST needed)."""
    root = tmp_path_factory.mktemp("scenes")
    out = {}
    for kind, objects, formats in [("localize", "digits", None), ("detect", "shapes", ("coco", "yolo")),
                                   ("segment", "shapes", None), ("keypoints", "shapes", None),
                                   ("caption", "shapes", None)]:
        out[kind] = make_scenes(kind, 6, root / kind, objects=objects, formats=formats, **TINY)
    return out


@pytest.mark.parametrize("kind", ["localize", "detect", "segment", "keypoints", "caption"])
def test_layout_and_counts(made, kind):
    root = made[kind]
    assert (root / "preview.png").stat().st_size > 1000
    spec = json.loads((root / "scenes.json").read_text())
    assert spec["kind"] == kind and spec["n"] == 6
    for split, n in [("train", 6), ("val", 2), ("test", 2)]:
        ds = read_coco(root / split / "annotations.json")
        assert len(ds) == n
        assert all(im.path.is_file() and im.file_name.startswith("images/") for im in ds.images)
        assert all((im.width, im.height) == (spec["size"], spec["size"]) for im in ds.images)
    assert not list(root.parent.glob("*.partial"))


@pytest.mark.parametrize("kind", ["localize", "detect", "segment"])
def test_boxes_are_the_extent_of_the_masks(made, kind):
    ds = read_coco(made[kind] / "train" / "annotations.json")
    counts = []
    for i in range(len(ds)):
        t = ds.target(i)
        counts.append(len(t["labels"]))
        assert len(t["labels"]) >= 1
        for box, mask, area in zip(t["boxes"], t["masks"], t["area"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert area.item() == mask.sum().item() > 0
        # visible masks do not overlap: one owner per pixel
        assert t["masks"].sum(0).max() <= 1
    if kind == "localize":
        assert set(counts) == {1}
    else:
        assert max(counts) <= 4


def test_segment_voc_matches_coco(made):
    from cnnlab.data.voc import read_voc

    root = made["segment"]
    coco = read_coco(root / "val" / "annotations.json")
    voc = read_voc(root / "voc", "val", task="segmentation")
    assert voc.classes == coco.classes == list(scenes.SHAPES)
    assert len(voc) == len(coco) == 2
    for i in range(len(voc)):
        tv, tc = voc.target(i), coco.target(i)
        assert torch.equal(tv["labels"], tc["labels"])
        assert torch.equal(tv["boxes"], tc["boxes"])
        assert torch.equal(tv["masks"], tc["masks"])
        semantic = torch.zeros(tc["masks"].shape[1:], dtype=torch.int64)
        for m, lab in zip(tc["masks"], tc["labels"]):
            semantic[m > 0] = lab + 1
        assert torch.equal(tv["semantic"], semantic)


def test_detect_yolo_matches_coco(made):
    from cnnlab.data.yolo import read_yolo

    root = made["detect"]
    yolo = read_yolo(root / "yolo", "train")
    coco = read_coco(root / "train" / "annotations.json")
    assert yolo.classes == coco.classes
    for i in range(len(coco)):
        ty, tc = yolo.target(i), coco.target(i)
        assert torch.equal(ty["labels"], tc["labels"])
        assert torch.allclose(ty["boxes"], tc["boxes"], atol=1e-3)


def test_keypoints_are_corners_in_named_order(made):
    ds = read_coco(made["keypoints"] / "train" / "annotations.json")
    assert ds.keypoint_names == list(scenes.QUAD_POINTS)
    assert ds.skeleton == scenes.QUAD_SKELETON
    assert flip_pairs_from_names(ds.keypoint_names) == [(0, 1), (2, 3)]  # a mirror swaps left and right corners
    for i in range(len(ds)):
        t = ds.target(i)
        kp, box = t["keypoints"][0], t["boxes"][0]
        assert (kp[:, 2] == 2).all()
        assert (kp[:, 0] >= box[0] - 1).all() and (kp[:, 0] <= box[2] + 1).all()
        centre = kp[:, :2].mean(0)
        tl, tr, br, bl = kp[:, :2] - centre
        assert tl[0] < 0 and tl[1] < 0 and tr[0] > 0 and tr[1] < 0 and br[0] > 0 and br[1] > 0 and bl[0] < 0 and bl[1] > 0


def test_captions_describe_the_shapes(made):
    root = made["caption"]
    caps = read_coco(root / "train" / "annotations.json")
    inst = read_coco(root / "train" / "instances.json")
    for im in caps.images:
        cs = caps.captions[im.id]
        assert len(cs) == 5 and len(set(cs)) == 5
        names = {inst.classes[o.label] for o in inst.objects[im.id]}
        for c in cs:
            said = {s for s in scenes.SHAPES if s in c or scenes.SHAPE_PLURALS[s] in c}
            assert said <= names, (c, names)
            assert " a o" not in c and " a a" not in c and not c.startswith("a o")  # "an orange"


def test_same_seed_same_files_other_seed_differs(tmp_path):
    a = make_scenes("localize", 3, tmp_path / "a", objects="shapes", n_val=0, n_test=0, seed=3)
    b = make_scenes("localize", 3, tmp_path / "b", objects="shapes", n_val=0, n_test=0, seed=3)
    c = make_scenes("localize", 3, tmp_path / "c", objects="shapes", n_val=0, n_test=0, seed=4)
    ann = "train/annotations.json"
    assert (a / ann).read_bytes() == (b / ann).read_bytes()
    assert (a / "train/images/00000.png").read_bytes() == (b / "train/images/00000.png").read_bytes()
    assert (a / ann).read_bytes() != (c / ann).read_bytes()
    assert not (a / "val").exists()


def test_fashion_objects_use_seven_categories_and_disjoint_items(tmp_path):
    from cnnlab.data.named import FASHION_MNIST_ROOT
    from pathlib import Path

    if not Path(FASHION_MNIST_ROOT, "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    spec = SceneSpec("localize", 2, objects="fashion").resolve()
    assert spec.classes == list(scenes.FASHION7)
    pools = scenes.object_pools(spec)
    assert len(pools["train"].images) == 60000 and len(pools["val"].images) == len(pools["test"].images) == 5000
    assert set(np.unique(pools["train"].labels)) == set(range(7))
    ten = scenes.object_pools(SceneSpec("localize", 2, objects="fashion10").resolve())
    assert set(np.unique(ten["val"].labels)) == set(range(10))


def test_objects_fit_the_spec_sizes():
    spec = SceneSpec("localize", 1, objects="shapes", min_size=20, max_size=30).resolve()
    rng = np.random.default_rng(0)
    backgrounds = scenes.Backgrounds(["brick", "grass"])
    for _ in range(10):
        sc = make_scene(spec, scenes.ShapePool(), backgrounds, rng)
        w, h = sc.boxes[0, 2] - sc.boxes[0, 0], sc.boxes[0, 3] - sc.boxes[0, 1]
        assert 12 <= max(w, h) <= 30
        assert sc.image.shape == (64, 64, 3) and sc.image.dtype == np.uint8


@pytest.mark.parametrize("options, words", [
    (dict(kind="nope"), "--kind"), (dict(size=8), "--size"), (dict(min_size=50, max_size=40), "--min-size"),
    (dict(objects="cats"), "--objects"), (dict(max_objects=3), "exactly one"), (dict(formats=("xml",)), "--format"),
    (dict(n=0), "--n"), (dict(n_val=-1), "--n-val"),
])
def test_bad_specs_are_refused(options, words):
    kw = dict(kind="localize", n=5) | options
    with pytest.raises(DataError, match=words):
        SceneSpec(**kw).resolve()


def test_existing_folder_is_never_touched(tmp_path):
    (tmp_path / "out").mkdir()
    keep = tmp_path / "out" / "mine.txt"
    keep.write_text("precious")
    with pytest.raises(DataError, match="not an empty folder"):
        make_scenes("localize", 2, tmp_path / "out", objects="shapes")
    assert keep.read_text() == "precious" and len(list((tmp_path / "out").iterdir())) == 1


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return make_scene(*a, **k)

    monkeypatch.setattr(scenes, "make_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        make_scenes("localize", 5, tmp_path / "out", objects="shapes")
    assert list(tmp_path.iterdir()) == []


def test_cli_one_line_errors_and_success(tmp_path):
    cmd = [sys.executable, "-m", "cnnlab", "data", "scenes"]
    r = subprocess.run(cmd + ["--kind", "detect", "--n", "3", "--n-val", "1", "--n-test", "0", "--objects", "shapes",
                              "--quiet", "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "wrote 4 detect scenes" in r.stdout
    assert len(read_coco(tmp_path / "d" / "val")) == 1
    r = subprocess.run(cmd + ["--kind", "detect", "--n", "3", "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: --out") and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--kind", "caption", "--objects", "digits", "--out", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "use --objects shapes" in r.stderr and not (tmp_path / "c").exists()
