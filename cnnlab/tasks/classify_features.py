"""Transfer learning on precomputed features: extract penultimate-layer features once, train a
softmax head on them many times (the course's "CNN as a fixed feature extractor").

``features.safetensors`` holds ``{split}_x`` float (N, D) and ``{split}_y`` int64 (N,) for each
split; ``backbone.safetensors`` the source network's weights; ``features.json`` the source run,
its model, options, input size and normalization, the new data's classes and the feature size.

``cnnlab train classify --on-features DIR`` trains the source network's classifier on the
features with everything before it frozen, so its run folder holds backbone + head: a normal
classifier that ``predict``, ``evaluate`` and ``ensemble`` use on images. A batch of features
(B, D, 1, 1) goes through the classifier alone (``feature_logits``), an image batch through the
whole network; the two agree (checked when the model is built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.errors import DataError
from cnnlab.tasks.base import DataBundle

BACKBONE = "backbone.safetensors"
SOURCE_KEYS = ("model", "model_kwargs", "in_chans", "img_size")  # what features.json must name to rebuild the source network


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, device: torch.device, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """The "CNN code" of every image: ``forward_head(forward_features(x), pre_logits=True)`` (B, D)."""
    model.eval()
    xs, ys = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        x = batch["images"].to(device)
        xs.append(model.forward_head(model.forward_features(x), pre_logits=True).flatten(1).cpu())  # (B, D)
        ys.append(batch["labels"])
    return torch.cat(xs), torch.cat(ys)


def save_features(out: Path, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], meta: dict[str, Any],
                  backbone: dict[str, torch.Tensor] | None = None) -> None:
    """The features of each split, the weights of the network that made them (``backbone``), and ``features.json``."""
    tensors = {}
    for name, (x, y) in splits.items():
        tensors[f"{name}_x"], tensors[f"{name}_y"] = x, y
    ckpt.atomic_save_tensors(out / "features.safetensors", tensors)
    if backbone is not None:
        ckpt.atomic_save_tensors(out / BACKBONE, backbone)
    ckpt.atomic_write_json(out / "features.json", dict(meta, splits={k: len(v[1]) for k, v in splits.items()}))


def load_features(folder: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, Any]]:
    folder = Path(folder)
    if not (folder / "features.safetensors").is_file():
        raise DataError(f"{folder / 'features.safetensors'} is missing; make it with `cnnlab features RUN_DIR --out {folder}`")
    meta = ckpt.read_json(folder / "features.json")
    tensors = ckpt.load_tensors(folder / "features.safetensors")
    splits = {name: (tensors[f"{name}_x"], tensors[f"{name}_y"]) for name in meta.get("splits", {}) if f"{name}_x" in tensors}
    if "train" not in splits:
        raise DataError(f"{folder / 'features.safetensors'} has no train split")
    return splits, meta


class FeatureSet:
    """Feature vectors as a dataset of ``{"images": f32 (D, 1, 1), "labels": int}`` items (a 1x1 'image' per vector)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.labels = x.float(), y.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"images": self.x[i].view(-1, 1, 1), "labels": int(self.labels[i])}


def features_bundle(cfg) -> DataBundle:
    """The feature splits as datasets; meta describes the *source network* (model, options, image size,
    normalization), so the trained run is that network with a new head, usable on images."""
    splits, fmeta = load_features(cfg.on_features)
    folder = Path(cfg.on_features)
    missing = [k for k in SOURCE_KEYS if k not in fmeta]
    if missing or not (folder / BACKBONE).is_file():
        what = f"lacks {missing[0]!r}" if missing else f"has no {BACKBONE}"
        raise DataError(f"{folder / 'features.json'} {what} (made by an older cnnlab); make the features again with "
                        f"`cnnlab features {fmeta.get('source_run', 'RUN_DIR')} --out NEW_FOLDER`")
    sets = {name: FeatureSet(*xy) for name, xy in splits.items()}
    classes = list(fmeta["classes"])
    meta = {"classes": classes, "num_classes": len(classes), "in_chans": int(fmeta["in_chans"]),
            "img_size": list(fmeta["img_size"]), "normalization": fmeta.get("normalization"),
            "model": fmeta["model"], "model_kwargs": dict(fmeta["model_kwargs"]),
            "feature_dim": int(splits["train"][0].shape[1]), "data": f"features:{cfg.on_features}",
            "on_features": str(cfg.on_features), "source_run": fmeta.get("source_run"),
            "data_source": f"features of {fmeta.get('source_run')} ({fmeta.get('data_source')})"}
    return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, meta["data_source"])


# ---------------------------------------------------------------------------- backbone + head
FEATURE_DIM = "_cnnlab_feature_dim"  # set on a network whose head was trained on features: the feature size


def mark_feature_model(model: torch.nn.Module, feature_dim: int) -> torch.nn.Module:
    setattr(model, FEATURE_DIM, int(feature_dim))
    return model


def is_feature_batch(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """True for a batch of feature vectors (B, D, 1, 1) given to a network trained on such features."""
    dim = getattr(ckpt.unwrap_model(model), FEATURE_DIM, None)
    return dim is not None and x.ndim == 4 and tuple(x.shape[1:]) == (dim, 1, 1)


def feature_logits(model: torch.nn.Module, x: torch.Tensor, drop_rate: float = 0.0) -> torch.Tensor:
    """Logits (B, K) of pre-logit features (B, D[, 1, 1]): the network's classifier (and its logit scale) alone."""
    import torch.nn.functional as F

    net = ckpt.unwrap_model(model)
    f = x.flatten(1)  # (B, D)
    if drop_rate:
        f = F.dropout(f, drop_rate, net.training)
    out = net.get_classifier()(f)
    scale = getattr(net, "logit_scale", None)
    return out * scale if isinstance(scale, (int, float)) else out


def build_feature_model(task, cfg, resume: bool) -> torch.nn.Module:
    """The source network with a new classifier for the features' classes; everything before it frozen.

    A new run starts from ``backbone.safetensors`` of the features folder (classifier excluded); a resume
    loads its own checkpoint. Refuses a network whose logits are not its classifier of the pre-logit features.
    """
    from cnnlab.engine.transfer import FROZEN
    from cnnlab.errors import ConfigError
    from cnnlab.models.weights import classifier_keys

    if cfg.weights:
        raise ConfigError("--weights with --on-features: the features folder holds its own backbone; drop --weights")
    meta = task.meta
    model = task.create_network(meta)
    if not hasattr(model, "get_classifier"):
        raise ConfigError(f"--on-features: model {meta['model']!r} has no single classifier layer to train")
    head = classifier_keys(model)
    if not resume:
        if cfg.init not in ("default", "lsuv"):
            from cnnlab.nn.init import init_weights

            init_weights(model.get_classifier(), cfg.init, std=cfg.init_std)
        path = Path(cfg.on_features) / BACKBONE
        state = {k: v for k, v in model.state_dict().items() if k in head}  # the new classifier, as initialized
        state.update({k: v for k, v in ckpt.load_tensors(path).items() if k not in head})
        ckpt.load_weights_into(model, state, path)  # one line naming the file if the backbone does not fit
    for name, p in model.named_parameters():
        p.requires_grad_(name in head)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            setattr(m, FROZEN, True)  # the frozen backbone's batch norm stays in eval mode (as the features were made)
    mark_feature_model(model, meta["feature_dim"])
    _check_head_matches(model, meta)
    return model


@torch.no_grad()
def _check_head_matches(model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """model(images) == feature_logits(model, pre-logit features of the images), on a random probe."""
    from cnnlab.errors import ConfigError

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        h, w = meta["img_size"]
        x = torch.rand(2, meta["in_chans"], h, w, generator=torch.Generator().manual_seed(0))
        f = model.forward_head(model.forward_features(x), pre_logits=True)
        ok = f.flatten(1).shape[1] == meta["feature_dim"] and torch.allclose(model(x), feature_logits(model, f), atol=1e-4, rtol=1e-4)
    finally:
        for m, mode in modes:
            m.training = mode
    if not ok:
        raise ConfigError(f"--on-features: the logits of model {meta['model']!r} are not its classifier applied to its "
                          "features; fine-tune it on images instead (--weights RUN_DIR --freeze N)")
