"""Transfer learning on precomputed features: extract penultimate-layer features once, train a
softmax head on them many times (the course's "CNN as a fixed feature extractor").

``features.safetensors`` holds ``{split}_x`` float (N, D) and ``{split}_y`` int64 (N,) for each
split; ``features.json`` names the source run, the classes and the feature size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import DataError


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, device: torch.device, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    xs, ys = [], []
    for x, y in tqdm(loader, desc=desc, unit="batch", leave=False):
        xs.append(model.forward_features(x.to(device)).flatten(1).cpu())  # (B, D)
        ys.append(y)
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


class FeatureLoader:
    """Mini-batches of feature vectors; the order is a pure function of (seed, epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
        self.x, self.y, self.batch_size, self.shuffle, self.seed, self.epoch = x, y, batch_size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.y)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1000003 + self.epoch))
        else:
            order = torch.arange(n)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


def train_on_features(cfg: TrainConfig, resume=None):
    """Train the ``linear`` softmax head on a features folder; the run folder is a normal one."""
    from cnnlab.engine.run import new_run_dir, setup_environment, versions, write_config
    from cnnlab.engine.trainer import Trainer
    from cnnlab.models import create_model
    from cnnlab.tasks.classify import ClassificationTask

    splits, fmeta = load_features(cfg.on_features)
    cfg = dataclasses.replace(cfg, model="linear")
    device = setup_environment(cfg)
    x, y = splits["train"]
    classes = fmeta["classes"]
    model = create_model("linear", num_classes=len(classes), in_chans=x.shape[1], img_size=1, drop_rate=cfg.drop_rate).to(device)
    eval_name = "val" if "val" in splits else ("test" if "test" in splits else None)
    train_loader = FeatureLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed)
    eval_loader = FeatureLoader(*splits[eval_name], 1024, shuffle=False) if eval_name else None
    run_dir = Path(resume) if resume else new_run_dir(cfg)
    if not resume:
        write_config(run_dir, cfg)
    meta = {"format": "cnnlab-checkpoint-1", "task": "classify", "model": "linear",
            "model_kwargs": {"img_size": 1}, "num_classes": len(classes), "in_chans": int(x.shape[1]),
            "img_size": [1, 1], "classes": classes, "normalization": None, "data": f"features:{cfg.on_features}",
            "data_source": f"features of {fmeta.get('source_run')} ({fmeta.get('data_source')})", "config": cfg.to_dict(),
            "versions": versions(), "on_features": str(cfg.on_features)}
    task = ClassificationTask(len(classes), label_smoothing=cfg.label_smoothing)
    print(f"run folder: {run_dir}\nfeatures: {len(y)} train vectors of size {x.shape[1]} from {fmeta.get('source_run')}")
    trainer = Trainer(cfg, model, task, train_loader, eval_loader, run_dir, meta, device)
    if resume:
        trainer.load_state(Path(resume))
    result = trainer.fit()
    summary: dict[str, Any] = {}
    if result.status == "finished":
        best = ckpt.load_tensors(ckpt.find_checkpoint(run_dir, "best"))
        test_name = "test" if "test" in splits else eval_name
        final = trainer.evaluate(FeatureLoader(*splits[test_name], 1024, shuffle=False), weights=best) if test_name else {}
        summary = {"run_dir": str(run_dir), "task": "classify", "model": "linear", "on_features": str(cfg.on_features),
                   "epochs": trainer.epoch, "train_seconds": round(trainer.train_seconds, 2), "eval_split": test_name,
                   f"{test_name}_acc": final.get("acc"), f"{test_name}_top5": final.get("top5"), "classes": classes}
        trainer.logger.write_summary(summary)
        if test_name:
            print(f"{test_name} accuracy {final['acc']:.4f} (softmax head on features); run folder: {run_dir}")
    else:
        print(f"stopped; checkpoint saved. resume with:\n  cnnlab train classify --resume {run_dir}")
    return run_dir, result, summary
