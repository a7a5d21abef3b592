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
    return lines
