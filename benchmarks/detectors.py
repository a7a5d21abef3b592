"""The course's detector comparison on our own hardware: seconds per image (region proposals and network
apart) and AP50 / AP for R-CNN, Fast R-CNN, Faster R-CNN, Mask R-CNN, YOLO and SSD, on the same scenes
val set and the same backbone (ImageNet MobileNetV2).

Speed: each detector infers the first ``--images`` val images one at a time (batch 1, the evaluation
setting: score threshold 0.01, per-class NMS); selective search (R-CNN, Fast R-CNN) is timed on its
own, then the network on those proposals. A detector whose run folder is given (``--run NAME=DIR``,
trained with ``cnnlab train detect --model NAME``) is loaded from it and also scored on the whole val
split (AP50 = ``map50``, AP = ``map``, pycocotools); one without a run is built untrained on the same
backbone, so its speed is measured and its AP left out (speed does not depend on the weights, except
that an untrained detector may keep more boxes through NMS). Timings are wall-clock on a shared
machine: indicative. JSON to stdout (and ``--json``), Markdown to stderr.

    cnnlab data scenes --kind detect --objects digits --n 1500 --out data/det
    python benchmarks/detectors.py --data data/det --threads 2 --images 20 \\
        --run faster_rcnn=runs/detect-faster_rcnn-... --json benchmarks/results/detectors.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DETECTORS = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn", "yolo", "ssd")
SEEDS_CLAIM = {"rcnn": 47.0, "fast_rcnn": 2.0, "faster_rcnn": 0.2}  # s/image in the course's slides (GPU, 2015)


def untrained(name: str, data: str, backbone: str):
    """(task, model) of an untrained detector ``name`` on the folder's classes and size."""
    from cnnlab.tasks.detect import Detect, DetectConfig

    cfg = DetectConfig(task="detect", data=data, model=name, backbone=backbone, weights="none", quiet=True).validate()
    task = Detect(cfg)
    bundle = task.build_data(cfg)
    task.meta.update(bundle.meta)
    model = task.build_model(cfg, bundle).eval()
    if name == "rcnn":
        model.fitted.fill_(1.0)  # no SVMs to fit: zero weights score every region alike
    return task, model, bundle.val


@torch.no_grad()
def time_detector(task, model, ds, n: int) -> dict:
    """Mean seconds per image over the first ``n`` images of ``ds``: proposals and network apart."""
    from cnnlab.tasks.detect_regions import PROPOSAL_DETECTORS
    from cnnlab.ops.proposals import selective_search_proposals

    kind = task.meta["detector"]
    proposal_s, network_s, boxes = 0.0, 0.0, 0
    n = min(n, len(ds))
    for i in range(n + 1):  # the first image warms up and is not counted
        item = ds[i]
        x = item["images"][None]
        t0 = time.perf_counter()
        targets = None
        if kind in PROPOSAL_DETECTORS:
            props = selective_search_proposals(ds.images[i], max_boxes=task.cfg.proposals)
            targets = [{"proposals": props}]
        t1 = time.perf_counter()
        det = task._detect(model, x, 0.01, targets)
        t2 = time.perf_counter()
        if i:
            proposal_s, network_s, boxes = proposal_s + t1 - t0, network_s + t2 - t1, boxes + len(det[0]["boxes"])
    return {"images": n, "proposals_s": proposal_s / n, "network_s": network_s / n,
            "total_s": (proposal_s + network_s) / n, "detections_per_image": boxes / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a scenes detection folder (its val split is used)")
    ap.add_argument("--run", action="append", default=[], help="NAME=RUN_DIR: a trained run of detector NAME")
    ap.add_argument("--models", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    ap.add_argument("--images", type=int, default=20, help="val images timed per detector")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = dict(r.split("=", 1) for r in args.run)
    from cnnlab.engine.evaluate import evaluate_run, load_task

    rows = {}
    for name in args.models:
        row: dict = {"run": None}  # the run folder's name only: no machine-specific paths in the results
        if name in runs:
            task, model, meta, _ = load_task(runs[name])
            ds, _, _ = task.eval_data(task.cfg, "val")
            metrics, info, _ = evaluate_run(runs[name], split="val")
            row.update(map50=metrics.get("map50"), map=metrics.get("map"), mask_map50=metrics.get("mask_map50"),
                       epochs=meta.get("epoch"), val_images=info.get("images"), run=Path(runs[name]).name)
        else:
            task, model, ds = untrained(name, args.data, args.backbone)
        row.update(time_detector(task, model, ds, args.images))
        rows[name] = row
        print(f"{name}: {row['total_s']:.3f} s/image", file=sys.stderr)
    fastest = min(r["total_s"] for r in rows.values())
    for r in rows.values():
        r["times_fastest"] = r["total_s"] / fastest
    order = sorted(rows, key=lambda k: -rows[k]["total_s"])
    claim = [k for k in ("rcnn", "fast_rcnn", "faster_rcnn") if k in rows]
    holds = all(rows[a]["total_s"] > rows[b]["total_s"] for a, b in zip(claim, claim[1:]))
    one_stage = [k for k in ("yolo", "ssd") if k in rows]
    if "faster_rcnn" in rows and one_stage:
        holds = holds and all(rows[k]["total_s"] < rows["faster_rcnn"]["total_s"] for k in one_stage)
    report = {"data": args.data, "split": "val", "backbone": args.backbone, "threads": args.threads,
              "environment": common.environment(), "detectors": rows, "slowest_first": order,
              "seeds_ordering_holds": holds, "seeds_claim_s_per_image": SEEDS_CLAIM}
    for a, b in (("rcnn", "fast_rcnn"), ("fast_rcnn", "faster_rcnn"), ("faster_rcnn", "yolo"), ("faster_rcnn", "ssd")):
        if a in rows and b in rows:
            report[f"{a}_over_{b}"] = rows[a]["total_s"] / rows[b]["total_s"]
    if "fast_rcnn" in rows:
        r = rows["fast_rcnn"]
        report["fast_rcnn_proposal_share"] = r["proposals_s"] / r["total_s"]
    table = common.markdown_table(
        ["detector", "proposals s/img", "network s/img", "total s/img", "x fastest", "AP50 (val)", "AP (val)",
         "val images"],
        [[k, f"{r['proposals_s']:.3f}", f"{r['network_s']:.3f}", f"{r['total_s']:.3f}", f"{r['times_fastest']:.1f}",
          "-" if r.get("map50") is None else f"{r['map50']:.3f}", "-" if r.get("map") is None else f"{r['map']:.3f}",
          r.get("val_images") or "-"]
         for k, r in rows.items()])
    common.emit_report(report, table, args.json)


if __name__ == "__main__":
    main()
