"""Using a finished classification run: evaluate (with test-time augmentation), predict, ensemble.

Everything reads the run folder: the model and its weights, the class names and the
normalization statistics of its training split, so evaluation sees exactly what training saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.run import read_config
from cnnlab.errors import CheckpointError, ConfigError, DataError
from cnnlab.metrics.classification import ClassificationMetrics

TTA_MODES = ("none", "flip", "ten-crop")


def normalization_of(meta: dict):
    from cnnlab.data.normalize import Normalization

    return Normalization.from_dict(meta["normalization"]) if meta.get("normalization") else None


def eval_split(run_dir: str | Path, meta: dict, split: str = "test", data: str | None = None, data_root: str | None = None):
    """The labelled split a run is evaluated on (its own data unless ``data`` is given)."""
    from cnnlab.tasks.classify_pipeline import load_data

    cfg = read_config(run_dir)
    cfg.data = data or cfg.data
    cfg.data_root = data_root or cfg.data_root
    cfg.limit = None
    cfg.img_size = meta["img_size"][0] if cfg.img_size is None and not _named(cfg.data) else cfg.img_size
    cfg.channels = meta["in_chans"]
    loaded = load_data(cfg)
    chosen = {"test": loaded.test, "val": loaded.val, "train": loaded.train}.get(split)
    if chosen is None:
        chosen = loaded.val if split == "test" else None
    if chosen is None:
        raise DataError(f"data {cfg.data!r} has no {split} split; pass --split val or --split train")
    if list(loaded.classes) != list(meta["classes"]):
        raise DataError(f"data {cfg.data!r} has classes {loaded.classes[:4]}... but the run was trained on {meta['classes'][:4]}...; "
                        "evaluate on data with the same class folders")
    return chosen


def _named(spec: str) -> bool:
    from cnnlab.data.datasets import NAMED_DATASETS

    return spec in NAMED_DATASETS or spec == "fashion-mnist-or-digits"


@torch.no_grad()
def tta_probs(model: torch.nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Class probabilities (B, K), averaged over test-time augmentations.

    flip: the image and its mirror. ten-crop (AlexNet): upscale by 8/7, take the four corner
    crops and the centre crop at the original size, and their mirrors.
    """
    if tta not in TTA_MODES:
        raise ConfigError(f"--tta {tta!r}: choose one of {', '.join(TTA_MODES)}")
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


@torch.no_grad()
def split_probs(model: torch.nn.Module, split, normalization, tta: str = "none", batch_size: int = 256, desc: str = "evaluate") -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, K), labels (N,)) of a model on a dataset split."""
    from cnnlab.data.loaders import make_loader

    loader = make_loader(split, batch_size, train=False, normalization=normalization)
    probs, labels = [], []
    for x, y in tqdm(loader, desc=desc, unit="batch", leave=False):
        probs.append(tta_probs(model, x, tta))
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def metrics_from_probs(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    m = ClassificationMetrics(probs.shape[1])
    m.update(probs.clamp_min(1e-12).log(), labels, F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum"))
    return m.compute()


def evaluate_run(run_dir: str | Path, tta: str = "none", which: str = "best", split: str = "test",
                 data: str | None = None, data_root: str | None = None) -> tuple[dict[str, Any], dict]:
    model, meta = ckpt.load_run(run_dir, which)
    if meta.get("on_features"):
        from cnnlab.engine.features import load_features

        splits, _ = load_features(meta["on_features"])
        if split not in splits:
            raise DataError(f"features {meta['on_features']} have no {split} split")
        x, y = splits[split]
        with torch.no_grad():
            probs = model(x).softmax(1)
        return metrics_from_probs(probs, y), meta
    dataset = eval_split(run_dir, meta, split, data, data_root)
    probs, labels = split_probs(model, dataset, normalization_of(meta), tta)
    return metrics_from_probs(probs, labels), meta


def ensemble_members(run_dirs: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """(label, checkpoint) of each member: several runs' best checkpoints, or one run's snapshots."""
    if len(run_dirs) == 1:
        snaps = sorted((Path(run_dirs[0]) / "checkpoints").glob("snapshot-epoch*.safetensors"))
        if len(snaps) < 2:
            raise CheckpointError(f"{run_dirs[0]} has {len(snaps)} snapshots; train with --snapshots, or pass several run folders")
        return [(f"{Path(run_dirs[0]).name}:{s.stem}", s) for s in snaps]
    return [(str(r), ckpt.find_checkpoint(r, "best")) for r in run_dirs]


def load_checkpoint_model(path: Path) -> tuple[torch.nn.Module, dict]:
    from cnnlab.models import create_model

    meta = ckpt.read_json(path.with_suffix(".json"))
    model = create_model(meta["model"], num_classes=meta["num_classes"], in_chans=meta["in_chans"], **meta.get("model_kwargs", {}))
    model.load_state_dict(ckpt.load_tensors(path))
    return model.eval(), meta


def evaluate_ensemble(run_dirs: Sequence[str | Path], tta: str = "none", split: str = "test") -> dict[str, Any]:
    """Each member's accuracy and the accuracy of their averaged softmax outputs."""
    members = ensemble_members(run_dirs)
    first_run = Path(run_dirs[0])
    results, total, labels, meta0, dataset = [], None, None, None, None
    for label, path in members:
        model, meta = load_checkpoint_model(path)
        if meta0 is None:
            meta0 = meta
            dataset = eval_split(first_run, meta, split)
        elif meta["classes"] != meta0["classes"]:
            raise CheckpointError(f"{label} was trained on other classes than {members[0][0]}; an ensemble needs the same classes")
        probs, labels = split_probs(model, dataset, normalization_of(meta), tta, desc=label[-30:])
        results.append({"member": label, "acc": metrics_from_probs(probs, labels)["acc"]})
        total = probs if total is None else total + probs
    ens = metrics_from_probs(total / len(members), labels)
    return {"members": results, "ensemble_acc": ens["acc"], "ensemble_top5": ens.get("top5"), "split": split}


def prepare_image(path: str | Path, meta: dict) -> torch.Tensor:
    """Load one image file as the run's input: channels, size and normalization of its training data."""
    from cnnlab.data.images import load_image

    h, w = meta["img_size"]
    img = load_image(path, channels=meta["in_chans"], size=(h, w))  # (C, H, W) uint8, resized like the training folder
    x = img.float() / 255
    norm = normalization_of(meta)
    return norm(x) if norm is not None else x
