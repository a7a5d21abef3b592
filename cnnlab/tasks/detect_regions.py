"""The region-based side of the detect task: R-CNN, Fast R-CNN, Faster R-CNN, Mask R-CNN.

Kept apart from ``tasks/detect.py`` (which dispatches here) so each file stays readable:

- proposals: R-CNN and Fast R-CNN read selective-search boxes (``cnnlab.ops.proposals``) computed once
  per image when the data is loaded (``targets["proposals"]``), or on the fly for a new image;
- the steps: ``losses`` for training, ``detect_images`` for inference, the same for the four models;
- R-CNN's SVMs and box regressors are fitted outside the SGD loop, on the training images, the first
  time the model is evaluated after training steps (``model.fitted`` is 0), and saved with the checkpoint;
- Mask R-CNN: instance masks in the targets, mask AP (pycocotools ``segm``) in the evaluator, masks
  drawn as coloured overlays by ``cnnlab predict``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REGION_DETECTORS = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
PROPOSAL_DETECTORS = ("rcnn", "fast_rcnn")
EPOCHS = {"rcnn": 2, "fast_rcnn": 6, "faster_rcnn": 10, "mask_rcnn": 10}  # defaults (one-stage: 30)


def create_region_network(meta: dict[str, Any], backbone: nn.Module) -> nn.Module:
    from cnnlab.models.detection.fast_rcnn import FastRCNN
    from cnnlab.models.detection.faster_rcnn import FasterRCNN
    from cnnlab.models.detection.rcnn import RCNN

    c, size, kind = meta["num_classes"], meta["img_size"][0], meta["detector"]
    if kind == "rcnn":
        return RCNN(backbone, c, warp=meta.get("warp") or 64)
    stride = meta.get("feature_stride") or 16  # runs saved before the option had the stride-16 map
    if kind == "fast_rcnn":
        return FastRCNN(backbone, c, roi=meta.get("roi") or "pool", stride=stride)
    return FasterRCNN(backbone, c, size, masks=kind == "mask_rcnn", roi=meta.get("roi") or "align", stride=stride)


class LazyProposals:
    """A set's selective-search proposals, each image's computed the first time it is asked for and kept
    (so a run pays for the images it uses: evaluating a test split does not segment the training images)."""

    def __init__(self, images: torch.Tensor, top: int):
        self.images, self.top, self.cache, self.seconds = images, top, {}, 0.0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from cnnlab.ops.proposals import selective_search_proposals

        if i not in self.cache:
            t0 = time.perf_counter()
            self.cache[i] = selective_search_proposals(self.images[i], max_boxes=self.top)  # (P, 4)
            self.seconds += time.perf_counter() - t0
        return self.cache[i]


def attach_proposals(sets: dict[str, Any], top: int) -> None:
    """Give every set its (lazy) selective-search proposals: items then carry ``targets["proposals"]``."""
    for ds in sets.values():
        ds.proposals = LazyProposals(ds.images, top)


def image_proposals(task, x: torch.Tensor) -> list[torch.Tensor]:
    """Selective search on normalized images (B, 3, S, S) (un-normalized first): per image (P, 4)."""
    from cnnlab.data.normalize import Normalization
    from cnnlab.ops.proposals import selective_search_proposals

    pixels = Normalization.from_dict(task.meta["normalization"]).inverse(x.detach().cpu()).clamp(0, 1)
    return [selective_search_proposals(p, max_boxes=task.cfg.proposals) for p in pixels]


def region_training_step(task, model: nn.Module, x: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return model.losses(x, batch["targets"])


@torch.no_grad()
def region_detect(task, model: nn.Module, x: torch.Tensor, score_threshold: float,
                  targets: list[dict] | None = None) -> list[dict]:
    kind = task.meta["detector"]
    proposals = None
    if kind in PROPOSAL_DETECTORS:
        if targets is not None and all("proposals" in t for t in targets):
            proposals = [t["proposals"] for t in targets]
        else:
            proposals = image_proposals(task, x)
        if kind == "rcnn":
            ensure_svms(task, model)
    return model.detect_images(x, score_threshold, task.cfg.nms_iou, proposals=proposals)


def ensure_svms(task, model: nn.Module) -> None:
    """R-CNN stages 2-3 (SVMs with hard negatives, ridge box regressors) when training steps ran since the last fit."""
    if float(model.fitted) == 1.0:
        return
    train = getattr(task, "svm_source", None)
    if train is None:
        return  # a loaded run: its checkpoint holds the fitted SVMs (fitted is 1)
    from cnnlab.data.normalize import Normalization

    norm = Normalization.from_dict(task.meta["normalization"])
    device = next(model.parameters()).device
    n = min(len(train), task.cfg.svm_images)
    items = ((norm(train.images[i].float() / 255).to(device), train.boxes[i], train.labels[i], train.proposals[i])
             for i in range(n))
    t0 = time.perf_counter()
    report = model.fit_svms(items, seed=task.cfg.seed)
    if not task.cfg.quiet:
        hard = [r.get("negative_set", [0])[-1] for r in report["classes"]]
        print(f"R-CNN: SVMs and box regressors fitted on {report['regions']} regions of {n} training images "
              f"in {time.perf_counter() - t0:.0f} s (final negative sets {min(hard)}-{max(hard)} after hard mining)")


# ---------------------------------------------------------------------------- masks: evaluation, output, drawing
def masks_to_rles(masks: torch.Tensor) -> list[dict]:
    """(N, H, W) probabilities or 0/1 -> pycocotools RLEs of mask > 0.5."""
    from pycocotools import mask as mask_utils

    m = (masks.detach().cpu() > 0.5).numpy().astype(np.uint8)
    if len(m) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0)))
    return list(rles)


def mask_ap(preds: list[dict], targets: list[dict], num_classes: int) -> dict[str, float]:
    """COCO mask AP (iouType "segm"): preds dict(rles, scores, labels), targets dict(rles, labels) per image
    -> mask_map, mask_map50, mask_map75. Targets' ``ignore_rles`` / ``ignore_labels`` (COCO crowds) go in as
    crowds: COCOeval neither counts them as missed nor a detection on them as false."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from pycocotools import mask as mask_utils

    from cnnlab.metrics.detection import _quiet

    images, anns, results = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets), start=1):
        crowds = list(zip(t.get("ignore_rles", []), t["ignore_labels"].tolist() if "ignore_rles" in t else []))
        sized = t["rles"] or [rle for rle, _ in crowds]
        h, w = (int(v) for v in sized[0]["size"]) if sized else (0, 0)
        images.append({"id": i, "height": h, "width": w})
        objects = [(0, rle, lab) for rle, lab in zip(t["rles"], t["labels"].tolist())] + [(1, *c) for c in crowds]
        for crowd, rle, lab in objects:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab) + 1, "segmentation": rle,
                         "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": crowd})
        for rle, s, lab in zip(p["rles"], p["scores"].tolist(), p["labels"].tolist()):
            results.append({"image_id": i, "category_id": int(lab) + 1, "segmentation": rle, "score": float(s)})
    zeros = {"mask_map": 0.0, "mask_map50": 0.0, "mask_map75": 0.0}
    if not anns or not results:
        return zeros
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(num_classes)]}
    with _quiet():
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), iouType="segm")
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K): area "all", 100 detections
    thr = ev.params.iouThrs

    def mean(v):
        v = v[v > -1]
        return float(v.mean()) if v.size else 0.0

    return {"mask_map": mean(prec), "mask_map50": mean(prec[np.isclose(thr, 0.5)]),
            "mask_map75": mean(prec[np.isclose(thr, 0.75)])}


def draw_masks(image: torch.Tensor, detections: list[dict], path: Path) -> None:
    """One image (C, H, W) uint8 with each detection's mask as a coloured overlay, its box and label."""
    from pycocotools import mask as mask_utils

    from cnnlab.engine import plots
    import matplotlib.pyplot as plt

    img = np.asarray(image).transpose(1, 2, 0).astype(np.float32) / 255
    h, w = img.shape[:2]
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(3, w / 80), max(3, h / 80)))
    for k, d in enumerate(detections):
        if d.get("mask") is not None:
            m = mask_utils.decode(dict(d["mask"], counts=d["mask"]["counts"].encode())).astype(bool)
            img[m] = 0.5 * img[m] + 0.5 * np.asarray(colours(k % 10)[:3], dtype=np.float32)
    ax.imshow(img.clip(0, 1))
    ax.axis("off")
    for k, d in enumerate(detections):
        plots._rect(ax, d["box"], colours(k % 10))
        ax.text(float(d["box"][0]), float(d["box"][1]), f"{d['class']} {d['score']:.2f}", color="white", fontsize=8,
                va="bottom", bbox=dict(facecolor=colours(k % 10), alpha=0.7, pad=1, edgecolor="none"))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def resize_masks(masks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, S, S) probabilities -> (N, h, w) in an original image's pixels (bilinear)."""
    import torch.nn.functional as F

    if len(masks) == 0 or masks.shape[-2:] == (h, w):
        return masks.reshape(-1, h, w) if len(masks) == 0 else masks
    return F.interpolate(masks[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
