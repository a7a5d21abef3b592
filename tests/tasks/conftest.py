"""Tiny COCO folders written by the tests: one square or disc per image, with its box and corners."""

import json

import numpy as np
import pytest
from PIL import Image


def write_coco_objects(root, n_train=96, n_val=32, size=32, seed=0, keypoints=False, n_test=0):
    """root/{train,val[,test]}/annotations.json + images/: one bright square (class 0) or disc (class 1) on noise."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        if n == 0:
            continue
        folder = root / split
        (folder / "images").mkdir(parents=True)
        images, anns = [], []
        for i in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            s = int(rng.integers(size // 4, size // 2))
            x0, y0 = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
            label = int(rng.integers(0, 2))
            yy, xx = np.mgrid[:size, :size]
            if label == 0:
                inside = (xx >= x0) & (xx < x0 + s) & (yy >= y0) & (yy < y0 + s)
            else:
                inside = (xx + 0.5 - (x0 + s / 2)) ** 2 + (yy + 0.5 - (y0 + s / 2)) ** 2 <= (s / 2) ** 2
            img[inside] = (230, 200, 40) if label == 0 else (40, 200, 230)
            name = f"images/{i:04d}.png"
            Image.fromarray(img).save(folder / name)
            images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
            ann = {"id": i + 1, "image_id": i + 1, "category_id": 7 + label, "bbox": [x0, y0, s, s], "area": s * s,
                   "iscrowd": 0}
            if keypoints:
                ann["keypoints"] = [x0, y0, 2, x0 + s, y0, 2, x0 + s, y0 + s, 2, x0, y0 + s, 2]
                ann["num_keypoints"] = 4
            anns.append(ann)
        cats = [{"id": 7, "name": "square"}, {"id": 8, "name": "disc"}]
        if keypoints:
            for c in cats:
                c["keypoints"] = ["top_left", "top_right", "bottom_right", "bottom_left"]
                c["skeleton"] = [[1, 2], [2, 3], [3, 4], [4, 1]]
        (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture
def coco_objects(tmp_path):
    return write_coco_objects(tmp_path / "objects", n_train=320, n_test=16)


@pytest.fixture
def coco_keypoints(tmp_path):
    return write_coco_objects(tmp_path / "points", n_train=320, keypoints=True)
