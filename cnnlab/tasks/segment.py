"""Semantic segmentation: a class for every pixel, from sliding windows to FCN-8s and U-Net, scored by mIoU.

``--model`` picks the architecture (cnnlab.models.segmentation: unet, fcn8s, fcn16s, fcn32s, encdec,
full_res, sliding_window), ``--backbone`` the zoo model that unet and fcn* read multi-scale maps
from (ImageNet MobileNetV2 by default; ``none`` gives unet the paper's own encoder, from scratch),
``--upsample`` the encoder-decoder's upsampling (nearest, bed_of_nails, max_unpool, transposed, bilinear).

Data: a Pascal-VOC segmentation folder, a COCO instances folder (masks rasterized per class) or
images/ + masks/ (cnnlab.data.masks); 0 = background, 255 = ignore. Batches: ``images f32[B,3,S,S]``,
``masks i64[B,S,S]``. Loss: per-pixel cross-entropy ignoring 255, optionally class-weighted.
Metrics: mIoU, per-class IoU (``iou_<class>``), pixel accuracy, from one confusion matrix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import masks as maskdata
from cnnlab.engine.config import opt
from cnnlab.errors import ConfigError
from cnnlab.metrics.segmentation import IGNORE_INDEX, SegmentationEvaluator, confusion_matrix
from cnnlab.models.segmentation import ARCHITECTURES, OWN_ENCODER, UPSAMPLES, create_segmenter
from cnnlab.tasks import register_task
from cnnlab.tasks.base import BackboneTaskConfig, DataBundle, Task


@dataclass
class SegmentConfig(BackboneTaskConfig):
    data: str = opt("", "a VOC segmentation folder (SegmentationClass/, JPEGImages/, ImageSets/Segmentation/), a COCO "
                    "folder (train/ and val/ with annotations.json) or images/ + masks/", group="data")
    model: str = opt("unet", "segmentation architecture: " + ", ".join(ARCHITECTURES), group="model", choices=ARCHITECTURES)
    backbone: str = opt("mobilenet_v2", "zoo backbone of unet and fcn* (see `cnnlab models`); none: unet's own "
                        "encoder, from scratch", group="model")
    upsample: str = opt("max_unpool", "encdec's upsampling: " + ", ".join(UPSAMPLES), group="model", choices=UPSAMPLES)
    epochs: int = opt(24, "number of passes over the training set", group="optimization", min=1)
    batch_size: int = opt(16, "images per step", group="optimization", min=1)
    lr: float | None = opt(2e-3, "peak learning rate", group="optimization", min=0, min_open=True)
    weight_decay: float = opt(1e-4, "weight decay", group="regularization", min=0)
    augment: str = opt("hflip+scale", "joint image+mask augmentation: none, or hflip, scale (random resized crop, "
                       "masks nearest), colour (jitter, images only) joined with +", group="data")
    class_weights: str = opt("none", "cross-entropy class weights: none, or balanced (median frequency balancing "
                             "over the training masks, as SegNet)", group="optimization", choices=("none", "balanced"))

    def validate(self) -> "SegmentConfig":
        if self.model in OWN_ENCODER or self.backbone in ("none", ""):
            if self.model in ("fcn8s", "fcn16s", "fcn32s"):
                raise ConfigError(f"--model {self.model} needs a --backbone (any zoo model, e.g. mobilenet_v2)")
            self.backbone = "none"
            if self.weights in ("auto", "none", ""):
                self.weights = None
        elif self.weights in ("auto", "none", ""):
            from cnnlab.models.pretrained import names_for

            self.weights = "imagenet" if self.weights == "auto" and "imagenet" in names_for(self.backbone) else None
        if self.backbone != "none":
            from cnnlab.models.registry import list_models

            if self.backbone not in list_models():
                raise ConfigError(f"--backbone {self.backbone!r}: not a registered model; see `cnnlab models`")
        maskdata.parse_augment(self.augment)
        self.resolve_warmup()
        super(BackboneTaskConfig, self).validate()
        if not self.data:
            raise ConfigError("--data is required: a VOC segmentation folder, a COCO folder or images/ + masks/ "
                              "(make one with `cnnlab data scenes --kind segment --out DIR`)")
        return self


@register_task
class Segment(Task):
    name = "segment"
    Config = SegmentConfig
    monitor, mode = "miou", "max"
    progress_keys = ("loss", "acc")
    summary_keys = ("miou", "pixel_acc")
    required_meta = ("classes", "num_classes", "img_size", "normalization", "backbone")
    examples = """examples:
  cnnlab data scenes --kind segment --n 1200 --out data/seg
  cnnlab train segment --data data/seg/voc                          # U-Net on ImageNet MobileNetV2
  cnnlab train segment --data data/seg --model fcn8s                # the COCO folder works too
  cnnlab train segment --data data/seg/voc --model encdec --upsample bed_of_nails
  cnnlab train segment --data data/seg/voc --model unet --backbone none      # the paper's U-Net, from scratch
  cnnlab predict runs/segment-unet-... photo.jpg        # mask PNG (palette) and overlay in predictions/
  cnnlab evaluate runs/segment-unet-...                 # mIoU and the per-class table"""

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: SegmentConfig) -> DataBundle:
        bundle = maskdata.load_segmentation_splits(cfg)
        maskdata.attach_transforms(bundle, maskdata.parse_augment(cfg.augment))
        if cfg.class_weights == "balanced":
            bundle.meta["class_weights"] = median_frequency_weights(bundle.train.masks, bundle.meta["num_classes"])
        return bundle

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        backbone = None
        if meta["backbone"] != "none":
            from cnnlab.models import create_model

            backbone = create_model(meta["backbone"], num_classes=1, in_chans=meta["in_chans"],
                                    **meta.get("backbone_kwargs", {}))
        return create_segmenter(meta["model"], meta["num_classes"], backbone, meta["in_chans"],
                                upsample=meta.get("upsample", "max_unpool"), **meta.get("model_kwargs", {}))

    def build_model(self, cfg: SegmentConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        from cnnlab.engine.transfer import freeze_stages, init_and_load

        self.meta.update(model=cfg.model, backbone=cfg.backbone, upsample=cfg.upsample,
                         model_kwargs=dict(cfg.model_kwargs), backbone_kwargs=self._backbone_kwargs(cfg))
        try:
            model = self.create_network(self.meta)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--model {cfg.model}: {e}") from None
        target = getattr(model, "backbone", model)
        if not resume:
            init_and_load(target, dataclasses.replace(cfg, model=cfg.backbone if cfg.backbone != "none" else cfg.model),
                          head_used=False)
        if cfg.freeze:
            if not hasattr(model, "backbone"):
                raise ConfigError(f"--freeze: --model {cfg.model} has no backbone to freeze")
            freeze_stages(model.backbone, cfg.freeze)
        return model

    def _backbone_kwargs(self, cfg: SegmentConfig) -> dict[str, Any]:
        if cfg.backbone == "none":
            return {}
        import inspect

        from cnnlab.models.registry import get_model_builder

        params = inspect.signature(get_model_builder(cfg.backbone)).parameters
        return {"img_size": self.meta["img_size"][0]} if "img_size" in params else {}

    # ------------------------------------------------------------------ steps
    def _weights(self, device: torch.device) -> torch.Tensor | None:
        w = self.meta.get("class_weights")
        return torch.tensor(w, dtype=torch.float32, device=device) if w else None

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, masks = batch["images"], batch["masks"]
        if hasattr(model, "sample_logits"):  # the sliding window learns from patches around random pixels
            logits, target = model.sample_logits(x, masks)  # (N, K), (N,)
        else:
            logits, target = model(x), masks  # (B, K, H, W), (B, H, W)
        loss = F.cross_entropy(logits.float(), target, weight=self._weights(x.device), ignore_index=IGNORE_INDEX)
        valid = target != IGNORE_INDEX
        acc = ((logits.detach().argmax(1) == target) & valid).sum() / valid.sum().clamp(min=1)
        return {"loss": loss, "acc": acc}

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        x, masks = batch["images"], batch["masks"]
        logits = model(x).float()  # (B, K, H, W)
        loss = F.cross_entropy(logits, masks, weight=self._weights(x.device), ignore_index=IGNORE_INDEX)
        cm = confusion_matrix(logits.argmax(1), masks, self.meta["num_classes"])
        return {"loss_sum": loss * len(x), "n": len(x), "confusion": cm}

    def evaluator(self) -> SegmentationEvaluator:
        return SegmentationEvaluator(self.meta["classes"])

    # ------------------------------------------------------------------ using a trained model
    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        from cnnlab.data.single_object import prepare_image

        return prepare_image(self.meta, path)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        """Per image: its size, each predicted class's share of the pixels, and its mask as COCO RLE (original size)."""
        from cnnlab.data.coco import mask_to_rle

        labels = model(images).argmax(1)  # (B, S, S)
        classes = self.meta["classes"]
        out = []
        for i in range(len(images)):
            h, w = originals[i].shape[-2:] if originals is not None else labels.shape[-2:]
            m = _resize_labels(labels[i], h, w)  # uint8 (h, w)
            counts = torch.bincount(m.reshape(-1).long(), minlength=len(classes))
            present = [k for k in range(len(classes)) if counts[k] > 0]
            out.append({"size": [h, w],
                        "classes": {classes[k]: round(float(counts[k]) / (h * w), 4) for k in present},
                        "masks": {classes[k]: mask_to_rle((m == k).numpy().astype(np.uint8))["counts"]
                                  for k in present if k != 0}})
        return out

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        """``path``: the image with the predicted classes over it; ``<name>-mask.png``: the palette mask."""
        from cnnlab.data.voc import write_palette_png
        mask = labels_from_prediction(prediction, self.meta["classes"])
        write_palette_png(path.with_name(path.stem + "-mask.png"), mask)
        plot_mask_overlay(image.numpy(), mask, self.meta["classes"], path)

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        lines = []
        for name in dict.fromkeys(s for s in ("val", split) if s is not None and getattr(data, s) is not None):
            path = run_dir / "plots" / f"masks-{name}.png"
            mask_grid(self, model, getattr(data, name), path, device)
            lines += [f"{name} images, true and predicted masks side by side (title: the image's mIoU):", "",
                      f"![masks](plots/{path.name})", ""]
        if final.get("confusion"):
            plot_iou_bars(final, self.meta["classes"], run_dir / "plots" / "iou.png", split or "")
            lines += [*iou_table(final, self.meta["classes"]), "", "![per-class IoU](plots/iou.png)", ""]
        return lines

    def evaluation_plots(self, m: dict[str, Any], folder: Path) -> list[Path]:
        path = folder / "iou.png"
        plot_iou_bars(m, self.meta["classes"], path, "")
        return [path]

    def print_details(self, m: dict[str, Any]) -> None:
        print("\n".join(iou_table(m, self.meta["classes"])))


# ---------------------------------------------------------------------------- helpers
def _resize_labels(labels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(S, S) predicted labels -> uint8 (h, w), nearest."""
    m = labels.to(torch.uint8).cpu()
    if tuple(m.shape) == (h, w):
        return m
    return F.interpolate(m[None, None].float(), size=(h, w), mode="nearest-exact")[0, 0].to(torch.uint8)


def labels_from_prediction(prediction: dict, classes: list[str]) -> np.ndarray:
    """A prediction's per-class RLE masks back to one uint8 (H, W) label map (0 where no class is predicted)."""
    from cnnlab.data.coco import rle_decode, rle_from_string

    h, w = prediction["size"]
    index = {c: k for k, c in enumerate(classes)}
    out = np.zeros((h, w), dtype=np.uint8)
    for name, counts in prediction.get("masks", {}).items():
        out[rle_decode(rle_from_string(counts), h, w).astype(bool)] = index[name]
    return out


def median_frequency_weights(masks: torch.Tensor, num_classes: int) -> list[float]:
    """SegNet's class weights: median class frequency / the class's frequency (classes absent: weight 1)."""
    counts = torch.bincount(masks[masks != IGNORE_INDEX].reshape(-1).long(), minlength=num_classes)[:num_classes].double()
    freq = counts / counts.sum().clamp(min=1)
    med = freq[freq > 0].median()
    return [round(float(med / f), 4) if f > 0 else 1.0 for f in freq]


def iou_table(m: dict[str, Any], classes: list[str]) -> list[str]:
    """Markdown table: class, IoU, true pixels, predicted pixels (from the confusion matrix)."""
    cm = np.asarray(m["confusion"], dtype=np.int64)
    lines = ["| class | IoU | true pixels | predicted pixels |", "|---|---|---|---|"]
    for k, c in enumerate(classes):
        union = cm[k].sum() + cm[:, k].sum() - cm[k, k]
        iou = f"{cm[k, k] / union:.4f}" if union else "-"
        lines.append(f"| {c} | {iou} | {int(cm[k].sum()):,} | {int(cm[:, k].sum()):,} |")
    lines.append(f"| **mean (mIoU)** | {m['miou']:.4f} | pixel accuracy {m['pixel_acc']:.4f} | |")
    return lines


@torch.no_grad()
def mask_grid(task: Segment, model: nn.Module, ds, path: Path, device: torch.device, n: int = 8) -> None:
    """``n`` images of a split: image, true mask, predicted mask in a row each, titled with the image's mIoU."""
    from cnnlab.metrics.segmentation import segmentation_scores

    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].tolist()
    items = [ds[i] for i in idx]
    model.eval()
    x = torch.stack([it["images"] for it in items]).to(device)
    pred = model(x).argmax(1).cpu()  # (n, S, S)
    true = torch.stack([it["masks"] for it in items])
    k = task.meta["num_classes"]
    scores = [segmentation_scores(confusion_matrix(p, t, k), task.meta["classes"])["miou"] for p, t in zip(pred, true)]
    plot_mask_grid(ds.images[idx].numpy(), true.numpy(), pred.numpy(), [f"mIoU {s:.2f}" for s in scores], path)


# ---------------------------------------------------------------------------- plots
def colour_masks(masks: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W) labels -> uint8 (..., H, W, 3) in VOC's palette (255, ignore, is cream as in VOC)."""
    from cnnlab.data.voc import voc_colormap

    cmap = voc_colormap()
    cmap[IGNORE_INDEX] = (224, 224, 192)
    return cmap[np.asarray(masks, dtype=np.uint8)]


def plot_mask_grid(images: np.ndarray, true: np.ndarray, pred: np.ndarray, titles: list[str], path: Path) -> None:
    """Rows of (image | true mask | predicted mask): images uint8 (N, 3, H, W), masks (N, H, W); one axes per row."""
    from cnnlab.engine import plots  # noqa: F401  (Agg backend)
    import matplotlib.pyplot as plt

    n, _, h, w = images.shape
    gap = np.full((h, max(2, w // 16), 3), 255, dtype=np.uint8)
    fig, axes = plt.subplots(n, 1, figsize=(6, 2.1 * n), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        row = np.concatenate([images[i].transpose(1, 2, 0), gap, colour_masks(true[i]), gap, colour_masks(pred[i])], 1)
        ax.imshow(row, interpolation="nearest")
        ax.set_title(f"image | true | predicted ({titles[i]})", fontsize=8)
        ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.97, bottom=0.01, hspace=0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_mask_overlay(image: np.ndarray, mask: np.ndarray, classes: list[str], path: Path, alpha: float = 0.5) -> None:
    """The image (uint8 (3, H, W)) beside itself with the predicted classes blended over it, with a legend."""
    from cnnlab.engine import plots  # noqa: F401
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    img = np.asarray(image).transpose(1, 2, 0)
    img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    colours = colour_masks(mask)
    blend = np.where(mask[..., None] > 0, (1 - alpha) * img + alpha * colours, img).astype(np.uint8)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.4))
    for ax, shown, title in ((axes[0], img, "image"), (axes[1], blend, "predicted classes")):
        ax.imshow(shown)
        ax.set_title(title)
        ax.axis("off")
    present = [int(k) for k in np.unique(mask) if k != 0 and k < len(classes)]
    if present:
        axes[1].legend(handles=[Patch(color=colour_masks(np.array([[k]]))[0, 0] / 255, label=classes[k]) for k in present],
                       loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_iou_bars(m: dict[str, Any], classes: list[str], path: Path, split: str) -> None:
    """Per-class IoU as horizontal bars, the mIoU as a line."""
    from cnnlab.engine import plots  # noqa: F401
    import matplotlib.pyplot as plt

    cm = np.asarray(m["confusion"], dtype=np.float64)
    union = cm.sum(0) + cm.sum(1) - cm.diagonal()
    iou = np.where(union > 0, cm.diagonal() / np.maximum(union, 1), np.nan)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(classes) + 1.2))
    ax.barh(range(len(classes)), np.nan_to_num(iou), color="tab:blue")
    ax.axvline(m["miou"], color="tab:red", label=f"mIoU {m['miou']:.3f}")
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="IoU", title=f"per-class IoU{' (' + split + ')' if split else ''}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
