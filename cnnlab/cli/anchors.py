"""`cnnlab anchors`: YOLOv2's k-means anchor boxes for a detection folder, against hand-picked ones."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  cnnlab anchors --data data/det --k 5
  cnnlab anchors --data ~/voc --k 9 --img-size 320 --json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anchors", help="k-means anchor boxes of a detection folder (YOLOv2's 1 - IoU distance)",
                       description="Cluster the training boxes' shapes with k-means under d = 1 - IoU and print the "
                                   "anchors (pixels of --img-size images) with their mean best IoU, next to "
                                   "hand-picked anchors and to k = 1..K.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a COCO, VOC or YOLO-txt folder (its train split is used)")
    p.add_argument("--k", type=int, default=5, help="number of anchors (default: 5, as YOLOv2)")
    p.add_argument("--img-size", type=int, help="the size images are resized to for training (default: as `train detect`)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def anchor_table(data: str, k: int, img_size: int | None = None, seed: int = 0) -> dict:
    """k-means anchors of a folder's training boxes (scaled to the training size) and the mean best IoUs."""
    import torch

    from cnnlab.data.detection import find_detection_splits
    from cnnlab.errors import ConfigError
    from cnnlab.models.detection.yolo import HAND_PICKED_ANCHORS
    from cnnlab.ops.anchors import kmeans_anchors, mean_best_iou
    from cnnlab.tasks.detect import DEFAULT_SIZE, _common_size

    if k < 1:
        raise ConfigError(f"--k {k}: must be at least 1")
    records = find_detection_splits(data).splits["train"]
    size = img_size or _common_size(records) or DEFAULT_SIZE
    wh = []
    for r in records:  # each image's boxes in the pixels of its resized square
        b = r.boxes.reshape(-1, 4)
        wh.append(torch.stack([(b[:, 2] - b[:, 0]) * size / r.width, (b[:, 3] - b[:, 1]) * size / r.height], 1))
    wh = torch.cat(wh) if wh else torch.zeros(0, 2)
    wh = wh[(wh > 0).all(1)]
    if len(wh) < k:
        raise ConfigError(f"--k {k}: the training split has only {len(wh)} boxes; choose --k <= {len(wh)}")
    anchors, iou = kmeans_anchors(wh, k, seed=seed)
    hand = torch.tensor(HAND_PICKED_ANCHORS) * size
    by_k = {j: kmeans_anchors(wh, j, seed=seed)[1] for j in range(1, k + 1)}
    return {"data": data, "img_size": size, "boxes": len(wh), "k": k,
            "anchors": [[round(w, 1), round(h, 1)] for w, h in anchors.tolist()], "mean_iou": round(iou, 4),
            "hand_picked": [[round(w, 1), round(h, 1)] for w, h in hand.tolist()],
            "hand_picked_mean_iou": round(mean_best_iou(wh, hand), 4),
            "mean_iou_by_k": {str(j): round(v, 4) for j, v in by_k.items()}}


def run(args: argparse.Namespace) -> int:
    t = anchor_table(args.data, args.k, args.img_size, args.seed)
    if args.json:
        print(json.dumps(t))
        return 0
    print(f"{t['boxes']} training boxes of {args.data}, images resized to {t['img_size']}x{t['img_size']}")
    print(f"k-means anchors (k={t['k']}, w x h px): " + "  ".join(f"{w:g}x{h:g}" for w, h in t["anchors"]))
    print(f"mean best IoU: k-means {t['mean_iou']:.3f}   hand-picked ({len(t['hand_picked'])}) {t['hand_picked_mean_iou']:.3f}")
    print("mean best IoU by k: " + "  ".join(f"k={j}: {v:.3f}" for j, v in t["mean_iou_by_k"].items()))
    print(f"use them: cnnlab train detect --data {args.data} --anchors '"
          + " ".join(f"{w:g},{h:g}" for w, h in t["anchors"]) + "'")
    return 0
