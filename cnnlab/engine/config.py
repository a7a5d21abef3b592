"""Training configuration: one dataclass; CLI flags map onto its fields; the resolved copy is saved.

``None`` means "choose for me" and is resolved before training starts (for example the
learning rate of the chosen optimizer), so ``config.json`` in a run folder shows what ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs")
SCHEDULES = ("none", "step", "exp", "inv", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 1e-3,
              "adam": 2e-3, "adamw": 2e-3, "lbfgs": 1.0}


@dataclass
class TrainConfig:
    # what to train
    task: str = "classify"
    data: str = "fashion-mnist"
    data_root: str | None = None
    model: str = "lenet5"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # data handling
    img_size: int | None = None
    channels: int | None = None
    val_fraction: float | None = None
    limit: int | None = None
    limit_test: int | None = None
    skip_bad: bool = False
    augment: str = "none"
    progressive_resize: str = "none"  # MIN:FRACTION: train at MIN px first, growing to full size over FRACTION of the epochs
    normalize: str = "channel"  # channel | image | none
    # optimization
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "nesterov"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False  # L2 on batch-norm and bias parameters too
    l1: float = 0.0
    schedule: str = "cosine"
    step_size: float = 3.0  # epochs between decays (step)
    gamma: float = 0.1  # factor per step (step) or per epoch (exp)
    decay_k: float = 0.5  # 1/t decay: lr / (1 + k * epoch)
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    drop_rate: float = 0.0
    init: str = "default"
    init_std: float = 0.01
    ema: float = 0.0  # exponential moving average of weights (decay per step), 0 = off
    # transfer learning
    weights: str | None = None
    freeze: int = 0
    on_features: str | None = None
    # runtime
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    channels_last: bool = False
    precision: str = "fp32"  # fp32 | bf16: autocast of the training step's forward pass (weights, optimizer stay fp32)
    compile: bool = False
    threads: int | None = None
    num_workers: int = 0
    skip_nonfinite: bool = False
    stop_after: int | None = None  # train this many epochs now, then stop resumably (the schedule spans `epochs`)
    snapshots: bool = False  # keep a checkpoint of every epoch (for snapshot ensembles)
    eval_tta: str = "none"  # none | flip: test-time augmentation of every evaluation (per epoch and final)
    out: str | None = None
    recipe: str | None = None
    quiet: bool = False
    tensorboard: bool = True

    def validate(self) -> "TrainConfig":
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: {rule}")

        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"unknown optimizer; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"unknown schedule; choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 1:
            raise bad("epochs", "must be at least 1")
        if self.batch_size < 1:
            raise bad("batch_size", "must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise bad("lr", "must be positive")
        for name in ("weight_decay", "l1", "label_smoothing", "drop_rate", "warmup_epochs", "ema"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if not self.label_smoothing < 1:
            raise bad("label_smoothing", "must be below 1")
        if not self.drop_rate < 1:
            raise bad("drop_rate", "must be below 1")
        if not self.ema < 1:
            raise bad("ema", "is a decay per step and must be below 1 (e.g. 0.999)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise bad("grad_clip", "must be positive")
        if self.stop_after is not None and self.stop_after < 1:
            raise bad("stop_after", "must be at least 1")
        if self.freeze < 0:
            raise bad("freeze", "must not be negative")
        if self.normalize not in ("channel", "image", "none"):
            raise bad("normalize", "choose channel, image or none")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"choose one of {', '.join(PRECISIONS)}")
        if self.eval_tta not in ("none", "flip"):
            raise bad("eval_tta", "choose none or flip")
        from cnnlab.data.progressive import parse_progressive

        parse_progressive(self.progressive_resize)
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise bad("warmup_epochs", f"must be shorter than --epochs {self.epochs}")
        return self

    def resolved(self) -> "TrainConfig":
        cfg = dataclasses.replace(self).validate()
        if cfg.lr is None:
            cfg.lr = DEFAULT_LR[cfg.optimizer]
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
