"""Faster R-CNN's second stage on a few training images without augmentation: does it fit them, how fast?

The diagnostic of issue 19 (docs/detection.md, "What held the region-based detectors back"): the first
``--n`` training images of a scenes folder, batches of ``--batch-size`` drawn at random, ``--steps``
optimizer steps on the same losses as ``cnnlab train detect --model faster_rcnn`` (fp32, one thread, the
ImageNet MobileNetV2 with its first two stages frozen), then, on those same images: AP50 / AP of the
detections, and the accuracy of the box head on the ground-truth boxes (all C + 1 classes, and the best
foreground class) with batch norm in eval and in train mode (a gap would point at batch statistics).
Every 10 steps the mean of the logged losses. ``box_reg`` is summed over the foreground RoIs and divided
by all sampled RoIs, so it grows with the foreground count: compare it only at one ``--positive-fraction``.

    python benchmarks/region_overfit.py --data data/det --stride 16 --steps 60
    python benchmarks/region_overfit.py --data data/det --stride 8 --steps 60 --positive-fraction 0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a scenes detection folder")
    ap.add_argument("--n", type=int, default=32, help="training images to fit")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--stride", type=int, default=8, choices=(8, 16))
    ap.add_argument("--optimizer", default="adamw", choices=("adamw", "momentum"))
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rois", type=int, default=64, help="RoIs sampled per image")
    ap.add_argument("--positive-fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    from cnnlab.engine.transfer import freeze_stages, init_and_load
    from cnnlab.metrics.detection import DetectionMetrics
    from cnnlab.models.detection.faster_rcnn import FasterRCNN
    from cnnlab.models.registry import create_model
    from cnnlab.tasks.detect import Detect, DetectConfig

    cfg = DetectConfig(data=args.data, model="faster_rcnn", limit=args.n, limit_test=args.n, augment="none",
                       quiet=True).validate()
    task = Detect(cfg)
    data = task.build_data(cfg)
    items = [data.train[i] for i in range(len(data.train))]
    size, classes = data.meta["img_size"][0], data.meta["classes"]
    model = FasterRCNN(create_model(cfg.backbone, num_classes=len(classes)), len(classes), size, stride=args.stride,
                       rois_per_image=args.rois, positive_fraction=args.positive_fraction)
    init_and_load(model.backbone, dataclasses.replace(cfg, model=cfg.backbone))
    freeze_stages(model.backbone, cfg.freeze)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(params, args.lr, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(params, args.lr, momentum=0.9, weight_decay=1e-4)
    warm = 20
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))

    def batch(idx):
        return torch.stack([items[i]["images"] for i in idx]), [items[i]["targets"] for i in idx]

    from cnnlab.engine.transfer import train_mode

    gen, hist, t0 = torch.Generator().manual_seed(args.seed), [], time.perf_counter()
    for step in range(args.steps):
        train_mode(model)
        x, t = batch(torch.randperm(len(items), generator=gen)[:args.batch_size].tolist())
        out = model.losses(x, t)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
        hist.append({k: float(v.detach()) for k, v in out.items()})
        if (step + 1) % 10 == 0:
            mean = {k: round(sum(h[k] for h in hist[-10:]) / 10, 3) for k in hist[-1]}
            print(json.dumps({"step": step + 1, "seconds": round(time.perf_counter() - t0), **mean}), flush=True)

    report = {"args": vars(args), "seconds": round(time.perf_counter() - t0)}
    model.eval()
    metrics = DetectionMetrics(classes)
    for i in range(0, len(items), 8):
        x, t = batch(range(i, min(i + 8, len(items))))
        metrics.update(model.detect_images(x, 0.01, 0.5), t)
    r = metrics.compute()
    report.update(train_map50=round(r["map50"], 3), train_map=round(r["map"], 3))
    for mode in ("eval", "train"):
        model.train(mode == "train")
        right = right_fg = n = 0
        with torch.no_grad():
            for i in range(0, len(items), 8):
                x, t = batch(range(i, min(i + 8, len(items))))
                feats = {"0": model.features(x)}
                pooled = model.roi_heads.box_roi_pool(feats, [tt["boxes"].float() for tt in t], [(size, size)] * len(x))
                logits, _ = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))  # (N, C + 1)
                label = torch.cat([tt["labels"] for tt in t]) + 1  # 0 is background
                right += int((logits.argmax(1) == label).sum())
                right_fg += int((logits[:, 1:].argmax(1) + 1 == label).sum())
                n += len(label)
        report[f"gt_box_accuracy_{mode}_bn"] = round(right / n, 3)
        report[f"gt_box_fg_accuracy_{mode}_bn"] = round(right_fg / n, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
