"""mIoU, per-class IoU and pixel accuracy against a confusion matrix counted pixel by pixel in NumPy."""

import numpy as np
import pytest
import torch

from cnnlab.metrics.segmentation import (SegmentationEvaluator, confusion_matrix, iou_per_class, metric_name,
                                         segmentation_scores)


def numpy_scores(pred, true, k):
    cm = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(pred.ravel(), true.ravel()):
        if t != 255:
            cm[t, p] += 1
    ious = []
    for c in range(k):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c].sum() - cm[c, c]
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return cm, float(np.mean(ious)), np.trace(cm) / cm.sum()


def test_scores_match_a_numpy_confusion_matrix():
    rng = np.random.default_rng(0)
    k = 5
    true = rng.integers(0, k, (3, 17, 19))
    true[rng.random(true.shape) < 0.1] = 255  # ignored pixels
    true[true == 3] = 4  # class 3 never occurs in the truth ...
    pred = np.where(rng.random(true.shape) < 0.6, np.where(true == 255, 0, true), rng.integers(0, k, true.shape))
    pred[pred == 2] = 1  # ... and class 2 is never predicted
    cm_np, miou_np, acc_np = numpy_scores(pred, true, k)
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(true), k)
    assert cm.tolist() == cm_np.tolist()
    s = segmentation_scores(cm, ["bg", "a", "b", "c", "d"])
    assert s["miou"] == pytest.approx(miou_np) and s["pixel_acc"] == pytest.approx(acc_np)
    assert s["iou_b"] == 0.0  # true somewhere, never predicted
    assert "iou_c" in s  # predicted (wrongly) somewhere: IoU 0, counted in the mean


def test_a_class_neither_true_nor_predicted_has_no_iou():
    cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 255]), 3)
    iou = iou_per_class(cm)
    assert iou[:2].tolist() == [1.0, 1.0] and torch.isnan(iou[2])
    s = segmentation_scores(cm, ["background", "cat", "dog"])
    assert s["miou"] == 1.0 and "iou_dog" not in s and s["pixel_acc"] == 1.0


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 3)


def test_evaluator_sums_batches_like_one_big_batch():
    rng = np.random.default_rng(1)
    pred, true = rng.integers(0, 4, (6, 8, 8)), rng.integers(0, 4, (6, 8, 8))
    ev = SegmentationEvaluator(["background", "x", "y", "z"])
    for i in range(0, 6, 2):
        cm = confusion_matrix(torch.from_numpy(pred[i:i + 2]), torch.from_numpy(true[i:i + 2]), 4)
        ev.update({"confusion": cm, "loss_sum": torch.tensor(2.0), "n": 2})
    m = ev.compute()
    _, miou_np, acc_np = numpy_scores(pred, true, 4)
    assert m["miou"] == pytest.approx(miou_np) and m["pixel_acc"] == pytest.approx(acc_np)
    assert m["loss"] == 1.0 and m["count"] == 6 and len(m["confusion"]) == 4


def test_metric_names_are_plain_keys():
    assert metric_name("potted plant") == "potted_plant" and metric_name("T-Shirt/top") == "t_shirt_top"
