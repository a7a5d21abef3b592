"""Detection metrics: COCO AP (pycocotools) and Pascal VOC AP50 (ours), per class, with PR curves.

``map`` is COCO's AP averaged over IoU 0.50:0.05:0.95, ``map50`` / ``map75`` at one IoU (all three
from pycocotools' COCOeval: 101-point interpolation, at most 100 detections per image). ``voc_map50``
is Pascal VOC's AP at IoU 0.5 with all-point interpolation (VOC2010+ devkit), written here because
it is the number the course and the YOLO / SSD papers quote. Targets may carry ``ignore_boxes`` /
``ignore_labels`` (VOC "difficult" objects, COCO crowd regions): neither AP counts them as missed nor a
detection on them as false (COCOeval gets them as crowds). Classes without ground truth in the
evaluated images are left out of every mean (as pycocotools does); with no ground truth at all, or
no predictions at all, every AP is 0.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cnnlab.errors import DataError, ShapeError

IOU_VOC = 0.5

# ---------------------------------------------------------------------------------------------
# Pascal VOC AP
# ---------------------------------------------------------------------------------------------


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, all-point interpolation (VOC2010+).

    The envelope at recall r is the best precision at any recall >= r; AP sums it over each step
    where recall increases.
    """
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # envelope: precision never rises to the right
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N, M) of xyxy boxes a (N, 4), b (M, 4) in continuous coordinates (no VOC +1 pixel)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda t: np.clip(t[:, 2:] - t[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _voc_class_pr(preds: list[dict], gts: list[dict], cls: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Recall and precision after each detection of class ``cls`` (sorted by score) and the gt count.

    VOC matching: each detection, in decreasing score over all images, is compared with the
    ground truths of its image and class; it is a true positive when its best-overlapping ground
    truth has IoU >= 0.5 (the devkit's ``ovmax >= minoverlap``) and was not matched before;
    otherwise (no overlap, or that ground truth already taken) it is a false positive. Ignored
    regions (``ignore_boxes``: VOC's "difficult" objects, COCO's crowds) take part in the overlap
    but are not counted: a detection whose best overlap is one of them is neither (the devkit's
    ``if not R['difficult'][jmax]``), and missing one costs no recall.
    """
    n_gt = 0
    dets = []  # (score, image index, detection index in that image)
    ious, taken, ignored = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        g_boxes = g["boxes"][g["labels"] == cls]
        ig_boxes = g["ignore_boxes"][g["ignore_labels"] == cls] if "ignore_boxes" in g else np.zeros((0, 4))
        d_mask = p["labels"] == cls
        d_boxes, d_scores = p["boxes"][d_mask], p["scores"][d_mask]
        n_gt += len(g_boxes)
        ious.append(_iou_np(d_boxes, np.concatenate([g_boxes, ig_boxes])))  # (n_det_i, n_gt_i + n_ignored_i)
        taken.append(np.zeros(len(g_boxes) + len(ig_boxes), dtype=bool))
        ignored.append(np.arange(len(g_boxes) + len(ig_boxes)) >= len(g_boxes))
        dets += [(float(s), i, j) for j, s in enumerate(d_scores)]
    dets.sort(key=lambda t: -t[0])  # stable: ties keep image order
    tp, counted = np.zeros(len(dets)), np.ones(len(dets), dtype=bool)
    for k, (_, i, j) in enumerate(dets):
        if ious[i].shape[1] == 0:
            continue
        best = int(ious[i][j].argmax())
        if ious[i][j, best] >= IOU_VOC:
            if ignored[i][best]:
                counted[k] = False
            elif not taken[i][best]:
                tp[k], taken[i][best] = 1, True
    tp = tp[counted]
    tp_cum = np.cumsum(tp)
    recall = tp_cum / max(n_gt, 1)
    precision = tp_cum / np.arange(1, len(tp) + 1)
    return recall, precision, n_gt


# ---------------------------------------------------------------------------------------------
# COCO AP through pycocotools
# ---------------------------------------------------------------------------------------------


def _quiet():
    """pycocotools prints progress to stdout; keep the CLI's output clean."""
    return contextlib.redirect_stdout(io.StringIO())


def _coco_summary(coco_gt, results: list[dict] | str) -> dict[str, float]:
    """map / map50 / map75 from COCOeval's precision array (the numbers ``summarize()`` prints)."""
    from pycocotools.cocoeval import COCOeval

    zeros = {"map": 0.0, "map50": 0.0, "map75": 0.0}
    if not results or not coco_gt.getAnnIds():  # loadRes fails on an empty list; no gt: AP undefined
        return zeros
    with _quiet():
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
    # precision: (T iou thresholds, R recall points, K classes, A area ranges, M max dets)
    prec = ev.eval["precision"][:, :, :, 0, -1]  # area "all", 100 detections
    thr = ev.params.iouThrs

    def mean(p):
        p = p[p > -1]  # -1: class without ground truth
        return float(p.mean()) if p.size else 0.0

    return {"map": mean(prec), "map50": mean(prec[np.isclose(thr, 0.5)]),
            "map75": mean(prec[np.isclose(thr, 0.75)])}


def coco_eval_json(gt_json_path: str | Path, results_json_path: str | Path) -> dict[str, float]:
    """COCO box AP of a results file (COCO results format) against a COCO instances file.

    Returns ``map``, ``map50``, ``map75`` and ``num_images``; an empty results list gives zeros.
    """
    from pycocotools.coco import COCO

    for p in (gt_json_path, results_json_path):
        if not Path(p).is_file():
            raise DataError(f"{p}: file not found (expected a COCO JSON file)")
    try:
        results = json.loads(Path(results_json_path).read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{results_json_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(results, list):
        raise DataError(f"{results_json_path}: expected a list of detections (COCO results format)")
    with _quiet():
        coco_gt = COCO(str(gt_json_path))
    return {**_coco_summary(coco_gt, results), "num_images": float(len(coco_gt.getImgIds()))}


# ---------------------------------------------------------------------------------------------
# The accumulator
# ---------------------------------------------------------------------------------------------


def _sanitize(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def _to_np(x, dtype, shape_tail=()) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1, *shape_tail)


class DetectionMetrics:
    """Accumulates per-image detections and ground truth; ``compute()`` gives COCO and VOC AP.

    torchmetrics-shaped: ``update(preds, targets)`` per batch, ``compute()``, ``reset()``.
    ``preds``: list of dict(boxes f32[N, 4] xyxy px, scores f32[N], labels i64[N]);
    ``targets``: list of dict(boxes, labels, image_id?) (image_id is not needed: images are
    numbered in the order they arrive). Labels index ``classes``.
    """

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)
        keys, seen = [], set()
        for i, c in enumerate(self.classes):
            key = _sanitize(c) or f"class{i}"
            key = f"{key}_{i}" if key in seen else key
            seen.add(key)
            keys.append(key)
        self.keys = keys  # metric-name tokens, one per class
        self.reset()

    def reset(self) -> None:
        self.preds: list[dict] = []
        self.targets: list[dict] = []

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        if len(preds) != len(targets):
            raise ShapeError(f"DetectionMetrics.update: {len(preds)} predictions for {len(targets)} images")
        for p, t in zip(preds, targets):
            pred = {"boxes": _to_np(p["boxes"], np.float64, (4,)), "scores": _to_np(p["scores"], np.float64),
                    "labels": _to_np(p["labels"], np.int64)}
            gt = {"boxes": _to_np(t["boxes"], np.float64, (4,)), "labels": _to_np(t["labels"], np.int64)}
            if t.get("ignore_boxes") is not None:  # regions neither missed nor false positives when detected
                gt["ignore_boxes"] = _to_np(t["ignore_boxes"], np.float64, (4,))
                gt["ignore_labels"] = _to_np(t["ignore_labels"], np.int64)
            for what, d in (("prediction", pred), ("target", gt)):
                bad = d["labels"][(d["labels"] < 0) | (d["labels"] >= len(self.classes))]
                if bad.size:
                    raise ShapeError(f"DetectionMetrics: {what} label {int(bad[0])} is not a class index "
                                     f"(0..{len(self.classes) - 1})")
            self.preds.append(pred)
            self.targets.append(gt)

    # -- COCO -------------------------------------------------------------------------------

    def _coco_gt(self):
        """The accumulated ground truth as an in-memory pycocotools COCO object (ids start at 1)."""
        from pycocotools.coco import COCO

        images, annotations = [], []
        for i, t in enumerate(self.targets, start=1):
            images.append({"id": i})
            ignored = zip(t.get("ignore_boxes", ()), t.get("ignore_labels", ()))
            for crowd, (box, label) in [(0, bl) for bl in zip(t["boxes"], t["labels"])] + [(1, bl) for bl in ignored]:
                x1, y1, x2, y2 = (float(v) for v in box)  # ignored regions go in as COCO crowds: COCOeval ignores them
                annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                    "iscrowd": crowd})
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations,
                        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(self.classes)]}
        with _quiet():
            coco.createIndex()
        return coco

    def _coco_results(self) -> list[dict]:
        results = []
        for i, p in enumerate(self.preds, start=1):
            for box, score, label in zip(p["boxes"], p["scores"], p["labels"]):
                x1, y1, x2, y2 = (float(v) for v in box)
                results.append({"image_id": i, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
        return results

    # -- VOC --------------------------------------------------------------------------------

    def pr_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per class with ground truth: (recall, precision) after each detection, IoU 0.5, VOC matching."""
        curves = {}
        for c, name in enumerate(self.classes):
            recall, precision, n_gt = _voc_class_pr(self.preds, self.targets, c)
            if n_gt:
                curves[name] = (recall, precision)
        return curves

    def compute(self) -> dict[str, float]:
        out = _coco_summary(self._coco_gt(), self._coco_results())
        aps = {}
        for c, key in enumerate(self.keys):
            recall, precision, n_gt = _voc_class_pr(self.preds, self.targets, c)
            if n_gt:
                aps[f"ap50_{key}"] = voc_ap(recall, precision)
        out["voc_map50"] = float(np.mean(list(aps.values()))) if aps else 0.0
        out.update(aps)
        out["num_images"] = float(len(self.targets))
        return out


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                   title: str = "precision-recall (IoU 0.5)") -> None:
    """One precision-recall line per class (from :meth:`DetectionMetrics.pr_curves`), AP in the legend."""
    from cnnlab.engine import plots  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, (recall, precision) in curves.items():
        ax.plot(np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision]),
                label=f"{name} (AP {voc_ap(recall, precision):.3f})")
    ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
