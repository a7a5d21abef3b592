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
    with pytest.raises(DataError, match=f"image for '{names[0]}' not found"):
        find_detection_splits(str(tmp_path))
