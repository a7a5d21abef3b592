"""Landmark detection: regress K points of one object in a fixed order (the course's l_1x, l_1y, ..., l_Kx, l_Ky).

The order of the points is the dataset's (COCO keypoints: the category's ``keypoints`` names),
and it must be consistent across images: point k is always the same landmark (the left eye's
corner, a quadrilateral's first corner clockwise). The loss is smooth-L1 on the points as
fractions of the image, over labelled points, plus a small logistic term for visibility.

Data: a COCO keypoints folder (``train/``, ``val/``, optional ``test/``, each ``annotations.json``
with a category holding ``keypoints`` names and annotations with ``keypoints`` [x, y, v]*K); the
largest annotated object of each image is used. Batches: ``images f32[B,3,S,S]``,
``keypoints f32[B,K,3]`` (x, y, visibility) in pixels, ``boxes f32[B,4]``.
Metrics: mean normalized error (``nme``: distance / box diagonal) and ``pck`` (PCK@0.1: the
fraction of points within 0.1 box diagonals), over labelled points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import single_object as objects
from cnnlab.engine.config import opt
from cnnlab.errors import ConfigError, DataError
from cnnlab.models.localization import LandmarkRegressor, split_points
from cnnlab.tasks import register_task
from cnnlab.tasks.base import BackboneTaskConfig, DataBundle, Evaluator, Task, build_backbone_model, create_backbone

PCK_THRESHOLD = 0.1


@dataclass
class LandmarksConfig(BackboneTaskConfig):
    data: str = opt("", "a COCO keypoints folder: train/ and val/ (test/ optional), each with annotations.json",
                    group="data")
    augment: str = opt("auto", "none, hflip (mirror, swapping left_/right_ point names; needs such names), shift (move "
                       "the image, points kept inside), hflip+shift, or auto (hflip+shift when the names pair up, "
                       "else shift)", group="data", choices=("auto", "none", "hflip", "shift", "hflip+shift"))
    point_weight: float = opt(10.0, "weight of the point regression term of the loss", group="optimization", min=0)
    visibility_weight: float = opt(0.1, "weight of the visibility term of the loss", group="optimization", min=0)


class LandmarksEvaluator(Evaluator):
    def compute(self) -> dict[str, Any]:
        pts = max(1.0, float(self.sums["points"]))
        return {"loss": float(self.sums["loss"]) / max(1.0, float(self.n)), "nme": float(self.sums["nme"]) / pts,
                "pck": float(self.sums["pck"]) / pts, "count": int(self.n)}


def point_errors(pred: torch.Tensor, keypoints: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance / box diagonal (B, K), labelled mask (B, K)) of predicted points (B, K, 2) against (B, K, 3) truth."""
    diag = (boxes[:, 2:] - boxes[:, :2]).norm(dim=1).clamp(min=1e-6)  # (B,)
    dist = (pred - keypoints[..., :2]).norm(dim=-1)  # (B, K)
    return dist / diag[:, None], (keypoints[..., 2] > 0).float()


@register_task
class Landmarks(Task):
    name = "landmarks"
    Config = LandmarksConfig
    monitor, mode = "pck", "max"
    progress_keys = ("loss", "nme")
    summary_keys = ("pck", "nme")
    required_meta = ("num_keypoints", "img_size", "normalization")
    examples = """examples:
  cnnlab data scenes --kind keypoints --n 3000 --out data/quads
  cnnlab train landmarks --data data/quads
  cnnlab predict runs/landmarks-mobilenet_v2-... photo.png     # JSON and a drawing in predictions/"""

    def build_data(self, cfg: LandmarksConfig) -> DataBundle:
        bundle = objects.load_coco_splits(cfg, keypoints=True)
        if bundle.train.keypoints is None:
            raise DataError(f"--data {cfg.data}: its annotations hold no keypoints; landmarks needs COCO keypoints "
                            "(a category with 'keypoints' names, annotations with 'keypoints' [x, y, v]*K)")
        pairs = bundle.meta.get("flip_pairs") or []
        augment = ("hflip+shift" if pairs else "shift") if cfg.augment == "auto" else cfg.augment
        if "hflip" in augment and not pairs:
            raise ConfigError(f"--augment {cfg.augment}: the keypoint names have no left_/right_ pairs, so a mirrored "
                              "image would change their order; use --augment shift or none")
        objects.attach_transforms(bundle, flip="hflip" in augment, flip_pairs=pairs, shift="shift" in augment)
        bundle.meta["num_keypoints"] = int(bundle.train.keypoints.shape[1])
        return bundle

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        return LandmarkRegressor(create_backbone(meta), meta["num_keypoints"], drop_rate=meta.get("head_drop_rate", 0.0))

    def build_model(self, cfg: LandmarksConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        return build_backbone_model(self, cfg, resume)

    def _forward(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        x, kp = batch["images"], batch["keypoints"]  # (B, 3, S, S), (B, K, 3)
        h, w = x.shape[-2:]
        frac, vis_logit = split_points(model(x), self.meta["num_keypoints"])
        scale = torch.tensor([w, h], dtype=frac.dtype, device=frac.device)
        labelled = (kp[..., 2] > 0).float()  # (B, K)
        target = kp[..., :2] / scale
        reg = F.smooth_l1_loss(frac, target, reduction="none", beta=0.02).sum(-1)  # (B, K)
        vis = F.binary_cross_entropy_with_logits(vis_logit, (kp[..., 2] == 2).float(), reduction="none")
        per_image = (self.cfg.point_weight * (reg * labelled).sum(1) / labelled.sum(1).clamp(min=1)
                     + self.cfg.visibility_weight * vis.mean(1))
        err, mask = point_errors(frac.detach().float() * scale, kp, batch["boxes"])
        return per_image, err, mask

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, err, mask = self._forward(model, batch)
        return {"loss": loss.mean(), "nme": (err * mask).sum() / mask.sum().clamp(min=1)}

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        loss, err, mask = self._forward(model, batch)
        return {"loss_sum": loss.sum(), "nme_sum": (err * mask).sum(), "pck_sum": ((err <= PCK_THRESHOLD).float() * mask).sum(),
                "points_sum": mask.sum(), "n": len(loss)}

    def evaluator(self) -> LandmarksEvaluator:
        return LandmarksEvaluator()

    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        return objects.prepare_image(self.meta, path)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        frac, vis_logit = split_points(model(images), self.meta["num_keypoints"])
        names = self.meta.get("keypoint_names") or [str(k) for k in range(frac.shape[1])]
        out = []
        for i in range(len(images)):
            h, w = originals[i].shape[-2:] if originals is not None else images.shape[-2:]
            pts = frac[i] * torch.tensor([w, h], dtype=frac.dtype)
            out.append({"keypoints": [{"name": n, "x": round(float(p[0]), 1), "y": round(float(p[1]), 1),
                                       "visible": round(float(torch.sigmoid(v)), 3)} for n, p, v in zip(names, pts, vis_logit[i])]})
        return out

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        from cnnlab.engine.plots import draw_boxes

        draw_boxes(image, [], [], path, points=[(p["x"], p["y"]) for p in prediction["keypoints"]])

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        if split is None:
            return []
        path = run_dir / "plots" / f"points-{split}.png"
        prediction_grid(model, getattr(data, split), path, device)
        return [f"Predicted (red x) and true (green) points on {split} images, titled by their normalized error:", "",
                f"![points](plots/{path.name})", ""]


@torch.no_grad()
def prediction_grid(model: nn.Module, ds, path: Path, device: torch.device, n: int = 24) -> None:
    from cnnlab.engine import plots

    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    items = [ds[i] for i in idx]
    x = torch.stack([it["images"] for it in items]).to(device)
    model.eval()
    frac, _ = split_points(model(x), model.num_keypoints)
    s = x.shape[-1]
    pred = frac.cpu() * s
    kp = torch.stack([it["keypoints"] for it in items])
    err, mask = point_errors(pred, kp, torch.stack([it["boxes"] for it in items]))
    titles = [f"nme {float((e * m).sum() / m.sum().clamp(min=1)):.3f}" for e, m in zip(err, mask)]
    plots.plot_box_grid(ds.images[idx].numpy(), None, None, titles, path, true_points=kp[..., :2].numpy(),
                        pred_points=pred.numpy())
