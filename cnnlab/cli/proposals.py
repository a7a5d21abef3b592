"""`cnnlab proposals`: selective-search region proposals of a photo, the top N drawn on it, and their
recall against a detection folder's boxes (what R-CNN and Fast R-CNN classify)."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  cnnlab proposals photo.jpg --top 100 --out proposals.png
  cnnlab proposals photo.jpg --json > boxes.json            # every box, best-ranked first
  cnnlab proposals --data data/det --split val --limit 50   # recall@IoU 0.5 at 100 .. 2000 proposals, proposals/s"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proposals", help="selective-search region proposals: draw the top N on a photo, or measure recall",
                       description="Selective search (Uijlings et al. 2013): Felzenszwalb segments merged greedily by "
                                   "colour, texture, size and fill similarity; every region formed is a proposal. "
                                   "With an image: its boxes, the top --top drawn to --out. With --data: recall of the "
                                   "ground-truth boxes at IoU 0.5 for the best 100 .. 2000 proposals, and their speed.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="an image file")
    p.add_argument("--top", type=int, default=100, help="boxes to draw (default: 100)")
    p.add_argument("--out", help="the drawing (default: <image name>-proposals.png next to the current folder)")
    p.add_argument("--max-boxes", type=int, default=2000, help="proposals kept per image (default: 2000)")
    p.add_argument("--data", help="instead of an image: a COCO, VOC or YOLO folder to measure recall on")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="with --data (default: val)")
    p.add_argument("--limit", type=int, default=100, help="with --data: at most this many images (default: 100)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def recall_table(data: str, split: str = "val", limit: int = 100, max_boxes: int = 2000,
                 counts=(100, 250, 500, 1000, 2000)) -> dict:
    """Recall@IoU0.5 of the best N proposals (for each N in ``counts``) over a split's boxes, and timing."""
    import time

    from cnnlab.data.detection import find_detection_splits
    from cnnlab.data.images import load_image
    from cnnlab.errors import DataError
    from cnnlab.ops.proposals import proposal_recall, selective_search_proposals

    splits = find_detection_splits(data).splits
    if split not in splits:
        raise DataError(f"--data {data}: no {split} split (it has {', '.join(splits)}); pass --split")
    records = splits[split][:limit]
    hits = {n: 0 for n in counts}
    total, seconds, boxes = 0, 0.0, 0
    for r in records:
        img = load_image(r.path, channels=3)
        t0 = time.perf_counter()
        props = selective_search_proposals(img, max_boxes=max_boxes)
        seconds += time.perf_counter() - t0
        boxes += len(props)
        for n in counts:
            hits[n] += proposal_recall(props[:n], r.boxes)[0]
        total += len(r.boxes)
    return {"data": data, "split": split, "images": len(records), "objects": total,
            "mean_proposals": round(boxes / max(1, len(records)), 1),
            "recall_at_0.5": {str(n): round(hits[n] / max(1, total), 4) for n in counts},
            "seconds_per_image": round(seconds / max(1, len(records)), 4),
            "proposals_per_second": round(boxes / max(seconds, 1e-9), 1)}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.errors import ConfigError

    if args.top < 1 or args.max_boxes < 1 or args.limit < 1:
        raise ConfigError("--top, --max-boxes and --limit must be at least 1")
    if args.data:
        t = recall_table(args.data, args.split, args.limit, args.max_boxes)
        if args.json:
            print(json.dumps(t))
        else:
            print(f"{t['images']} {args.split} images, {t['objects']} objects, {t['mean_proposals']} proposals per image, "
                  f"{t['seconds_per_image']} s per image ({t['proposals_per_second']} proposals/s)")
            for n, v in t["recall_at_0.5"].items():
                print(f"  recall@0.5 with the best {n:>4}: {v:.3f}")
        return 0
    if not args.image:
        raise ConfigError("give an image (cnnlab proposals photo.jpg) or --data DIR")
    import time

    from cnnlab.data.images import load_image
    from cnnlab.engine.plots import draw_boxes
    from cnnlab.ops.proposals import selective_search_proposals

    img = load_image(args.image, channels=3)  # uint8 (3, H, W)
    t0 = time.perf_counter()
    props = selective_search_proposals(img, max_boxes=args.max_boxes)
    seconds = time.perf_counter() - t0
    out = Path(args.out or f"{Path(args.image).stem}-proposals.png")
    top = props[:args.top].tolist()
    try:
        draw_boxes(img.numpy(), top, [""] * len(top), out)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write it ({e.strerror or e})") from None
    if args.json:
        print(json.dumps({"image": args.image, "count": len(props), "seconds": round(seconds, 3), "drawing": str(out),
                          "boxes": [[round(v, 1) for v in b] for b in props.tolist()]}))
    else:
        print(f"{len(props)} proposals in {seconds:.2f} s; the best {len(top)} drawn to {out}")
    return 0
