"""Classification + localization: what one object is and where, on any backbone.

The course's target for an image is y = [p_c, b_x, b_y, b_h, b_w, c_1..c_K]: p_c says whether
there is an object, (b_x, b_y, b_h, b_w) is its box as fractions of the image (centre, height,
width), c_k its class. The loss mixes logistic loss for p_c, cross-entropy for the class and
squared error (or smooth-L1) for the box; the class and box terms count only where p_c = 1.

Data: a COCO folder (``train/`` and ``val/``, optionally ``test/``, each with ``annotations.json``
whose ``file_name``s are relative to it), one object per image (the largest is kept where there
are more; an image without annotations is a negative). Batches: ``images f32[B,3,S,S]``,
``boxes f32[B,4]`` xyxy pixels, ``labels i64[B]``, ``present f32[B]``.
Metrics: class accuracy, mean IoU, and acc_iou50 = class right and IoU >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.config import opt
from cnnlab.models.localization import Localizer, boxes_to_course, course_to_boxes
from cnnlab.ops.boxes import paired_iou
from cnnlab.tasks import register_task
from cnnlab.data import single_object as objects
from cnnlab.tasks.base import BackboneTaskConfig, DataBundle, Evaluator, Task, build_backbone_model, create_backbone


@dataclass
class LocalizeConfig(BackboneTaskConfig):
    augment: str = opt("hflip+shift", "none, hflip (mirror image and box), shift (move the image, box kept inside), "
                       "or hflip+shift", group="data", choices=("none", "hflip", "shift", "hflip+shift"))
    box_loss: str = opt("smooth_l1", "box regression loss on the (b_x, b_y, b_h, b_w) fractions: mse (the course's "
                        "squared error) or smooth_l1", group="optimization", choices=("mse", "smooth_l1"))
    box_weight: float = opt(5.0, "weight of the box term of the loss", group="optimization", min=0)
    class_weight: float = opt(1.0, "weight of the class term of the loss", group="optimization", min=0)
    object_weight: float = opt(1.0, "weight of the p_c (is there an object) term of the loss", group="optimization", min=0)


class LocalizeEvaluator(Evaluator):
    """Sums over images of: loss, class right, IoU, class right and IoU >= 0.5 (present objects), p_c right."""

    def compute(self) -> dict[str, Any]:
        n = max(1.0, float(self.n))
        pos = max(1.0, float(self.sums.get("positives", 0)))
        return {"loss": float(self.sums["loss"]) / n, "acc": float(self.sums["correct"]) / pos,
                "miou": float(self.sums["iou"]) / pos, "acc_iou50": float(self.sums["hit50"] + self.sums["true_neg"]) / n,
                "object_acc": float(self.sums["object_right"]) / n, "count": int(self.n)}


@register_task
class Localize(Task):
    name = "localize"
    Config = LocalizeConfig
    monitor, mode = "acc_iou50", "max"
    progress_keys = ("loss", "acc", "iou")
    summary_keys = ("acc_iou50", "miou", "acc")
    required_meta = ("classes", "num_classes", "img_size", "normalization")
    examples = """examples:
  cnnlab data scenes --kind localize --n 3000 --out data/loc
  cnnlab train localize --data data/loc
  cnnlab train localize --data data/loc --model resnet20            # a small backbone from scratch
  cnnlab train localize --data data/loc --img-size 96 --epochs 40   # finer boxes, slower
  cnnlab predict runs/localize-mobilenet_v2-... photo.png      # JSON and a drawing in predictions/"""

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: LocalizeConfig) -> DataBundle:
        bundle = objects.load_coco_splits(cfg, keypoints=False)
        objects.attach_transforms(bundle, flip="hflip" in cfg.augment, shift="shift" in cfg.augment)
        return bundle

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        backbone = create_backbone(meta)
        return Localizer(backbone, meta["num_classes"], drop_rate=meta.get("head_drop_rate", 0.0))

    def build_model(self, cfg: LocalizeConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        return build_backbone_model(self, cfg, resume)

    # ------------------------------------------------------------------ steps
    def _losses(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        x, present = batch["images"], batch["present"]
        h, w = x.shape[-2:]
        pc_logit, box, cls_logits = Localizer.split(model(x))
        target = boxes_to_course(batch["boxes"], h, w)  # (B, 4) fractions
        loss_obj = F.binary_cross_entropy_with_logits(pc_logit, present, reduction="none")
        loss_cls = F.cross_entropy(cls_logits, batch["labels"], reduction="none")
        if self.cfg.box_loss == "mse":
            loss_box = F.mse_loss(box, target, reduction="none").sum(1)
        else:
            loss_box = F.smooth_l1_loss(box, target, reduction="none", beta=0.05).sum(1)
        loss = (self.cfg.object_weight * loss_obj + present * (self.cfg.class_weight * loss_cls + self.cfg.box_weight * loss_box))
        pred_boxes = course_to_boxes(box.detach().float(), h, w)
        iou = paired_iou(pred_boxes, batch["boxes"])
        correct = (cls_logits.detach().argmax(1) == batch["labels"]).float()
        return loss, iou, correct, pc_logit.detach()

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, iou, correct, _ = self._losses(model, batch)
        present = batch["present"]
        pos = present.sum().clamp(min=1)
        return {"loss": loss.mean(), "acc": (correct * present).sum() / pos, "iou": (iou * present).sum() / pos}

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        loss, iou, correct, pc_logit = self._losses(model, batch)
        present = batch["present"]
        found = (pc_logit > 0).float()
        return {"loss_sum": loss.sum(), "correct_sum": (correct * present).sum(), "iou_sum": (iou * present).sum(),
                "hit50_sum": (correct * (iou >= 0.5).float() * present).sum(),
                "true_neg_sum": ((1 - present) * (1 - found)).sum(), "object_right_sum": (found == present).float().sum(),
                "positives_sum": present.sum(), "n": len(present)}

    def evaluator(self) -> LocalizeEvaluator:
        return LocalizeEvaluator()

    # ------------------------------------------------------------------ using a trained model
    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        return objects.prepare_image(self.meta, path)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        pc_logit, box, cls_logits = Localizer.split(model(images))
        s = images.shape[-1]
        probs = cls_logits.softmax(1)
        out = []
        for i in range(len(images)):
            h, w = originals[i].shape[-2:] if originals is not None else (s, s)
            xyxy = course_to_boxes(box[i], h, w).clamp(min=0)
            xyxy = torch.stack([xyxy[0].clamp(max=w), xyxy[1].clamp(max=h), xyxy[2].clamp(max=w), xyxy[3].clamp(max=h)])
            p, c = probs[i].max(0)
            out.append({"object_prob": round(float(torch.sigmoid(pc_logit[i])), 4), "class": self.meta["classes"][int(c)],
                        "class_prob": round(float(p), 4), "box": [round(float(v), 1) for v in xyxy]})
        return out

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        from cnnlab.engine.plots import draw_boxes

        draw_boxes(image, [prediction["box"]], [f"{prediction['class']} {prediction['class_prob']:.2f}"], path)

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        if split is None:
            return []
        path = run_dir / "plots" / f"boxes-{split}.png"
        prediction_grid(self, model, getattr(data, split), path, device)
        return [f"Predicted (red) and true (green) boxes on {split} images:", "", f"![boxes](plots/{path.name})", ""]


@torch.no_grad()
def prediction_grid(task: Localize, model: nn.Module, ds, path: Path, device: torch.device, n: int = 24) -> None:
    """True (green) and predicted (red) boxes on ``n`` images of a split, titled 'predicted (true) IoU'."""
    from cnnlab.engine import plots

    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    items = [ds[i] for i in idx]
    x = torch.stack([it["images"] for it in items]).to(device)
    model.eval()
    pc_logit, box, cls_logits = Localizer.split(model(x))
    s = x.shape[-1]
    pred = course_to_boxes(box.cpu(), s, s)
    true = torch.stack([it["boxes"] for it in items])
    iou = paired_iou(pred, true)
    classes = task.meta["classes"]
    titles = [f"{classes[int(c)]} ({classes[it['labels']]}) {float(v):.2f}" if it["present"] else
              f"p_c {float(torch.sigmoid(p)):.2f} (none)" for c, it, v, p in zip(cls_logits.argmax(1), items, iou, pc_logit)]
    plots.plot_box_grid(ds.images[idx].numpy(), true.numpy(), pred.numpy(), titles, path)
