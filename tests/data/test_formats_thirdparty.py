"""The readers on datasets written the way other tools write them (pycocotools users, CVAT, Roboflow,
Label Studio, LabelImg, Ultralytics), not the way cnnlab's own scene generator does.

Every fixture is tiny and written here; each test names the tool habit it reproduces.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.detection import find_detection_splits, load_detection_set
from cnnlab.errors import DataError

W, H = 32, 24


def _jpg(path, w=W, h=H, fmt="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((h, w, 3), 90, np.uint8)
    a[4:12, 6:20] = (200, 40, 40)
    Image.fromarray(a).save(path, format=fmt)
    return path


# ---------------------------------------------------------------------------- Pascal VOC
VOC_OBJECTS = """<object><name>person</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
  <bndbox><xmin>6.5</xmin><ymin>5</ymin><xmax>20</xmax><ymax>12.5</ymax></bndbox>
  <part><name>head</name><bndbox><xmin>7</xmin><ymin>5</ymin><xmax>9</xmax><ymax>7</ymax></bndbox></part>
</object>"""


def _voc(root, sizes, exts):
    """LabelImg / VOC2012-style XML: float coordinates, <part> children, <size> as given per image."""
    names = [f"2008_{i:06d}" for i in range(len(sizes))]
    for n, size, ext in zip(names, sizes, exts):
        _jpg(root / "JPEGImages" / f"{n}{ext}")
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{n}.xml").write_text(
            f"<annotation><folder>VOC2012</folder><filename>{n}.jpg</filename>{size}<segmented>0</segmented>"
            f"{VOC_OBJECTS}</annotation>")
    return names


def test_voc_without_size_reads_it_from_the_image(tmp_path):
    """Bug fixed: a missing <size> (or 0 x 0) stopped the run; the image's own size is used instead."""
    sizes = ["", "<size><width>0</width><height>0</height><depth>3</depth></size>",
             f"<size><width>{W}</width><height>{H}</height></size>"]
    _voc(tmp_path, sizes, [".jpg"] * 3)
    src = find_detection_splits(str(tmp_path))
    recs = src.splits["train"]
    assert [(r.width, r.height) for r in recs] == [(W, H)] * 3
    # 1-based inclusive VOC pixels -> 0-based edges, floats kept; <part> boxes are not objects
    assert all(r.boxes.tolist() == [[5.5, 4.0, 20.0, 12.5]] for r in recs)
    assert src.classes[src.splits["train"][0].labels.item()] == "person"


def test_voc_upper_case_and_jpeg_extensions(tmp_path):
    """Bug fixed: JPEGImages/x.JPG (camera / Windows exports) was not found when the XML said x.jpg."""
    names = _voc(tmp_path, [f"<size><width>{W}</width><height>{H}</height></size>"] * 3, [".JPG", ".jpeg", ".Jpeg"])
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "trainval.txt").write_text("\r\n".join(names) + "\r\n")  # CRLF, no train.txt: trainval is train
    (main / "person_trainval.txt").write_text("".join(f"{n}  1\n" for n in names))  # per-class lists are ignored
    src = find_detection_splits(str(tmp_path))
    assert [r.path.rsplit("/", 1)[1] for r in src.splits["train"]] == [f"{n}{e}" for n, e in
                                                                       zip(names, (".JPG", ".jpeg", ".Jpeg"))]
    ds = load_detection_set(src.splits["train"], 16, len(src.classes), source="voc")
    assert ds.images.shape == (3, 3, 16, 16)
    (tmp_path / "JPEGImages" / f"{names[0]}.JPG").unlink()
    recs = find_detection_splits(str(tmp_path)).splits["train"]
    with pytest.raises(DataError, match=f"{names[0]}.jpg: image file not found"):
        load_detection_set(recs, 16, len(src.classes), source="voc")


# ---------------------------------------------------------------------------- COCO
def _crowd_rle(compressed: bool):
    """A crowd region (rows 18..23, cols 0..9) as pycocotools writes it: compressed string or counts list."""
    from cnnlab.data.coco import mask_to_rle, rle_encode

    m = np.zeros((H, W), np.uint8)
    m[18:24, 0:10] = 1
    return mask_to_rle(m) if compressed else {"size": [H, W], "counts": rle_encode(m)}


def _coco_json(file_names, compressed=True, extra_cats=()):
    """COCO as pycocotools users / CVAT write it: ids 1, 3, 7, 90 (12 has no annotations), info, licenses,
    attributes, a two-part polygon, a crowd RLE, float boxes, and an image with no annotations."""
    images = [{"id": 100 + i, "file_name": fn, "width": W, "height": H, "license": 1, "coco_url": ""}
              for i, fn in enumerate(file_names)]
    anns = []
    for i in range(len(file_names) - 1):  # the last image has no annotations
        anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": (7, 3, 90)[i % 3], "iscrowd": 0,
                     "bbox": [6.0, 4.0, 14.0, 8.0], "area": 112.0, "attributes": {"occluded": False},
                     "segmentation": [[6, 4, 20, 4, 20, 12, 6, 12], [24, 2, 30, 2, 30, 8]]})
        anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": 1, "iscrowd": 1,
                     "bbox": [0, 18, 10, 6], "area": 60, "segmentation": _crowd_rle(compressed)})
    cats = [{"id": c, "name": n, "supercategory": "thing"} for c, n in
            ((1, "person"), (3, "car"), (7, "train"), (90, "toothbrush"), (12, "unused"), *extra_cats)]
    return {"info": {"year": 2017, "version": "1.0"}, "licenses": [{"id": 1, "name": "CC"}], "images": images,
            "annotations": anns, "categories": cats}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_coco_official_layout_ids_crowd_polygons(tmp_path):
    """annotations/instances_{train,val}2017.json + train2017/, val2017/: labels follow the sorted category ids,
    crowd regions are never objects, a two-part polygon is one mask, an unannotated image has no boxes."""
    names = [f"{i:012d}.jpg" for i in range(4)]
    for split, compressed in (("train", True), ("val", False)):
        for n in names:
            _jpg(tmp_path / f"{split}2017" / n)
        _write(tmp_path / "annotations" / f"instances_{split}2017.json", _coco_json(names, compressed))
    src = find_detection_splits(str(tmp_path))
    assert src.format == "coco" and set(src.splits) == {"train", "val"}
    assert src.classes == ["person", "car", "train", "unused", "toothbrush"]  # ids 1, 3, 7, 12, 90
    assert src.category_ids == [1, 3, 7, 12, 90]
    for split in ("train", "val"):
        recs = src.splits[split]
        assert [r.labels.tolist() for r in recs] == [[2], [1], [4], []]  # 7 -> train, 3 -> car, 90 -> toothbrush
        assert recs[0].boxes.tolist() == [[6.0, 4.0, 20.0, 12.0]]  # the crowd box (label 0) is not an object
        ds = load_detection_set(recs, W, len(src.classes), source=split, with_masks=True)  # S = W: x kept
        m = ds.masks[0][0]  # (S, S): rows scaled by S / H
        assert m[:, 6:20].any() and m[:, 24:30].any() and not m[:, 21:23].any()  # both parts, nothing between
    from cnnlab.data.masks import coco_records

    records, classes = coco_records(tmp_path)
    assert classes == src.classes
    for split in ("train", "val"):
        sem = records[split][0].read_mask()  # (H, W): 0 background, k + 1 = classes[k], 255 = crowd
        assert (sem[18:24, 0:10] == 255).all() and sem[8, 10] == 3 and sem[0, 0] == 0


def test_coco_roboflow_layout(tmp_path):
    """Bug fixed: Roboflow's export (train/ valid/ test/ each with _annotations.coco.json and the images, plus an
    unused category 0 for the project) was 'not a detection folder'."""
    names = ["a_jpg.rf.123.jpg", "b_jpg.rf.456.jpg", "c.jpg"]
    for folder in ("train", "valid", "test"):
        for n in names:
            _jpg(tmp_path / folder / n)
        _write(tmp_path / folder / "_annotations.coco.json", _coco_json(names, extra_cats=((0, "objects"),)))
    src = find_detection_splits(str(tmp_path))
    assert set(src.splits) == {"train", "val", "test"} and src.classes[0] == "objects"
    assert [r.labels.tolist() for r in src.splits["val"]] == [[3], [2], []]  # 7 -> index 3 after ids 0, 1, 3
    from cnnlab.data.masks import detect_layout
    from cnnlab.data.single_object import find_split_files

    assert detect_layout(tmp_path) == "coco" and set(find_split_files(str(tmp_path))) == {"train", "val", "test"}


def test_coco_cvat_and_label_studio_exports(tmp_path):
    """Bugs fixed: CVAT's annotations/instances_default.json + images/ was not recognized; Label Studio's
    file_name '/data/upload/1/x.jpg' (and Windows 'images\\\\x.jpg') was not found beside the file."""
    names = ["x.jpg", "y.jpg", "z.jpg"]
    for n in names:
        _jpg(tmp_path / "cvat" / "images" / n)
        _jpg(tmp_path / "ls" / "images" / n)
    _write(tmp_path / "cvat" / "annotations" / "instances_default.json", _coco_json(names))
    src = find_detection_splits(str(tmp_path / "cvat"))
    assert list(src.splits) == ["train"] and len(src.splits["train"]) == 3
    _write(tmp_path / "ls" / "result.json", _coco_json(["/data/upload/1/x.jpg", "images\\y.jpg", "z.jpg"]))
    recs = find_detection_splits(str(tmp_path / "ls" / "result.json")).splits["train"]
    assert [r.path for r in recs] == [str(tmp_path / "ls" / "images" / n) for n in names]
    _write(tmp_path / "ls" / "result.json", _coco_json(["/data/upload/1/missing.jpg"]))
    with pytest.raises(DataError, match="missing.jpg' not found; looked in .*fix file_name"):
        find_detection_splits(str(tmp_path / "ls" / "result.json"))


# ---------------------------------------------------------------------------- YOLO
BOX_LINE = "0 0.40625 0.333333 0.4375 0.333333\n"  # cx cy w h: the box [6, 4, 20, 12] in a 32 x 24 image
POLY_LINE = "1 0.1875 0.166667 0.625 0.166667 0.625 0.5 0.1875 0.5\n"  # a segment polygon: the same square


def _yolo_split(folder_images, folder_labels, n=4):
    """Image 0: a box line, 1: a polygon line, 2: an empty label file, 3: no label file (Ultralytics habits)."""
    for i in range(n):
        _jpg(folder_images / f"im{i}.jpg")
        folder_labels.mkdir(parents=True, exist_ok=True)
        if i < 3:
            (folder_labels / f"im{i}.txt").write_text([BOX_LINE, POLY_LINE, ""][i])


@pytest.mark.parametrize("yaml", [
    "path: coco8  # dataset root dir\ntrain: images/train\nval: images/val\ntest:  # optional\n\nnames:\n  0: car\n  1: person\n",
    "path: /somewhere/else/on/another/machine\ntrain: images/train\nval: images/val\nnc: 2\nnames: ['car', 'person']\n",
    "path: .\ntrain: [images/train]\nval: images/val\nnames:\n  - car\n  - person\n",
])
def test_yolo_ultralytics_yaml_with_a_stale_path(tmp_path, yaml):
    """Bug fixed: a data.yaml copied with its dataset keeps `path:` pointing elsewhere (`coco8`, another machine):
    the folders are then read relative to the yaml itself, as before when there is no `path:`."""
    for split in ("train", "val"):
        _yolo_split(tmp_path / "images" / split, tmp_path / "labels" / split)
    (tmp_path / "data.yaml").write_text(yaml)
    src = find_detection_splits(str(tmp_path))
    assert src.format == "yolo" and src.classes == ["car", "person"] and set(src.splits) == {"train", "val"}
    recs = src.splits["train"]
    assert [r.labels.tolist() for r in recs] == [[0], [1], [], []]
    assert torch.allclose(recs[0].boxes, torch.tensor([[6.0, 4.0, 20.0, 12.0]]), atol=1e-4)
    assert torch.allclose(recs[1].boxes, torch.tensor([[6.0, 4.0, 20.0, 12.0]]), atol=1e-4)  # polygon's extent


def test_yolo_roboflow_export(tmp_path):
    """Bug fixed: Roboflow's YOLO export writes `train: ../train/images`, `val: ../valid/images` beside train/ and
    valid/; the folders were looked for one level too high ('image folder not found')."""
    for folder in ("train", "valid", "test"):
        _yolo_split(tmp_path / folder / "images", tmp_path / folder / "labels", n=3)
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\nnames: ['car', 'person']\n\n"
        "roboflow:\n  workspace: w\n  project: p\n  version: 1\n  license: CC BY 4.0\n  url: https://universe.x/w/p/1\n")
    src = find_detection_splits(str(tmp_path))
    assert set(src.splits) == {"train", "val", "test"}
    assert [r.labels.tolist() for r in src.splits["val"]] == [[0], [1], []]
    assert src.splits["val"][0].path == str(tmp_path / "valid" / "images" / "im0.jpg")
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: ['car', 'person']\n")  # an image-list file
    with pytest.raises(DataError, match="'train: train.txt' is a list of image paths.*set train: to the folder"):
        find_detection_splits(str(tmp_path))
    (tmp_path / "data.yaml").write_text("train: ../elsewhere/images\nnames: ['car', 'person']\n")
    with pytest.raises(DataError, match="'train: ../elsewhere/images' is not a folder"):
        find_detection_splits(str(tmp_path))


def test_image_ids_stay_distinct_when_file_names_mix_numbers_and_words(tmp_path):
    """Bug fixed: image ids came from the file name when it was a number, else from the position, so
    '1.jpg' and the second file 'b.jpg' both got id 1 (two images merged in a COCO results file)."""
    from cnnlab.data.voc import read_voc
    from cnnlab.data.yolo import read_yolo

    for n in ("1", "b", "c"):
        _jpg(tmp_path / "y" / "images" / "train" / f"{n}.jpg")
    assert [im.id for im in read_yolo(tmp_path / "y").images] == [0, 1, 2]
    for n in ("000005", "000007"):
        _jpg(tmp_path / "n" / "images" / "train" / f"{n}.jpg")
    assert [im.id for im in read_yolo(tmp_path / "n").images] == [5, 7]  # COCO-style numbered names keep theirs
    names = _voc(tmp_path / "v", [""] * 3, [".jpg"] * 3)
    for k, n in enumerate(("000001", "2008_000009")):  # a VOC2007 and a VOC2012 name side by side
        (tmp_path / "v" / "Annotations" / f"{names[k]}.xml").rename(tmp_path / "v" / "Annotations" / f"{n}.xml")
        (tmp_path / "v" / "JPEGImages" / f"{names[k]}.jpg").rename(tmp_path / "v" / "JPEGImages" / f"{n}.jpg")
    ids = [im.id for im in read_voc(tmp_path / "v").images]
    assert sorted(ids) == [0, 1, 2]  # before: 000001 -> 1, and the 2nd file by position -> 1 too


def test_coco_string_ids_box_only_segmentations_and_boxes_from_polygons(tmp_path):
    """Bugs fixed: string image ids ("img-1", some exporters) crashed with a ValueError traceback; an annotation
    with a polygon but no bbox was refused as 'bbox must be 4 numbers'; `segmentation: [[]]` (box-only objects
    in CVAT / Label Studio exports) gave Mask R-CNN an empty mask instead of counting as no mask."""
    for n in ("a", "b"):
        _jpg(tmp_path / "images" / f"{n}.jpg")
    data = {"images": [{"id": "img-1", "file_name": "a.jpg", "width": W, "height": H},
                       {"id": "img-2", "file_name": "b.jpg", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": "img-1", "category_id": 1, "segmentation": [[2, 2, 10, 2, 10, 6, 2, 6]]},
                            {"id": 2, "image_id": "img-2", "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[]]}]}
    _write(tmp_path / "result.json", data)
    recs = find_detection_splits(str(tmp_path / "result.json")).splits["train"]
    assert [r.image_id for r in recs] == ["img-1", "img-2"]  # kept, so results files match the user's ids
    assert recs[0].boxes.tolist() == [[2.0, 2.0, 10.0, 6.0]]  # the polygon's pixels' extent
    assert recs[1].segmentations == [None]
    ds = load_detection_set(recs, W, 1, source="coco")
    assert ds.image_ids == ["img-1", "img-2"]
    data["annotations"][0].update(segmentation=[], bbox=[2, 2, 8, 4])
    _write(tmp_path / "result.json", data)
    with pytest.raises(DataError, match="no instance masks"):  # box-only data: one line, not empty masks
        load_detection_set(find_detection_splits(str(tmp_path / "result.json")).splits["train"], W, 1,
                           source="coco", with_masks=True)


def test_voc_segmentation_void_border_stays_ignored(tmp_path):
    """SegmentationClass/*.png as VOC ships them (palette PNG, 255 'void' outlines) and as some tools re-save
    them (RGB in VOC's colours), with .JPG photos: void stays 255 (never background) after resizing."""
    from cnnlab.data.masks import load_mask_set, voc_records
    from cnnlab.data.voc import voc_colormap, write_palette_png

    sem = np.zeros((H, W), np.uint8)
    sem[4:12, 6:20] = 15  # person (VOC index 15)
    sem[3, 5:21] = sem[12, 5:21] = 255  # the void outline
    for k, n in enumerate(("2007_000032", "2007_000033")):
        _jpg(tmp_path / "JPEGImages" / f"{n}.JPG")
        if k == 0:
            write_palette_png(tmp_path / "SegmentationClass" / f"{n}.png", sem)
        else:
            Image.fromarray(voc_colormap()[sem]).save(tmp_path / "SegmentationClass" / f"{n}.png")  # RGB
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\r\n2007_000033\r\n")
    records, classes = voc_records(tmp_path)
    assert len(classes) == 20 and classes[14] == "person"  # label k + 1 = classes[k]
    ms = load_mask_set(records["train"], 2 * W, 21, "voc")  # (2, 64, 64): rows x 64/24, cols x 2
    for m in ms.masks:
        assert (m == 255).sum() > 0 and set(m.unique().tolist()) == {0, 15, 255}
        assert m[9, 20] == 255 and m[20, 20] == 15 and m[0, 0] == 0  # row 3 -> rows 8..10, row 7 -> 18..21


def test_coco_person_keypoints_official_layout(tmp_path):
    """Fixed: landmarks read only <split>/annotations.json; COCO's annotations/person_keypoints_train2017.json
    (beside instances_train2017.json, which has no keypoints) is now the file it picks; crowds are dropped."""
    from cnnlab.data.coco import read_object_records
    from cnnlab.data.single_object import find_split_files

    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    _jpg(tmp_path / "train2017" / "000000000001.jpg")
    person = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [6, 4, 14, 8], "iscrowd": 0, "num_keypoints": 4,
              "keypoints": [10, 6, 2, 9, 5, 2, 12, 5, 1, 0, 0, 0, 14, 6, 2]}
    crowd = {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 30, 20], "iscrowd": 1, "num_keypoints": 0,
             "keypoints": [0] * 15, "segmentation": {"size": [H, W], "counts": [0, H * W]}}
    images = [{"id": 1, "file_name": "000000000001.jpg", "width": W, "height": H}]
    _write(tmp_path / "annotations" / "instances_train2017.json",
           {"images": images, "annotations": [person, crowd], "categories": [{"id": 1, "name": "person"}]})
    _write(tmp_path / "annotations" / "person_keypoints_train2017.json",
           {"images": images, "annotations": [person, crowd],
            "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": [[1, 2], [1, 3]]}]})
    files = find_split_files(str(tmp_path), "person_keypoints")
    assert files == {"train": tmp_path / "annotations" / "person_keypoints_train2017.json"}
    objs = read_object_records(files["train"], keypoints=True)
    assert objs.keypoint_names == names and objs.flip_pairs == [(1, 2), (3, 4)]
    (rec,) = objs.records
    assert rec.boxes.tolist() == [[6, 4, 20, 12]] and rec.keypoints[0, 2].tolist() == [12, 5, 1]
    assert find_split_files(str(tmp_path)) == {"train": tmp_path / "annotations" / "instances_train2017.json"}


def test_yolo_pose_dataset_is_refused_not_misread(tmp_path):
    """Fixed: an Ultralytics pose dataset's lines (class cx cy w h + 5 x 2 keypoint values = 14 numbers) were
    read as polygons, silently giving wrong boxes; its kpt_shape now gets one line."""
    _yolo_split(tmp_path / "images" / "train", tmp_path / "labels" / "train", n=1)
    (tmp_path / "labels" / "train" / "im0.txt").write_text("0 0.5 0.5 0.4 0.4 " + "0.5 0.5 " * 5 + "\n")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nkpt_shape: [5, 2]\nnames:\n  0: face\n")
    with pytest.raises(DataError, match="kpt_shape, an Ultralytics pose dataset"):
        find_detection_splits(str(tmp_path))


def test_yolo_labelimg_folder(tmp_path):
    """Fixed: LabelImg's YOLO mode saves a.jpg, a.txt and classes.txt in one folder; it was 'no images'."""
    _yolo_split(tmp_path, tmp_path, n=4)  # images and labels side by side
    (tmp_path / "classes.txt").write_text("car\nperson\n")
    src = find_detection_splits(str(tmp_path))
    assert src.format == "yolo" and src.classes == ["car", "person"]
    assert [r.labels.tolist() for r in src.splits["train"]] == [[0], [1], [], []]


def test_coco_file_name_with_a_sub_folder(tmp_path):
    """file_name 'images/train/x.jpg' (relative to the dataset root) from train/annotations.json."""
    _jpg(tmp_path / "images" / "train" / "x.jpg")
    _write(tmp_path / "train" / "annotations.json", _coco_json(["images/train/x.jpg"]))
    (rec,) = find_detection_splits(str(tmp_path)).splits["train"]
    assert rec.path == str(tmp_path / "images" / "train" / "x.jpg") and rec.labels.tolist() == []


# ---------------------------------------------------------------------------- through the CLI: one line, no traceback
@pytest.mark.parametrize("task, make, needle", [
    ("detect", lambda d: (d / "data.yaml").write_text("train: train.txt\nnames: [a]\n"), "is a list of image paths"),
    ("segment", lambda d: _write(d / "annotations.json", {"images": [{"id": 1, "file_name": "/x/gone.jpg"}],
                                                          "annotations": []}), "gone.jpg' not found"),
    ("localize", lambda d: _write(d / "annotations" / "instances_default.json",  # bug fixed: a ValueError traceback
                                  {"images": [], "annotations": [], "categories": [{"id": "x", "name": "x"}]}),
     "category id 'x' is not an integer"),
    ("charlm", lambda d: (d / "t.txt").write_bytes("caf\xe9 ".encode("latin-1") * 50), "iconv -f cp1252"),
])
def test_cli_names_the_file_and_the_fix(tmp_path, capsys, task, make, needle):
    from cnnlab.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    make(data)
    target = data / "t.txt" if task == "charlm" else data
    code = main(["train", task, "--data", str(target), "--out", str(tmp_path / "r"), "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_voc_flags_as_words_and_yolo_nc_without_names(tmp_path):
    """Fixed: <truncated>Unspecified</truncated> raised a ValueError traceback; `nc: 3` without `names`
    numbered only the classes seen in train's labels (a val label of class 2 was then 'outside 0..1')."""
    from cnnlab.data.voc import read_voc_xml

    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><object><name>cat</name><truncated>Unspecified</truncated><difficult>true</difficult>"
                   "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")
    (o,) = read_voc_xml(xml)[1]
    assert (o.truncated, o.difficult) == (0, 1)
    _yolo_split(tmp_path / "y" / "images" / "train", tmp_path / "y" / "labels" / "train", n=1)
    _yolo_split(tmp_path / "y" / "images" / "val", tmp_path / "y" / "labels" / "val", n=1)
    (tmp_path / "y" / "labels" / "val" / "im0.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    (tmp_path / "y" / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 3\n")
    src = find_detection_splits(str(tmp_path / "y"))
    assert src.classes == ["0", "1", "2"] and src.splits["val"][0].labels.tolist() == [2]


# ---------------------------------------------------------------------------- image folders (classify, verify)
def test_image_folder_unzipped_on_a_mac(tmp_path):
    """Fixed: a zip made on a Mac unpacks a __MACOSX/ folder of '._' resource forks next to the classes; it
    was taken for a class ('class folder holds no images'). .DS_Store, Thumbs.db, '._x.JPG' are skipped."""
    from cnnlab.data.folders import list_class_files

    for cls in ("cat", "dog"):
        _jpg(tmp_path / cls / "a.JPG")
        Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / cls / "grey.png")
        (tmp_path / cls / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (tmp_path / cls / "._a.JPG").write_bytes(b"\x00\x05\x16\x07")
        (tmp_path / cls / "Thumbs.db").write_bytes(bytes(8))
        (tmp_path / "__MACOSX" / cls).mkdir(parents=True)
        (tmp_path / "__MACOSX" / cls / "._a.JPG").write_bytes(b"\x00\x05\x16\x07")
    classes, files = list_class_files(tmp_path)
    assert classes == ["cat", "dog"] and files.labels == [0, 0, 1, 1]
    assert sorted(p.rsplit("/", 1)[1] for p in files.paths) == ["a.JPG", "a.JPG", "grey.png", "grey.png"]


def test_yolo_segment_lines_give_mask_rcnn_its_masks(tmp_path):
    """Fixed: an Ultralytics -seg dataset's polygons were dropped for Mask R-CNN ('no instance masks'); and a
    val: folder that data.yaml names but that does not exist was silently replaced by a carved split."""
    _yolo_split(tmp_path / "images" / "train", tmp_path / "labels" / "train", n=2)  # a box line, a polygon line
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [car, person]\n")
    recs = find_detection_splits(str(tmp_path)).splits["train"]
    assert recs[0].segmentations == [None] and len(recs[1].segmentations[0][0]) == 8  # [[x1, y1, ... x4, y4]]
    with pytest.raises(DataError, match="no instance masks"):  # box lines only: one line, not box-shaped masks
        load_detection_set(recs[:1], W, 2, source="yolo", with_masks=True)
    ds = load_detection_set(recs, W, 2, source="yolo", with_masks=True)
    m = ds.masks[1][0]  # the polygon [6, 4]-[20, 12] in a 32 x 24 image, rows scaled by 32/24
    assert m[:, 6:20].any(0).all() and not m[:, :6].any() and not m[:, 20:].any()
    assert ds.masks[0][0][:, 6:20].any(0).all()  # the box-only object: its box, filled
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/valid\nnames: [car, person]\n")
    with pytest.raises(DataError, match="'val: images/valid' is not a folder"):
        find_detection_splits(str(tmp_path))


def test_coco_listing_an_image_that_was_not_exported(tmp_path):
    """Fixed: one image listed but missing (exports often leave some out) stopped the run even with --skip-bad;
    it now fails where images are decoded, naming the file, and --skip-bad skips it. When no listed image
    exists at all, the error still says where the files were looked for."""
    for n in ("a.jpg", "c.jpg"):
        _jpg(tmp_path / "images" / n)
    _write(tmp_path / "result.json", _coco_json(["a.jpg", "/data/upload/1/b.jpg", "c.jpg"]))
    recs = find_detection_splits(str(tmp_path / "result.json")).splits["train"]
    assert recs[1].path == str(tmp_path / "images" / "b.jpg")
    with pytest.raises(DataError, match=r"images/b.jpg: image file not found"):
        load_detection_set(recs, 16, 5, source="coco")
    skipped = []
    ds = load_detection_set(recs, 16, 5, source="coco", skip_bad=True, skipped=skipped)
    assert len(ds) == 2 and [s[0] for s in skipped] == [str(tmp_path / "images" / "b.jpg")]


def test_voc_xml_whose_image_was_not_copied(tmp_path):
    """Fixed: one XML without its JPEG stopped the run even with --skip-bad; now decoding names the missing
    file and --skip-bad skips it. With no image at all the reader still says where it looked."""
    names = _voc(tmp_path, [f"<size><width>{W}</width><height>{H}</height></size>"] * 3, [".jpg"] * 3)
    (tmp_path / "JPEGImages" / f"{names[1]}.jpg").unlink()
    recs = find_detection_splits(str(tmp_path)).splits["train"]
    with pytest.raises(DataError, match=f"{names[1]}.jpg: image file not found"):
        load_detection_set(recs, 16, 20, source="voc")
    assert len(load_detection_set(recs, 16, 20, source="voc", skip_bad=True)) == 2
    for n in names:
        (tmp_path / "JPEGImages" / f"{n}.jpg").unlink(missing_ok=True)
    with pytest.raises(DataError, match=f"image for '{names[0]}' not found"):
        find_detection_splits(str(tmp_path))


def test_coco_fiftyone_export(tmp_path):
    """Fixed: FiftyOne's COCO export (labels.json with the images in data/) was not recognized."""
    for n in ("a.jpg", "b.jpg"):
        _jpg(tmp_path / "data" / n)
    _write(tmp_path / "labels.json", _coco_json(["a.jpg", "b.jpg"]))
    recs = find_detection_splits(str(tmp_path)).splits["train"]
    assert [r.path for r in recs] == [str(tmp_path / "data" / n) for n in ("a.jpg", "b.jpg")]
    assert [r.labels.tolist() for r in recs] == [[2], []]


def test_image_folder_of_tiffs(tmp_path):
    """Fixed: .tif / .tiff files (scanners, microscopes; 16-bit grey, CMYK) were skipped as 'other files'
    although the decoder reads them; a folder of them was 'class folder holds no images'."""
    from cnnlab.data.folders import list_class_files
    from cnnlab.data.images import load_image

    for k, cls in enumerate(("cells", "debris")):
        (tmp_path / cls).mkdir()
        v16 = np.full((H, W), 1000 + 60000 * k, np.uint16)
        Image.fromarray(v16).save(tmp_path / cls / "a.TIF")
        Image.new("CMYK", (W, H), (0, 255, 255, 0)).save(tmp_path / cls / "b.tiff")
    classes, files = list_class_files(tmp_path)
    assert classes == ["cells", "debris"] and files.labels == [0, 0, 1, 1]
    grey = load_image(files.paths[2], channels=1)  # debris/a.TIF: 61000 of 65535 -> 237 of 255
    assert grey.shape == (1, H, W) and int(grey[0, 0, 0]) == round(61000 * 255 / 65535)
    assert load_image(files.paths[1]).shape == (3, H, W)  # CMYK -> RGB

