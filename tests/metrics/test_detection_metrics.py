import contextlib
import io
import json

import numpy as np
import pytest
import torch

from cnnlab.metrics.detection import DetectionMetrics, coco_eval_json, plot_pr_curves, voc_ap


def _pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.long)}


def _gt(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}


def test_voc_ap_all_point_interpolation():
    # precision 1, 0.5, 2/3 at recall 0.5, 0.5, 1: envelope 1 up to recall 0.5, then 2/3
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert voc_ap(np.array([]), np.array([])) == 0.0
    assert voc_ap(np.array([1.0]), np.array([1.0])) == 1.0


def test_perfect_predictions():
    m = DetectionMetrics(["cat", "dog"])
    t = [_gt([[0, 0, 10, 10], [20, 20, 40, 50]], [0, 1]), _gt([[5, 5, 30, 30]], [1])]
    m.update([_pred(g["boxes"].tolist(), [0.9] * len(g["labels"]), g["labels"].tolist()) for g in t], t)
    out = m.compute()
    for key in ("map", "map50", "map75", "voc_map50", "ap50_cat", "ap50_dog"):
        assert out[key] == pytest.approx(1.0), key
    assert out["num_images"] == 2
    m.reset()
    assert m.compute()["num_images"] == 0


def test_hand_computed_ap():
    # 2 objects in 2 images, 3 detections: TP (0.9), FP (0.8), TP (0.7)
    m = DetectionMetrics(["thing"])
    m.update([_pred([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [0, 0])], [_gt([[0, 0, 10, 10]], [0])])
    m.update([_pred([[20, 20, 30, 30]], [0.7], [0])], [_gt([[20, 20, 30, 30]], [0])])
    out = m.compute()
    assert out["voc_map50"] == pytest.approx(5 / 6) and out["ap50_thing"] == pytest.approx(5 / 6)
    # COCO: 101 recall points, 51 of them (0.00..0.50) at precision 1 and 50 at 2/3
    assert out["map50"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-6)
    assert out["map"] == pytest.approx(out["map50"])  # every true positive has IoU 1


def test_voc_matching_duplicates_and_threshold():
    m = DetectionMetrics(["a"])
    gt = _gt([[0, 0, 10, 10]], [0])
    # duplicate of the same object is a false positive; IoU exactly 0.5 counts (VOC devkit's >=)
    m.update([_pred([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])], [gt])
    m.update([_pred([[0, 0, 10, 5]], [0.7], [0])], [gt])
    curves = m.pr_curves()
    rec, prec = curves["a"]
    assert rec.tolist() == [0.5, 0.5, 1.0] and prec.tolist() == pytest.approx([1, 0.5, 2 / 3])


def _random_case(seed=0, n_images=6, n_classes=3):
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(n_images):
        n = int(rng.integers(0, 5)) if i != 2 else 0  # image 2 has no ground truth
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1)
        labels = rng.integers(0, n_classes, n)
        jitter = boxes + rng.normal(0, 3, boxes.shape)  # imperfect localization
        keep = rng.random(n) < 0.8  # some objects missed
        fp_xy = rng.uniform(0, 80, (2, 2))
        fps = np.concatenate([fp_xy, fp_xy + rng.uniform(5, 40, (2, 2))], 1)
        p_boxes = np.concatenate([jitter[keep], fps])
        p_labels = np.concatenate([labels[keep], rng.integers(0, n_classes, 2)])
        preds.append(_pred(p_boxes.tolist(), rng.random(len(p_boxes)).tolist(), p_labels.tolist()))
        targets.append(_gt(boxes.tolist(), labels.tolist()))
    return preds, targets


def _write_coco_json(tmp_path, preds, targets, n_classes):
    """The oracle's input, written independently of DetectionMetrics: COCO instances + results files."""
    images = [{"id": i + 100, "width": 128, "height": 128, "file_name": f"{i}.png"} for i in range(len(targets))]
    anns, results = [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        for b, c in zip(t["boxes"].tolist(), t["labels"].tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 100, "category_id": c + 7, "bbox": [b[0], b[1], w, h],
                         "area": w * h, "iscrowd": 0})
        for b, s, c in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            results.append({"image_id": i + 100, "category_id": c + 7, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                            "score": s})
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    cats = [{"id": c + 7, "name": f"c{c}"} for c in range(n_classes)]
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path


def _pycocotools_oracle(gt_path, res_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(res_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3]


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_ap_matches_pycocotools_on_files(tmp_path, seed):
    preds, targets = _random_case(seed)
    m = DetectionMetrics(["a", "b", "c"])
    m.update(preds[:3], targets[:3])
    m.update(preds[3:], targets[3:])
    out = m.compute()
    gt_path, res_path = _write_coco_json(tmp_path, preds, targets, 3)
    ref = _pycocotools_oracle(gt_path, res_path)
    assert 0 < out["map"] < 1
    assert [out["map"], out["map50"], out["map75"]] == pytest.approx(list(ref), abs=1e-9)
    from_files = coco_eval_json(gt_path, res_path)
    assert [from_files["map"], from_files["map50"], from_files["map75"]] == pytest.approx(list(ref), abs=1e-9)
    assert from_files["num_images"] == 6
    # VOC all-point AP50 is close to COCO's 101-point AP50, and the mean of the per-class values
    per_class = [v for k, v in out.items() if k.startswith("ap50_")]
    assert out["voc_map50"] == pytest.approx(np.mean(per_class))
    assert abs(out["voc_map50"] - out["map50"]) < 0.05


def test_empty_predictions_give_zeros(tmp_path):
    m = DetectionMetrics(["a"])
    m.update([_pred([], [], [])], [_gt([[0, 0, 10, 10]], [0])])
    out = m.compute()
    assert out["map"] == out["map50"] == out["map75"] == out["voc_map50"] == out["ap50_a"] == 0.0
    gt_path, res_path = _write_coco_json(tmp_path, [_pred([], [], [])], [_gt([[0, 0, 10, 10]], [0])], 1)
    assert coco_eval_json(gt_path, res_path)["map"] == 0.0
    assert DetectionMetrics(["a"]).compute()["map"] == 0.0  # nothing accumulated at all


def test_wrong_class_and_images_without_gt():
    m = DetectionMetrics(["T-shirt/top", "Bag"])
    # right box, wrong class: class 0 gets AP 0; class 1 has no ground truth and is left out
    m.update([_pred([[0, 0, 10, 10]], [0.9], [1])], [_gt([[0, 0, 10, 10]], [0])])
    out = m.compute()
    assert out["map"] == out["map50"] == out["voc_map50"] == out["ap50_t_shirt_top"] == 0.0
    assert "ap50_bag" not in out
    # a false positive on an image without ground truth lowers precision
    m = DetectionMetrics(["a"])
    m.update([_pred([[0, 0, 10, 10]], [0.5], [0]), _pred([[0, 0, 10, 10]], [0.9], [0])],
             [_gt([[0, 0, 10, 10]], [0]), _gt([], [])])
    assert m.compute()["voc_map50"] == pytest.approx(0.5)


def test_pr_plot_is_written(tmp_path):
    preds, targets = _random_case(3)
    m = DetectionMetrics(["a", "b", "c"])
    m.update(preds, targets)
    curves = m.pr_curves()
    assert set(curves) <= {"a", "b", "c"} and curves
    path = tmp_path / "pr.png"
    plot_pr_curves(curves, path, "val")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_are_one_line(tmp_path):
    from cnnlab.errors import DataError, ShapeError

    with pytest.raises(DataError, match="file not found"):
        coco_eval_json(tmp_path / "missing.json", tmp_path / "r.json")
    with pytest.raises(ShapeError, match="label 5 is not a class index"):
        DetectionMetrics(["a"]).update([_pred([[0, 0, 1, 1]], [0.5], [5])], [_gt([], [])])


def _ignoring(gt, boxes, labels):
    return dict(gt, ignore_boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                ignore_labels=torch.tensor(labels, dtype=torch.long))


def test_ignored_regions_are_neither_missed_nor_false_positives():
    """VOC devkit: a detection whose best overlap is a "difficult" object counts for nothing, and a missed
    difficult object costs no recall; COCOeval does the same with crowds (ignored regions go in as crowds)."""
    a, b = [0, 0, 10, 10], [30, 30, 50, 50]
    preds = [_pred([b, a], [0.95, 0.9], [0, 0])]  # the highest score is on the region b
    plain = DetectionMetrics(["cat"])
    plain.update(preds, [_gt([a], [0])])  # b unknown: its detection is a false positive ranked first
    assert plain.compute()["voc_map50"] == pytest.approx(0.5)
    assert plain.compute()["map50"] == pytest.approx(0.5, abs=0.01)
    ignoring = DetectionMetrics(["cat"])
    ignoring.update(preds, [_ignoring(_gt([a], [0]), [b], [0])])
    out = ignoring.compute()
    assert out["voc_map50"] == pytest.approx(1.0) and out["map50"] == pytest.approx(1.0)
    # b missed: no recall lost when ignored, half of it when it is an object
    only_a = [_pred([a], [0.9], [0])]
    ignoring.reset()
    ignoring.update(only_a, [_ignoring(_gt([a], [0]), [b], [0])])
    assert ignoring.compute()["voc_map50"] == pytest.approx(1.0)
    counted = DetectionMetrics(["cat"])
    counted.update(only_a, [_gt([a, b], [0, 0])])
    assert counted.compute()["voc_map50"] == pytest.approx(0.5)
    # an ignored region of another class does not excuse a detection of this one
    other = DetectionMetrics(["cat", "dog"])
    other.update(preds, [_ignoring(_gt([a], [0]), [b], [1])])
    assert other.compute()["voc_map50"] == pytest.approx(0.5)
