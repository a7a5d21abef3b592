"""The detect task's report: validation images with true and predicted boxes, precision-recall curves."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


@torch.no_grad()
def detection_report(task, run_dir: Path, model: nn.Module, data, split: str | None, device: torch.device,
                     n: int = 18) -> list[str]:
    """plots/boxes-<split>.png and plots/pr-<split>.png; markdown lines for report.md."""
    from cnnlab.engine import plots
    from cnnlab.metrics.detection import DetectionMetrics, plot_pr_curves

    if split is None:
        return []
    ds = getattr(data, split)
    model.eval()
    classes = task.meta["classes"]
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    items = [ds[i] for i in idx]
    x = torch.stack([it["images"] for it in items]).to(device)
    dets = task._detect(model, x, task.cfg.score_threshold)
    titles = [", ".join(classes[int(c)] for c in d["labels"][:4].tolist()) or "(none)" for d in dets]
    path = run_dir / "plots" / f"boxes-{split}.png"
    plots.plot_box_grid(ds.images[idx].numpy(), [it["targets"]["boxes"].numpy() for it in items],
                        [d["boxes"].cpu().numpy() for d in dets], titles, path)
    lines = [f"True (green) and predicted (red, score >= {task.cfg.score_threshold}) boxes on {split} images, "
             "titled with the predicted classes:", "", f"![boxes](plots/{path.name})", ""]
    # precision-recall per class on the whole split
    metrics = DetectionMetrics(classes)
    loader = task.eval_loader(task.cfg, data, ds)
    from cnnlab.engine.trainer import to_device

    for batch in loader:
        batch = to_device(batch, device)
        out = task.validation_step(model, batch)
        metrics.update(out["preds"], out["targets"])
    pr = run_dir / "plots" / f"pr-{split}.png"
    plot_pr_curves(metrics.pr_curves(), pr, f"precision-recall at IoU 0.5 ({split})")
    lines += [f"Precision-recall curves per class at IoU 0.5 ({split}):", "", f"![pr](plots/{pr.name})", ""]
    if task.meta["detector"] == "yolo" and len(ds):
        fig = yolo_pipeline_figure(task, model, ds, idx[0], run_dir / "plots" / f"pipeline-{split}.png", device)
        lines += ["The YOLO pipeline on one image (grid and anchors, boxes before NMS, after NMS, truth):", "",
                  f"![pipeline](plots/{fig.name})", ""]
    return lines


@torch.no_grad()
def yolo_pipeline_figure(task, model: nn.Module, ds, index: int, path: Path, device: torch.device) -> Path:
    """The course's YOLO pipeline on one image, four panels: the S x S grid with each object's midpoint
    cell and its best anchor; every box with p_c above 0.1 before suppression; the boxes after the score
    threshold and per-class NMS (IoU >= 0.5 suppressed); the truth, each box titled with its IoU."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from cnnlab.engine.plots import _rect, _show
    from cnnlab.ops.anchors import assign_anchors
    from cnnlab.ops.boxes import box_iou

    model.eval()
    item = ds[index]
    image = ds.images[index].numpy()
    gt, labels = item["targets"]["boxes"], item["targets"]["labels"]
    x = item["images"][None].to(device)
    out = model(x)
    _, sh, sw, a, _ = out.shape
    h, w = x.shape[-2:]
    classes = task.meta["classes"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    ax = axes[0]
    _show(ax, image)
    for k in range(1, sw):
        ax.axvline(k * w / sw - 0.5, color="white", lw=0.5, alpha=0.6)
    for k in range(1, sh):
        ax.axhline(k * h / sh - 0.5, color="white", lw=0.5, alpha=0.6)
    if len(gt):
        rows, cols, anchor, _ = assign_anchors(gt, h, w, (sh, sw), model.anchors.cpu())
        for r, c, k in zip(rows.tolist(), cols.tolist(), anchor.tolist()):
            ch, cw = h / sh, w / sw
            ax.add_patch(Rectangle((c * cw - 0.5, r * ch - 0.5), cw, ch, color="yellow", alpha=0.35))
            aw, ah = model.anchors[k].tolist()
            cx, cy = (c + 0.5) * cw, (r + 0.5) * ch
            _rect(ax, (cx - aw / 2, cy - ah / 2, cx + aw / 2, cy + ah / 2), "yellow")
        for b in gt:
            ax.plot([(b[0] + b[2]) / 2 - 0.5], [(b[1] + b[3]) / 2 - 0.5], "r+", ms=8)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(f"{sh}x{sw} grid, {a} anchors: midpoint cell + best anchor", fontsize=9)
    boxes = model.decode(out.float())[0].reshape(-1, 4).cpu()
    pc = torch.sigmoid(out[0, ..., 0].float()).reshape(-1).cpu()
    ax = axes[1]
    _show(ax, image)
    shown = pc > 0.1
    for b, p in zip(boxes[shown], pc[shown]):
        _rect(ax, b, plt.cm.autumn(1 - float(p)))
    ax.set_title(f"{int(shown.sum())} boxes with p_c > 0.1 (before NMS)", fontsize=9)
    det = task._detect(model, x, task.cfg.score_threshold)[0]
    ax = axes[2]
    _show(ax, image)
    for b, s, c in zip(det["boxes"].cpu(), det["scores"].cpu(), det["labels"].cpu()):
        _rect(ax, b, "red")
        ax.text(float(b[0]), float(b[1]), f"{classes[int(c)]} {float(s):.2f}", color="white", fontsize=7, va="bottom",
                bbox=dict(facecolor="red", alpha=0.7, pad=1, edgecolor="none"))
    ax.set_title(f"score >= {task.cfg.score_threshold}, per-class NMS (IoU >= {task.cfg.nms_iou}): "
                 f"{len(det['boxes'])} left", fontsize=9)
    ax = axes[3]
    _show(ax, image)
    ious = box_iou(gt, det["boxes"].cpu()).amax(1) if len(gt) and len(det["boxes"]) else torch.zeros(len(gt))
    for b, c, v in zip(gt, labels, ious):
        _rect(ax, b, "lime")
        ax.text(float(b[0]), float(b[3]), f"{classes[int(c)]} IoU {float(v):.2f}", color="black", fontsize=7, va="top",
                bbox=dict(facecolor="lime", alpha=0.7, pad=1, edgecolor="none"))
    ax.set_title("truth, with the best prediction's IoU (>= 0.5 counts for AP50)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
