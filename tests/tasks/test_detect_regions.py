"""The region-based detectors through `cnnlab train detect`: a tiny end-to-end run of each (R-CNN, Fast
R-CNN, Faster R-CNN, Mask R-CNN), their logged losses, evaluation of a saved run, instance masks read
from COCO and written back (predict --coco-json), mask AP, drawn masks, and the errors users meet."""

import csv
import json

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.data import detection as D
from cnnlab.data.scenes import make_scenes

TINY = ["--epochs", "1", "--batch-size", "6", "--warmup-epochs", "0", "--quiet", "--no-tensorboard", "--threads", "2",
        "--backbone", "resnet20", "--proposals", "40", "--svm-images", "8", "--warp", "16"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """18 train / 6 val / 6 test 48-px scenes of 1-2 shapes with instance masks (COCO RLE)."""
    out = tmp_path_factory.mktemp("regions") / "scenes"
    return make_scenes("segment", 18, out, objects="shapes", size=48, min_size=14, max_size=24, max_objects=2,
                       n_val=6, n_test=6, clutter=0, formats=("coco",), seed=5)


def test_instance_masks_are_read_with_the_boxes(scenes):
    src = D.find_detection_splits(str(scenes))
    ds = D.load_detection_set(src.splits["train"], 32, len(src.classes), with_masks=True)
    item = ds[0]
    m, b = item["targets"]["masks"], item["targets"]["boxes"]
    assert m.dtype == torch.uint8 and m.shape == (len(b), 32, 32)
    for mask, box in zip(m, b):  # each mask lies in its (resized) box, give or take the resampling
        ys, xs = mask.nonzero(as_tuple=True)
        assert xs.min() >= box[0] - 1.5 and xs.max() + 1 <= box[2] + 1.5 and ys.min() >= box[1] - 1.5


@pytest.mark.parametrize("model", ["faster_rcnn", "fast_rcnn", "rcnn"])
def test_each_region_detector_trains_and_evaluates(scenes, tmp_path, model, capsys):
    out = tmp_path / model
    assert main(["train", "detect", "--data", str(scenes), "--model", model, "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"map", "map50", "val_map50"} <= set(summary)
    with open(out / "metrics.csv") as f:
        columns = set(next(csv.reader(f)))
    losses = {"faster_rcnn": {"rpn_objectness", "rpn_box", "classifier", "box_reg"}, "fast_rcnn": {"classifier", "box_reg"},
              "rcnn": {"classifier"}}[model]
    assert {f"train_{k}" for k in losses} <= columns
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 1 and config["augment"] == ("scale+color" if model == "faster_rcnn" else "color")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0  # from the checkpoint alone (R-CNN: its saved SVMs)
    m = json.loads(capsys.readouterr().out)
    assert m["map50"] == pytest.approx(summary["map50"], abs=1e-6)


def test_mask_rcnn_masks_in_mask_ap_out_and_drawn(scenes, tmp_path, capsys):
    out = tmp_path / "mask"
    assert main(["train", "detect", "--data", str(scenes), "--model", "mask_rcnn", "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"mask_map", "mask_map50", "val_mask_map50"} <= set(summary)
    with open(out / "metrics.csv") as f:
        assert "train_mask" in next(csv.reader(f))
    res = tmp_path / "res.json"
    assert main(["predict", str(out), "--coco-json", str(res)]) == 0
    rows = json.loads(res.read_text())
    assert rows and all(set(r["segmentation"]) == {"size", "counts"} for r in rows[:5])
    # the run's mask AP, recomputed by pycocotools from the written results and the folder's own file
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from cnnlab.metrics.detection import _quiet

    with _quiet():
        gt = COCO(str(scenes / "test" / "annotations.json"))
        ev = COCOeval(gt, gt.loadRes(str(res)), iouType="segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[1] == pytest.approx(summary["mask_map50"], abs=0.02)
    # drawing: a prediction with a mask is drawn as an overlay
    from cnnlab.tasks.detect_regions import draw_masks, masks_to_rles

    m = torch.zeros(1, 48, 48)
    m[0, 5:20, 5:20] = 1
    rle = masks_to_rles(m)[0]
    det = [{"class": "circle", "score": 0.9, "box": [5, 5, 20, 20], "mask": {"size": [48, 48], "counts": rle["counts"].decode()}}]
    draw_masks(torch.zeros(3, 48, 48, dtype=torch.uint8), det, tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0


def test_mask_rcnn_without_masks_and_moving_proposals_are_refused(tmp_path, capsys):
    out = make_scenes("detect", 8, tmp_path / "boxes", objects="shapes", size=32, min_size=10, max_size=16,
                      max_objects=1, n_val=2, n_test=0, clutter=0, formats=("voc",), seed=1)
    assert main(["train", "detect", "--data", str(out / "voc"), "--model", "mask_rcnn", *TINY]) != 0
    err = capsys.readouterr().err
    assert "no instance masks" in err and "Traceback" not in err
    assert main(["train", "detect", "--data", str(out / "voc"), "--model", "fast_rcnn", "--augment", "scale", *TINY]) != 0
    err = capsys.readouterr().err
    assert "--augment scale" in err and "Traceback" not in err
