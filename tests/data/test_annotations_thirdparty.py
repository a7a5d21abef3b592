"""Annotations and the pixels they refer to, from other tools' files: EXIF-rotated photos, photos resized after
labelling, and the regions the metrics ignore (VOC "difficult" objects, COCO crowds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.detection import find_detection_splits, load_detection_set
from cnnlab.errors import DataError
from tests.data.test_formats_thirdparty import VOC_OBJECTS, H, W, _coco_json, _jpg, _write


def _exif_rotated(path, stored_w, stored_h, bright=None):
    """A phone photo: pixels stored stored_w x stored_h, EXIF orientation 6 (shown turned 90 degrees).
    ``bright``: (x, y, w, h) of a white block in the stored pixels (PNG: exact values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((stored_h, stored_w, 3), 40, np.uint8)
    if bright is not None:
        x, y, w, h = bright
        a[y:y + h, x:x + w] = 255
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif)
    return path


def test_exif_rotated_photo_is_read_in_the_orientation_its_annotation_was_made_on(tmp_path):
    """Bug fixed: boxes were scaled by the decoded (EXIF-upright) size while drawn on the annotation's
    width x height: an EXIF-rotated photo annotated on its stored pixels (pycocotools / torchvision users,
    many exporters) trained on boxes in the wrong place, silently. The annotated size now picks the
    orientation: the stored pixels when they match it, the upright image when it matches (CVAT, browsers)."""
    from cnnlab.data.coco import read_object_records
    from cnnlab.data.single_object import find_split_files, load_single_objects

    _exif_rotated(tmp_path / "images" / "p.png", W, H, bright=(20, 2, 10, 10))  # shown as H x W (24 wide, 32 tall)
    data = {"images": [{"id": 1, "file_name": "p.png", "width": W, "height": H}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 2, 10, 10]}]}
    _write(tmp_path / "annotations.json", data)
    ds = load_detection_set(find_detection_splits(str(tmp_path / "annotations.json")).splits["train"], 32, 1,
                            source="coco")
    x1, y1, x2, y2 = ds.boxes[0][0].round().int().tolist()  # the box, in the loaded 32 x 32 image
    inside, outside = ds.images[0][:, y1 + 2:y2 - 2, x1 + 2:x2 - 2], ds.images[0][:, y2 + 2:, :]
    assert inside.float().mean() > 200 and outside.float().mean() < 60  # the box covers the white block
    records = read_object_records(find_split_files(str(tmp_path))["train"]).records
    obj = load_single_objects(records, 32, "coco")
    assert obj.images.shape[-2:] == (32, 32)

    # annotated upright (as displayed): the upright image, boxes scale with its size
    data["images"][0].update(width=H, height=W)
    data["annotations"][0]["bbox"] = [12, 2, 10, 10]
    _write(tmp_path / "annotations.json", data)
    ds = load_detection_set(find_detection_splits(str(tmp_path / "annotations.json")).splits["train"], 48, 1,
                            source="coco")
    assert torch.allclose(ds.boxes[0], torch.tensor([[24.0, 3.0, 44.0, 18.0]]))  # x * 48/24, y * 48/32


def test_annotation_size_of_another_aspect_ratio_is_refused_and_a_resized_image_is_not(tmp_path):
    _jpg(tmp_path / "images" / "p.jpg")  # W x H = 32 x 24
    data = {"images": [{"id": 1, "file_name": "p.jpg", "width": 40, "height": 40}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 2, 10, 10]}]}
    _write(tmp_path / "annotations.json", data)
    src = find_detection_splits(str(tmp_path / "annotations.json"))
    with pytest.raises(DataError, match=r"says 40x40 but .*p.jpg is 32x24 pixels \(another aspect ratio\)"):
        load_detection_set(src.splits["train"], 16, 1, source="coco")
    skipped = []
    with pytest.raises(DataError, match="no usable images left"):
        load_detection_set(src.splits["train"], 16, 1, skip_bad=True, skipped=skipped, source="coco")
    assert len(skipped) == 1
    # labelled at 64 x 48, the photo shrunk to 32 x 24 afterwards: coordinates scale
    data["images"][0].update(width=64, height=48)
    data["annotations"][0]["bbox"] = [32, 8, 16, 16]
    _write(tmp_path / "annotations.json", data)
    ds = load_detection_set(find_detection_splits(str(tmp_path / "annotations.json")).splits["train"], 64, 1,
                            source="coco")
    assert torch.allclose(ds.boxes[0], torch.tensor([[32.0, 10.6667, 48.0, 32.0]]), atol=1e-3)  # x * 1, y * 64/48


def test_difficult_and_crowd_objects_reach_the_metrics_as_ignored_regions(tmp_path):
    """Found in the audit: VOC "difficult" objects were trained on and counted as ground truth, and detections
    on COCO crowd regions counted as false positives; the devkit and COCOeval ignore both."""
    from cnnlab.data.detection import eval_transform

    difficult = VOC_OBJECTS.replace("<difficult>0</difficult>", "<difficult>1</difficult>").replace(
        "<name>person</name>", "<name>dog</name>")
    (tmp_path / "v" / "Annotations").mkdir(parents=True)
    _jpg(tmp_path / "v" / "JPEGImages" / "a.jpg")
    (tmp_path / "v" / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><size><width>{W}</width><height>{H}</height></size>"
        f"{VOC_OBJECTS}{difficult}</annotation>")
    src = find_detection_splits(str(tmp_path / "v"))
    r = src.splits["train"][0]
    assert [src.classes[k] for k in r.labels] == ["person"] and r.boxes.tolist() == [[5.5, 4.0, 20.0, 12.5]]
    assert [src.classes[k] for k in r.ignore_labels] == ["dog"] and r.ignore_boxes.tolist() == [[5.5, 4.0, 20.0, 12.5]]
    ds = load_detection_set([r], 2 * W, len(src.classes), source="voc")
    ds.transform = eval_transform(lambda x: x)
    t = ds[0]["targets"]
    assert torch.allclose(t["ignore_boxes"], torch.tensor([[11.0, 4.0 * 64 / 24, 40.0, 12.5 * 64 / 24]]))

    names = [f"{i}.jpg" for i in range(2)]
    for n in names:
        _jpg(tmp_path / "c" / "images" / n)
    _write(tmp_path / "c" / "annotations.json", _coco_json(names))
    recs = find_detection_splits(str(tmp_path / "c" / "annotations.json")).splits["train"]
    assert recs[0].ignore_boxes.tolist() == [[0.0, 18.0, 10.0, 24.0]] and recs[0].ignore_labels.tolist() == [0]
    assert recs[1].ignore_boxes.shape == (0, 4)
    plain = load_detection_set(recs[1:], W, 5, source="coco")  # no ignored region anywhere: no extra keys
    plain.transform = eval_transform(lambda x: x)
    assert "ignore_boxes" not in plain[0]["targets"]


def test_crowd_masks_reach_mask_ap_as_ignored_regions(tmp_path):
    """Mask R-CNN's mask AP ignores COCO crowds like box AP: the crowd's RLE reaches the evaluator."""
    from cnnlab.data.detection import eval_transform
    from cnnlab.tasks.detect_regions import mask_ap, masks_to_rles

    names = [f"{i}.jpg" for i in range(2)]
    for n in names:
        _jpg(tmp_path / "images" / n)
    _write(tmp_path / "annotations.json", _coco_json(names))
    recs = find_detection_splits(str(tmp_path / "annotations.json")).splits["train"]
    ds = load_detection_set(recs, W, 5, source="coco", with_masks=True)  # S = W: columns kept, rows x W / H
    ds.transform = eval_transform(lambda x: x)
    t = ds[0]["targets"]
    crowd = t["ignore_masks"]  # the crowd RLE: rows 18-23, columns 0-9 of the 32 x 24 image
    assert crowd.shape == (1, W, W) and crowd[0, :, :10].any() and not crowd[0, :, 12:].any()
    assert "ignore_masks" not in ds[1]["targets"] or len(ds[1]["targets"]["ignore_masks"]) == 0

    obj = torch.zeros(1, 32, 32)
    obj[0, 2:10, 2:10] = 1
    region = torch.zeros(1, 32, 32)
    region[0, 20:30, 20:30] = 1
    pred = {"rles": masks_to_rles(torch.cat([region, obj])), "scores": torch.tensor([0.95, 0.9]),
            "labels": torch.tensor([0, 0])}
    truth = {"rles": masks_to_rles(obj), "labels": torch.tensor([0])}
    assert mask_ap([pred], [truth], 1)["mask_map50"] == pytest.approx(0.5, abs=0.01)  # the region: a false positive
    ignoring = dict(truth, ignore_rles=masks_to_rles(region), ignore_labels=torch.tensor([0]))
    assert mask_ap([pred], [ignoring], 1)["mask_map50"] == pytest.approx(1.0)
