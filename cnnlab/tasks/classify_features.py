"""Transfer learning on precomputed features: extract penultimate-layer features once, train a
softmax head on them many times (the course's "CNN as a fixed feature extractor").

``features.safetensors`` holds ``{split}_x`` float (N, D) and ``{split}_y`` int64 (N,) for each
split; ``features.json`` names the source run, the classes and the feature size. With
``cnnlab train classify --on-features DIR`` the ``linear`` head trains on them like any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.errors import DataError
from cnnlab.tasks.base import DataBundle


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


def save_features(out: Path, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], meta: dict[str, Any]) -> None:
    tensors = {}
    for name, (x, y) in splits.items():
        tensors[f"{name}_x"], tensors[f"{name}_y"] = x, y
    ckpt.atomic_save_tensors(out / "features.safetensors", tensors)
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
    splits, fmeta = load_features(cfg.on_features)
    sets = {name: FeatureSet(*xy) for name, xy in splits.items()}
    x = splits["train"][0]
    classes = list(fmeta["classes"])
    meta = {"classes": classes, "num_classes": len(classes), "in_chans": int(x.shape[1]), "img_size": [1, 1],
            "normalization": None, "data": f"features:{cfg.on_features}", "on_features": str(cfg.on_features),
            "data_source": f"features of {fmeta.get('source_run')} ({fmeta.get('data_source')})"}
    return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, meta["data_source"])
