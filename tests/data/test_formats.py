"""COCO, Pascal VOC and YOLO readers on small files written by hand (as other tools write them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.coco import (mask_to_rle, polygons_to_mask, read_coco, rle_decode, rle_encode, rle_from_string,
                              rle_to_string, write_coco_instances)
from cnnlab.data.voc import read_palette_png, read_voc, write_palette_png
from cnnlab.data.yolo import parse_simple_yaml, read_yolo
from cnnlab.errors import DataError


def _png(path, w=10, h=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------- RLE against pycocotools
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rle_matches_pycocotools(seed):
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(seed)
    m = (rng.random((13, 17)) < 0.4).astype(np.uint8)
    m[:, :3] = 1  # long runs too
    ref = mask_api.encode(np.asfortranarray(m))
    ours = mask_to_rle(m)
    assert ours["size"] == list(ref["size"])
    assert ours["counts"] == ref["counts"].decode()
    assert np.array_equal(rle_decode(rle_from_string(ours["counts"]), 13, 17), m)
    assert np.array_equal(mask_api.decode({"size": [13, 17], "counts": ours["counts"].encode()}), m)


def test_rle_by_hand():
    m = np.zeros((3, 3), np.uint8)
    m[1, 1] = 1
    assert rle_encode(m) == [4, 1, 4]
    assert rle_encode(np.ones((2, 2))) == [0, 4]  # counts start with a (here empty) run of zeros
    assert rle_to_string([2, 3, 2, 1]) == "232N"  # 4th count as a delta: 1 - 3 = -2 -> 5 bits 11110 -> 'N'
    assert rle_from_string("232N") == [2, 3, 2, 1]
    with pytest.raises(ValueError, match="add up"):
        rle_decode([1, 2], 3, 3)


def test_polygon_mask_pixel_centres():
    # the square [1, 4] x [2, 5] covers pixel centres x in {1.5, 2.5, 3.5}, y in {2.5, 3.5, 4.5}
    m = polygons_to_mask([[1, 2, 4, 2, 4, 5, 1, 5]], 7, 6)
    expect = np.zeros((7, 6), np.uint8)
    expect[2:5, 1:4] = 1
    assert np.array_equal(m, expect)


# ---------------------------------------------------------------------------- COCO
def test_coco_written_by_someone_else(tmp_path):
    """Non-contiguous category ids, polygon + RLE + no segmentation, crowd, captions, images/ next to the file."""
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "images" / "b.png")
    rle = {"size": [8, 10], "counts": rle_encode(np.pad(np.ones((2, 2), np.uint8), ((3, 3), (4, 4))))}
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 10, "height": 8}, {"id": 9, "file_name": "b.png"}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [1, 2, 3, 3], "segmentation": [[1, 2, 4, 2, 4, 5, 1, 5]],
             "area": 9, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [4, 3, 2, 2], "segmentation": rle, "iscrowd": 1},
            {"id": 3, "image_id": 9, "category_id": 3, "bbox": [0.5, 0.5, 2, 4]},
            {"id": 4, "image_id": 9, "caption": "a car"},
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    ds = read_coco(tmp_path)
    assert ds.classes == ["car", "dog"] and ds.category_ids == [3, 18]  # labels follow sorted ids
    assert (ds.images[1].width, ds.images[1].height) == (10, 8)  # probed when the file omits them
    t = ds.target(0)
    assert t["labels"].tolist() == [1, 0] and t["iscrowd"].tolist() == [0, 1]
    assert t["boxes"].tolist() == [[1, 2, 4, 5], [4, 3, 6, 5]]
    assert t["masks"][0].sum() == 9 and t["masks"][1, 3:5, 4:6].all() and t["masks"][1].sum() == 4
    t = ds.target(1)
    assert t["boxes"].tolist() == [[0.5, 0.5, 2.5, 4.5]] and "masks" not in t
    assert ds.captions[9] == ["a car"]


def test_coco_round_trip(tmp_path):
    from cnnlab.data.coco import ImageRecord

    p = _png(tmp_path / "x" / "images" / "0.png")
    masks = torch.zeros(2, 8, 10, dtype=torch.uint8)
    masks[0, 1:3, 1:4] = 1
    masks[1, 4:8, 5:10] = 1
    target = {"boxes": torch.tensor([[1.0, 1, 4, 3], [5, 4, 10, 8]]), "labels": torch.tensor([1, 0]), "masks": masks}
    write_coco_instances(tmp_path / "x" / "annotations.json", [ImageRecord(1, "images/0.png", p, 10, 8)], [target],
                         ["a", "b"])
    t = read_coco(tmp_path / "x").target(0)
    assert torch.equal(t["boxes"], target["boxes"]) and torch.equal(t["labels"], target["labels"])
    assert torch.equal(t["masks"], masks) and t["area"].tolist() == [6, 20]


@pytest.mark.parametrize("text, words", [
    ("{", "not valid JSON"), ("[]", "JSON object"), ('{"images": []}', "'annotations'"),
    ('{"images": [{"id": 1, "file_name": "missing.png"}], "annotations": []}', "not found"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 5, "category_id": 1}], '
     '"categories": [{"id": 1}]}', "not in 'images'"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "category_id": 2, "bbox": [0,0,1,1]}],'
     ' "categories": [{"id": 1}]}', "category_id 2"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0,0,-1,1]}],'
     ' "categories": [{"id": 1}]}', "negative"),
])
def test_coco_bad_files(tmp_path, text, words):
    _png(tmp_path / "a.png")
    (tmp_path / "annotations.json").write_text(text)
    with pytest.raises(DataError, match=words):
        read_coco(tmp_path / "annotations.json")


# ---------------------------------------------------------------------------- VOC
VOC_XML = """<annotation><filename>{name}.jpg</filename><size><width>10</width><height>8</height><depth>3</depth></size>
<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>4</xmax><ymax>6</ymax></bndbox></object>
<object><name>dog</name><bndbox><xmin>6</xmin><ymin>1</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object>
</annotation>"""


def test_voc_written_by_someone_else(tmp_path):
    for name in ("2007_000001", "2007_000002"):
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(_png(tmp_path / "JPEGImages" / f"{name}.jpg"))
        (tmp_path / "Annotations").mkdir(exist_ok=True)
        (tmp_path / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name))
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("2007_000001\n")
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("2007_000002  1\n")
    sem = np.zeros((8, 10), np.uint8)
    sem[1:6, 0:4] = 8  # VOC's index of "cat"
    sem[0, :] = 255
    write_palette_png(tmp_path / "SegmentationClass" / "2007_000001.png", sem)
    ds = read_voc(tmp_path, "train")
    assert ds.classes[7] == "cat" and len(ds.classes) == 20  # every name is a VOC class: VOC's 20
    t = ds.target(0)
    assert t["boxes"].tolist() == [[0, 1, 4, 6], [5, 0, 10, 8]]  # 1-based inclusive -> 0-based edges
    assert t["labels"].tolist() == [7, 11] and t["difficult"].tolist() == [1, 0]
    assert t["semantic"][0].eq(255).all() and t["semantic"][2, 1] == 8
    assert len(read_voc(tmp_path, "val")) == 1
    rgb = tmp_path / "rgb.png"
    from cnnlab.data.voc import voc_colormap

    Image.fromarray(voc_colormap()[sem]).save(rgb)  # an RGB-saved mask maps back through the colour map
    assert np.array_equal(read_palette_png(rgb), sem)
    (tmp_path / "Annotations" / "2007_000001.xml").write_text("<annotation><size><width>x</width></size></annotation>")
    with pytest.raises(DataError, match="width"):
        read_voc(tmp_path, "train")


# ---------------------------------------------------------------------------- YOLO
def test_yolo_ultralytics_layout(tmp_path):
    _png(tmp_path / "images" / "train" / "a.png", w=20, h=10)
    _png(tmp_path / "images" / "train" / "b.png", w=20, h=10)  # no label file: no objects
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.5 0.4\n\n0 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5\n")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: person\n  1: 'traffic: light'\n")
    ds = read_yolo(tmp_path, "train")
    assert ds.classes == ["person", "traffic: light"] and len(ds) == 2
    t = ds.target(0)
    assert t["labels"].tolist() == [1, 0]
    assert torch.allclose(t["boxes"], torch.tensor([[5.0, 3, 15, 7], [2, 1, 6, 5]]))
    assert "masks" in t and t["masks"][1].sum() == 16 and t["masks"][0, 3:7, 5:15].all()
    assert len(ds.target(1)["labels"]) == 0


@pytest.mark.parametrize("line, words", [("0 0.5 0.5 0.2", "fields"), ("x 0.5 0.5 0.2 0.2", "integer"),
                                         ("5 0.5 0.5 0.2 0.2", "class 5"), ("0 50 40 20 20", "fractions")])
def test_yolo_bad_lines(tmp_path, line, words):
    _png(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(line + "\n")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=words):
        read_yolo(tmp_path).target(0)


def test_yolo_yaml_subset():
    assert parse_simple_yaml("names: [a, 'b c']\nnc: 2\n") == {"names": ["a", "b c"], "nc": 2}
    assert parse_simple_yaml("names:\n  - x\n  - y\n")["names"] == ["x", "y"]
