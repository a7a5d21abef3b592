"""Image classification: softmax cross-entropy (optionally label-smoothed), top-1/top-5 accuracy.

Data: ``fashion-mnist``, ``mnist``, ``digits`` or a folder of class subfolders; normalization
statistics of the training split travel with the model. Batches: ``images f32[B,C,H,W]``,
``labels i64[B]``. Models with auxiliary classifiers (GoogLeNet) return ``(logits, [aux, ...])``
in training; their losses are added with the model's ``aux_loss_weight`` (0.3 in the paper).
Test-time augmentation (flip, ten-crop) averages class probabilities: one implementation, used
by every evaluation of a run (per epoch, final, ``cnnlab evaluate``, ``predict``, ``ensemble``).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError
from cnnlab.metrics.classification import ClassificationMetrics
from cnnlab.tasks import register_task
from cnnlab.tasks.base import DataBundle, Task

FALLBACK_DATA = "fashion-mnist-or-digits"  # the demo: Fashion-MNIST, else the bundled digits
NAMED_VAL_FRACTION = 0.1  # carved from a named dataset's training split (its test split is never used for choosing)
TTA_MODES = ("none", "flip", "ten-crop")


@dataclass
class ClassifyConfig(TrainConfig):
    data: str = opt("fashion-mnist", "fashion-mnist, mnist, digits, or a folder of images (one subfolder per class, "
                    "or train/ + val/ [+ test/])", group="data")
    augment: str = opt("none", "none, flip-crop, standard, alexnet, or e.g. "
                       "'hflip,crop=4,scale=0.35-1,jitter=0.4,pca=0.1,rotate=10,shear=5,erase=0.5'", group="data")
    progressive_resize: str = opt("none", "MIN:FRACTION, e.g. 16:0.5: train the first epochs on MIN-pixel images, "
                                  "growing linearly to full size over FRACTION of the epochs (models with global pooling)",
                                  group="data")
    normalize: str = opt("channel", "channel (per-channel mean/std), image (mean image) or none", group="data",
                         choices=("channel", "image", "none"))
    label_smoothing: float = opt(0.0, "label smoothing of the cross-entropy (e.g. 0.1)", group="regularization",
                                 min=0, max=1, max_open=True)
    on_features: str | None = opt(None, "train a softmax head on features from `cnnlab features`", group="model")
    eval_tta: str = opt("none", "test-time augmentation of every evaluation (per epoch and final): none, flip, ten-crop",
                        group="run", flag="--tta", choices=TTA_MODES)
    recipe: str | None = opt(None, "named recipe: fast (about 2 minutes: 93.6% on Fashion-MNIST) or best "
                             "(under 20 minutes: 94.9%); flags given explicitly win", group="run")

    def validate(self) -> "ClassifyConfig":
        super().validate()
        from cnnlab.data.augment import parse_augment
        from cnnlab.data.progressive import parse_progressive

        parse_augment(self.augment)
        parse_progressive(self.progressive_resize)
        return self


# ---------------------------------------------------------------------------- test-time augmentation
@torch.no_grad()
def tta_probs(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Class probabilities (B, K), averaged over test-time augmentations.

    flip: the image and its mirror. ten-crop (AlexNet): upscale by 8/7, take the four corner
    crops and the centre crop at the original size, and their mirrors.
    """
    if tta not in TTA_MODES:
        raise ConfigError(f"--tta {tta!r}: choose one of {', '.join(TTA_MODES)}")
    from cnnlab.tasks.classify_features import feature_logits, is_feature_batch

    if is_feature_batch(model, x):  # pre-logit features (--on-features): the classifier alone, nothing to augment
        return feature_logits(model, x).softmax(1)
    views = [x]
    if tta == "flip":
        views.append(x.flip(3))
    elif tta == "ten-crop":
        h, w = x.shape[-2:]
        big = F.interpolate(x, size=(round(h * 8 / 7), round(w * 8 / 7)), mode="bilinear", align_corners=False)
        H, W = big.shape[-2:]
        corners = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), ((H - h) // 2, (W - w) // 2)]
        crops = [big[..., i:i + h, j:j + w] for i, j in corners]
        views = crops + [c.flip(3) for c in crops]
    return torch.stack([model(v).softmax(1) for v in views]).mean(0)


class ClassifyEvaluator(ClassificationMetrics):
    """Confusion matrix, top-k and loss over batches of ``{"log_probs", "labels"}``."""

    def update(self, out: dict[str, Any]) -> None:  # type: ignore[override]
        super().update(out["log_probs"], out["labels"], out["loss_sum"])


# ---------------------------------------------------------------------------- the task
@register_task
class Classify(Task):
    name = "classify"
    Config = ClassifyConfig
    monitor, mode = "acc", "max"
    progress_keys = ("loss", "acc")
    summary_keys = ("acc", "top5", "loss")
    required_meta = ("classes", "num_classes", "in_chans", "img_size")

    # ------------------------------------------------------------------ data
    @classmethod
    def resolve(cls, cfg: ClassifyConfig) -> ClassifyConfig:
        """A named dataset's validation split is carved from its training split (10%, stratified, fixed seed)."""
        if cfg.val_fraction is None and not cfg.on_features and cfg.data in ("fashion-mnist", "mnist", "digits", FALLBACK_DATA):
            cfg = dataclasses.replace(cfg, val_fraction=NAMED_VAL_FRACTION)
        return cfg

    def eval_data(self, cfg: ClassifyConfig, split: str | None = None, data: str | None = None, data_root: str | None = None):
        """A folder given with --data is evaluated whole (its test/ split when it has one); else the run's own split."""
        import os

        from cnnlab.data.datasets import load_classification_data
        from cnnlab.errors import DataError

        if cfg.on_features and not data:  # its own feature splits; other data is evaluated as images
            return super().eval_data(cfg, split, data, data_root)
        if not data:
            cfg = dataclasses.replace(cfg, img_size=self.meta["img_size"][0], channels=self.meta["in_chans"])
            chosen, label, bundle = super().eval_data(cfg, split)
        else:
            h = self.meta["img_size"][0]
            loaded = load_classification_data(data, data_root, val_fraction=0 if os.path.isdir(data) else None, img_size=h,
                                              channels=self.meta["in_chans"], skip_bad=cfg.skip_bad, seed=cfg.seed)
            if loaded.test is not None:
                chosen, label = loaded.test, f"test split of {data}"
            elif os.path.isdir(data):
                parts = [s for s in (loaded.train, loaded.val) if s is not None]
                chosen = parts[0] if len(parts) == 1 else _concat(parts)
                label = f"all of {data}"
            else:
                chosen, label = loaded.train, f"train split of {data}"
            if list(loaded.classes) != list(self.meta["classes"]):
                raise DataError(f"data {data!r} has classes {loaded.classes[:4]}... but the run was trained on "
                                f"{self.meta['classes'][:4]}...; evaluate on data with the same class folders")
            bundle = DataBundle(loaded.train, loaded.val, loaded.test, {}, loaded.source)
        return chosen, label, bundle

    def build_data(self, cfg: ClassifyConfig) -> DataBundle:
        from cnnlab.data.datasets import load_classification_data
        from cnnlab.data.normalize import compute_normalization

        if cfg.on_features:
            from cnnlab.tasks.classify_features import features_bundle

            return features_bundle(cfg)
        fallback = cfg.data == FALLBACK_DATA
        spec = "fashion-mnist" if fallback else cfg.data
        named = spec in ("fashion-mnist", "mnist", "digits")
        val_fraction = cfg.val_fraction if cfg.val_fraction is not None else (NAMED_VAL_FRACTION if named else None)
        data = load_classification_data(spec, cfg.data_root, val_fraction=val_fraction, img_size=cfg.img_size,
                                        channels=cfg.channels, skip_bad=cfg.skip_bad, seed=cfg.seed, limit=cfg.limit,
                                        limit_test=cfg.limit_test, fallback=fallback)
        if len(data.classes) < 2:
            raise ConfigError(f"--data {cfg.data}: found one class ({data.classes[0]!r}); classification needs at least two "
                              "class subfolders")
        norm = None if cfg.normalize == "none" else compute_normalization(data.train, mode=cfg.normalize)
        meta = {"classes": list(data.classes), "num_classes": len(data.classes), "in_chans": data.in_chans,
                "img_size": list(data.img_size), "normalization": norm.to_dict() if norm else None,
                "data": cfg.data, "data_source": data.source}
        return DataBundle(data.train, data.val, data.test, meta, data.source, skipped=data.skipped)

    def normalization(self):
        from cnnlab.data.normalize import Normalization

        d = self.meta.get("normalization")
        return Normalization.from_dict(d) if d else None

    def train_loader(self, cfg: ClassifyConfig, data: DataBundle, rank: int = 0, world_size: int = 1):
        from cnnlab.data.augment import parse_augment, pca_lighting_basis
        from cnnlab.data.loaders import make_loader
        from cnnlab.data.progressive import parse_progressive

        if _is_feature_set(data.train):
            return super().train_loader(cfg, data, rank, world_size)
        augment = parse_augment(cfg.augment)
        pca = pca_lighting_basis(data.train.images) if augment.pca_lighting and hasattr(data.train, "images") else None
        return make_loader(data.train, cfg.batch_size, train=True, augment=augment, normalization=self.normalization(),
                           seed=cfg.seed, rank=rank, world_size=world_size, num_workers=cfg.num_workers,
                           channels_last=cfg.channels_last, pca_basis=pca, resize=parse_progressive(cfg.progressive_resize),
                           epochs=cfg.epochs)

    def eval_loader(self, cfg: ClassifyConfig, data: DataBundle, split, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import make_loader

        if _is_feature_set(split):
            return super().eval_loader(cfg, data, split, rank, world_size)
        return make_loader(split, 512, train=False, normalization=self.normalization(), seed=cfg.seed, rank=rank,
                           world_size=world_size, channels_last=cfg.channels_last, num_workers=cfg.num_workers)

    # ------------------------------------------------------------------ model
    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models import create_model

        model = create_model(meta["model"], num_classes=meta["num_classes"], in_chans=meta["in_chans"],
                             **meta.get("model_kwargs", {}))
        if meta.get("on_features") and meta.get("feature_dim"):
            from cnnlab.tasks.classify_features import mark_feature_model

            mark_feature_model(model, meta["feature_dim"])  # its head was trained on features: it takes them too
        return model

    def model_kwargs(self, cfg: ClassifyConfig) -> dict[str, Any]:
        """The model's constructor options: --model-arg, the data's image size and --drop-rate where the builder takes them."""
        from cnnlab.models.registry import get_model_builder

        kwargs = dict(cfg.model_kwargs)
        kwargs.setdefault("img_size", self.meta["img_size"][0])
        if cfg.drop_rate:
            kwargs["drop_rate"] = cfg.drop_rate
        params = inspect.signature(get_model_builder(cfg.model)).parameters
        return {k: v for k, v in kwargs.items() if k in params or k in cfg.model_kwargs}

    def build_model(self, cfg: ClassifyConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        from cnnlab.data.progressive import check_model_accepts, parse_progressive

        if cfg.on_features:  # the source network (named by the features folder) with a new head: backbone + head
            from cnnlab.tasks.classify_features import build_feature_model

            return build_feature_model(self, cfg, resume)
        self.meta.update(model=cfg.model, model_kwargs=self.model_kwargs(cfg))
        model = super().build_model(cfg, data, resume=resume)
        if cfg.init == "lsuv" and not resume:
            _lsuv(model, data.train, self.normalization(), cfg.seed)
        resize = parse_progressive(cfg.progressive_resize)
        if resize is not None:
            h, w = self.meta["img_size"]
            check_model_accepts(model, self.meta["in_chans"], (h, w), resize.min_size, cfg.model, cfg.progressive_resize,
                                torch.device("cpu"))
        return model

    # ------------------------------------------------------------------ steps
    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch["images"], batch["labels"]  # (B, C, H, W), (B,); with --on-features (B, D, 1, 1)
        from cnnlab.tasks.classify_features import feature_logits, is_feature_batch

        out = feature_logits(model, x, self.cfg.drop_rate) if is_feature_batch(model, x) else model(x)
        aux: list[torch.Tensor] = []
        if isinstance(out, tuple):
            out, aux = out
        loss = F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)
        if aux:
            from cnnlab.engine.checkpoint import unwrap_model

            weight = getattr(unwrap_model(model), "aux_loss_weight", 0.3)
            loss = loss + weight * sum(F.cross_entropy(a, y, label_smoothing=self.cfg.label_smoothing) for a in aux)
        acc = (out.detach().argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc}

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch["images"], batch["labels"]
        log_probs = tta_probs(model, x, self.cfg.eval_tta).clamp_min(1e-12).log()  # (B, K)
        return {"log_probs": log_probs, "labels": y, "loss_sum": F.nll_loss(log_probs, y, reduction="sum")}

    def evaluator(self) -> ClassifyEvaluator:
        return ClassifyEvaluator(self.meta["num_classes"])

    # ------------------------------------------------------------------ using a trained model
    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """An image file as the run's input, decoded and resized exactly like its training images."""
        from cnnlab.data.images import load_image

        h, w = self.meta["img_size"]
        img = load_image(path, channels=self.meta["in_chans"], size=(h, w))  # uint8 (C, H, W)
        x = img.float() / 255
        norm = self.normalization()
        return (norm(x) if norm is not None else x), img

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals=None, topk: int = 5) -> list[dict]:
        classes = self.meta["classes"]
        probs = tta_probs(model, images, self.cfg.eval_tta)
        p, idx = probs.topk(min(topk, len(classes)), dim=1)
        return [{"top": [{"class": classes[int(i)], "prob": round(float(q), 6)} for q, i in zip(pr, ix)]}
                for pr, ix in zip(p, idx)]

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        """Confusion matrices (counts, normalized), per-class precision/recall/F1, the most confused pairs, the loss
        on a log scale and, for in-memory images, grids of predictions and of the top losses of the split."""
        from cnnlab.engine import plots

        classes = self.meta["classes"]
        if not final or split is None:
            return []
        folder = run_dir / "plots"
        plots.plot_confusion(final["confusion"], classes, folder / "confusion.png")
        plots.plot_confusion_normalized(final["confusion"], classes, folder / "confusion-normalized.png", split)
        prf = plots.precision_recall_f1(final["confusion"])
        acc = final.get("per_class_acc", [])
        lines = [f"| class | {split} accuracy | precision | recall | F1 | support |", "|---|---|---|---|---|---|",
                 *[f"| {c} | {acc[i] if i < len(acc) else float('nan'):.3f} | {prf['precision'][i]:.3f} | "
                   f"{prf['recall'][i]:.3f} | {prf['f1'][i]:.3f} | {prf['support'][i]} |" for i, c in enumerate(classes)],
                 f"| macro average | {sum(acc) / max(1, len(acc)):.3f} | {prf['precision'].mean():.3f} | "
                 f"{prf['recall'].mean():.3f} | {prf['f1'].mean():.3f} | {int(prf['support'].sum())} |", ""]
        pairs = plots.most_confused(final["confusion"], classes)
        if pairs:
            lines += [f"Most confused ({split} split):", "", "| true | predicted as | images |", "|---|---|---|",
                      *[f"| {a} | {b} | {n} |" for a, b, n in pairs], ""]
        lines += ["![confusion matrix](plots/confusion.png)", "",
                  "![normalized confusion matrix](plots/confusion-normalized.png)", ""]
        metrics_csv = run_dir / "metrics.csv"
        if metrics_csv.is_file():
            import csv

            with open(metrics_csv) as f:
                rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
            if rows:
                plots.plot_loss(rows, folder / "loss-log.png", val_split="val", log=True)
                lines += ["![loss, log scale](plots/loss-log.png)", ""]
        split_ds = getattr(data, split)
        if hasattr(split_ds, "images") and split_ds.images.ndim == 4 and split_ds.images.dtype == torch.uint8:
            _plot_prediction_grid(model, split_ds, self.normalization(), classes, device, folder / "predictions.png", split)
            _plot_top_losses(self, model, split_ds, data, classes, folder / "top-losses.png", split)
            lines += ["![predictions: predicted p (true)](plots/predictions.png)", "",
                      f"![the {split} images with the largest loss](plots/top-losses.png)", ""]
        return lines

    def evaluation_plots(self, m: dict[str, Any], folder: Path) -> list[Path]:
        from cnnlab.engine import plots

        path, normalized = folder / "confusion.png", folder / "confusion-normalized.png"
        plots.plot_confusion(m["confusion"], self.meta["classes"], path)
        plots.plot_confusion_normalized(m["confusion"], self.meta["classes"], normalized)
        return [path, normalized]

    def print_details(self, m: dict[str, Any]) -> None:
        classes = self.meta["classes"]
        width = max(len(c) for c in classes)
        from cnnlab.engine.plots import most_confused, precision_recall_f1

        prf = precision_recall_f1(m["confusion"])
        print(f"per-class accuracy, precision, recall, F1:\n  {'class':<{width}}  accuracy  precision  recall  F1      support")
        for i, (c, a) in enumerate(zip(classes, m["per_class_acc"])):
            print(f"  {c:<{width}}  {a:.4f}    {prf['precision'][i]:.4f}     {prf['recall'][i]:.4f}  "
                  f"{prf['f1'][i]:.4f}  {prf['support'][i]}")
        pairs = most_confused(m["confusion"], classes, 3)
        if pairs:
            print("most confused: " + ", ".join(f"{a} as {b} ({n})" for a, b, n in pairs))
        if len(classes) <= 20:
            print("confusion matrix (rows: true, columns: predicted):")
            for i, row in enumerate(m["confusion"]):
                print(f"  {classes[i][:width]:<{width}} " + " ".join(f"{v:5d}" for v in row))

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        classes = self.meta["classes"]
        return {"tta": self.cfg.eval_tta, "classes": list(classes),
                "per_class_acc": dict(zip(classes, final.get("per_class_acc", [])))}


def _is_feature_set(ds) -> bool:
    from cnnlab.tasks.classify_features import FeatureSet

    return isinstance(ds, FeatureSet)


def _concat(parts):
    from cnnlab.data.datasets import ArrayDataset, FileDataset

    if all(isinstance(p, ArrayDataset) for p in parts):
        return ArrayDataset(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]), parts[0].classes)
    return FileDataset([f for p in parts for f in p.paths], torch.cat([p.labels for p in parts]), parts[0].classes,
                       parts[0].channels, parts[0].img_size)


def _lsuv(model: nn.Module, train, normalization, seed: int, n: int = 512) -> None:
    """--init lsuv: LSUV on ``n`` normalized training images drawn with the run's seed (the same on every rank)."""
    from cnnlab.nn.init import lsuv_init

    if not hasattr(train, "images"):
        raise ConfigError("--init lsuv needs the training images in memory (image folders under 2 GiB); pick another --init")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:n]
    x = train.images[idx].float() / 255  # (n, C, H, W) in [0, 1]
    if normalization is not None:
        x = normalization(x)
    lsuv_init(model, x)


def _number(v: str):
    try:
        return float(v) if v not in ("", None) else None
    except ValueError:
        return None


@torch.no_grad()
def _plot_prediction_grid(model, split, normalization, classes, device, path: Path, split_name: str = "test",
                          n: int = 32) -> None:
    """A fixed random sample of the split, titled 'predicted p (true)'."""
    from cnnlab.engine import plots

    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(split), generator=g)[:n]
    images = split.images[idx]  # (n, C, H, W) uint8
    x = images.float() / 255
    if normalization is not None:
        x = normalization(x)
    model.eval()
    p, pred = model(x.to(device)).softmax(1).cpu().max(1)
    plots.plot_prediction_grid(images.numpy(), pred.tolist(), p.tolist(), classes, path, true=split.labels[idx].tolist(),
                               title=f"{split_name} split: predicted probability (true class); wrong in red")


def _plot_top_losses(task, model, split, data, classes, path: Path, split_name: str, k: int = 16, limit: int = 10000) -> None:
    """The ``k`` images of the split (its first ``limit``) with the largest loss: what the model gets most wrong."""
    from cnnlab.data.datasets import ArrayDataset
    from cnnlab.engine import plots

    if len(split) > limit:
        split = ArrayDataset(split.images[:limit], split.labels[:limit], classes)
    device = next(model.parameters()).device
    model.eval()
    probs, labels = [], []
    with torch.no_grad():
        for batch in task.eval_loader(task.cfg, data, split):
            probs.append(tta_probs(model, batch["images"].to(device), task.cfg.eval_tta).cpu())  # (B, K)
            labels.append(batch["labels"])
    probs, labels = torch.cat(probs), torch.cat(labels)
    idx, losses = plots.top_losses(probs, labels, k)
    images = split.images[idx].numpy()
    p, pred = probs[idx].max(1)
    plots.plot_prediction_grid(images, pred.tolist(), p.tolist(), classes, path, true=labels[idx].tolist(),
                               extra=[f"loss {v:.2f}" for v in losses],
                               title=f"{split_name} split: the {len(idx)} largest losses, predicted p (true)")


__all__ = ["ClassifyConfig", "Classify", "tta_probs", "setup"]


def setup(cfg: ClassifyConfig) -> tuple[Classify, DataBundle]:
    """(task, data) as a run builds them, for scripts and benchmarks: ``task.build_model(cfg, data)`` follows."""
    cfg = Classify.resolve(cfg.resolved())
    task = Classify(cfg)
    data = task.build_data(cfg)
    task.meta.update(data.meta)
    return task, data
