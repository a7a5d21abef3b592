"""The task protocol: what one application tells the engine, and nothing more.

A task is one file in ``cnnlab/tasks/`` holding a ``Config`` dataclass (its flags) and a
registered ``Task`` subclass. The engine (``cnnlab.engine.pipeline``) runs every task the same way:

    task = TaskClass(cfg)
    data = task.build_data(cfg)                       # DataBundle: train / val / test + meta
    model = task.build_model(cfg, data)               # any registered backbone by name
    for batch in task.train_loader(...):              # dict batches (DESIGN "Batches")
        loss = task.training_step(model, batch)["loss"]
    ev = task.evaluator(); ev.update(task.validation_step(model, batch)); ev.compute()
    task.predict(model, images) -> list[dict]; task.report(...)

``meta`` (classes, normalization, keypoint names, ...) is saved with every checkpoint, and a task
rebuilt from a run folder gets it back, so evaluation and prediction see what training saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError


@dataclass
class DataBundle:
    """Train / val / test datasets of a task, how to batch them, and what a model must remember of them."""

    train: Any
    val: Any | None
    test: Any | None
    meta: dict[str, Any] = field(default_factory=dict)  # saved in checkpoints: classes, normalization, ...
    source: str = ""
    collate: Callable | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def sizes(self) -> str:
        return ", ".join(f"{len(s)} {n}" for n, s in (("train", self.train), ("val", self.val), ("test", self.test))
                         if s is not None)


class Evaluator:
    """torchmetrics-shaped: ``update(out)`` per batch, ``compute() -> dict of floats``, ``reset()``.

    The default sums every 0-d tensor named ``<key>_sum`` in the step's output and divides by the
    summed ``n``: ``{"loss_sum": ..., "n": B}`` gives ``{"loss": mean}``. ``sync()`` adds the
    sums over DDP ranks.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = torch.zeros((), dtype=torch.float64)

    @torch.no_grad()
    def update(self, out: dict[str, Any]) -> None:
        for k, v in out.items():
            if k.endswith("_sum"):
                v = torch.as_tensor(v).detach().double().cpu()
                self.sums[k[:-4]] = self.sums.get(k[:-4], torch.zeros((), dtype=torch.float64)) + v
        self.n += float(out.get("n", 0))

    def tensors(self) -> list[torch.Tensor]:
        return [self.n, *[self.sums[k] for k in sorted(self.sums)]]

    def sync(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for t in self.tensors():
                dist.all_reduce(t)

    def compute(self) -> dict[str, Any]:
        n = max(1.0, float(self.n))
        return {k: float(v) / n for k, v in self.sums.items()} | {"count": int(self.n)}


class Task(ABC):
    """Base class of every task; subclasses set the class attributes and the abstract methods."""

    name: ClassVar[str]
    Config: ClassVar[type[TrainConfig]] = TrainConfig
    monitor: ClassVar[str] = "loss"  # validation metric that picks the best checkpoint
    mode: ClassVar[str] = "min"
    progress_keys: ClassVar[tuple[str, ...]] = ("loss",)  # running means shown in the progress bar
    summary_keys: ClassVar[tuple[str, ...]] = ("loss",)  # final metrics printed at the end of a run
    required_meta: ClassVar[tuple[str, ...]] = ()  # checkpoint metadata a loaded run cannot do without

    def __init__(self, cfg: TrainConfig, meta: dict[str, Any] | None = None):
        self.cfg = cfg
        self.meta: dict[str, Any] = dict(meta or {})

    # ------------------------------------------------------------------ data and model
    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        """Fill the task's own defaults into the config before it is saved (config.json shows what ran)."""
        return cfg

    @abstractmethod
    def build_data(self, cfg: TrainConfig) -> DataBundle:
        """Train / val / test datasets and the meta a checkpoint keeps."""

    @abstractmethod
    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        """The bare network from checkpoint metadata (used for training and for loading a run)."""

    def build_model(self, cfg: TrainConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        """create_network, then --init, --weights (new runs only: a resume loads its own) and --freeze."""
        from cnnlab.engine.transfer import freeze_stages, init_and_load

        model = self.create_network(self.meta)
        if not resume:
            init_and_load(model, cfg)
        if cfg.freeze:
            freeze_stages(model, cfg.freeze)
        return model

    def train_loader(self, cfg: TrainConfig, data: DataBundle, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import DictLoader

        return DictLoader(data.train, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed, rank=rank,
                          world_size=world_size, collate=data.collate, num_workers=cfg.num_workers)

    def eval_loader(self, cfg: TrainConfig, data: DataBundle, split: Any, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import DictLoader

        return DictLoader(split, max(cfg.batch_size, 64), shuffle=False, seed=cfg.seed, rank=rank, world_size=world_size,
                          collate=data.collate, num_workers=cfg.num_workers)

    def batch_size(self, batch: dict[str, Any]) -> int:
        images = batch["images"]
        return len(images)

    # ------------------------------------------------------------------ steps
    @abstractmethod
    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``{"loss": ..., other 0-d tensors to log}`` for one batch."""

    @abstractmethod
    def validation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """What ``evaluator().update`` takes for one batch."""

    def evaluator(self) -> Evaluator:
        return Evaluator()

    # ------------------------------------------------------------------ using a trained model
    def eval_data(self, cfg: TrainConfig, split: str | None = None, data: str | None = None,
                  data_root: str | None = None) -> tuple[Any, str, DataBundle]:
        """(dataset, its label, bundle) to evaluate a trained run on: a split of its own data, or other data.

        The run's meta (normalization, classes) stays as it was trained; only the images change.
        """
        import dataclasses

        from cnnlab.errors import DataError

        changes: dict[str, Any] = {"limit": None}  # limit_test stays: the same test images the run reported on
        if data:
            changes.update(data=data, data_root=data_root)
        cfg = dataclasses.replace(cfg, **changes)
        bundle = self.build_data(cfg)
        if split is None:  # as the run's own final evaluation: test, else val
            split = "test" if bundle.test is not None else "val"
        chosen = getattr(bundle, split, None) if split in ("train", "val", "test") else None
        if chosen is None:
            have = [n for n in ("train", "val", "test") if getattr(bundle, n) is not None]
            raise DataError(f"data {cfg.data!r} has no {split} split (it has {', '.join(have)}); pass --split {have[-1]}")
        return chosen, split, bundle

    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """An image file as (model input f32 (C, H, W), the uint8 image it was made from, for drawing)."""
        raise ConfigError(f"the {self.name} task does not predict on image files")

    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        """JSON-ready predictions for a batch of prepared images (B, C, H, W)."""
        raise ConfigError(f"the {self.name} task does not predict on image files")

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        """Draw one prediction on its image (uint8 (C, H, W)); optional."""

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        """Task plots in ``run_dir/plots``; returns markdown lines for report.md."""
        return []


# ---------------------------------------------------------------------------- tasks built on a zoo backbone
OPTIMIZERS_NO_LBFGS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


@dataclass
class BackboneTaskConfig(TrainConfig):
    """Defaults shared by tasks that put a head on a zoo backbone and read a COCO folder (localize, landmarks)."""

    data: str = opt("", "a COCO folder: train/ and val/ (test/ optional), each with annotations.json", group="data")
    model: str = opt("mobilenet_v2", "backbone: any registered model (see `cnnlab models`)", group="model")
    img_size: int | None = opt(None, "resize images to this square size (default: the images' size, else 128)",
                               group="data", min=8)
    epochs: int = opt(30, "number of passes over the training set", group="optimization", min=1)
    optimizer: str = opt("adamw", ", ".join(OPTIMIZERS_NO_LBFGS), group="optimization", choices=OPTIMIZERS_NO_LBFGS)
    lr: float | None = opt(1e-3, "peak learning rate", group="optimization", min=0, min_open=True)
    warmup_epochs: float | None = opt(None, "linear warm-up length in epochs (pretrained weights meet a new head; "
                                      "default 1, at most half of --epochs)", group="optimization", min=0)
    channels_last: bool = opt(True, "channels_last memory format (faster convolutions on CPUs)", flag="--no-channels-last")
    weight_decay: float = opt(0.05, "weight decay", group="regularization", min=0)
    weights: str | None = opt("auto", "start the backbone from weights: auto (ImageNet weights when the model has "
                              "them, as mobilenet_v2 does; else random), none, a name (imagenet), a file or a run folder",
                              group="model")

    def resolve_warmup(self) -> None:
        """Default warm-up: one epoch, at most half of --epochs (a one-epoch first try must not stop on it)."""
        if self.warmup_epochs is None:
            self.warmup_epochs = min(1.0, self.epochs / 2) if isinstance(self.epochs, (int, float)) else 1.0

    def validate(self) -> "BackboneTaskConfig":
        if self.weights in ("auto", "none", ""):
            from cnnlab.models.pretrained import names_for

            self.weights = "imagenet" if self.weights == "auto" and "imagenet" in names_for(self.model) else None
        self.resolve_warmup()
        super().validate()
        if not self.data:
            raise ConfigError("--data is required: a COCO folder with train/ and val/, each with annotations.json")
        return self


def backbone_kwargs(cfg: TrainConfig, img_size: int) -> dict[str, Any]:
    """--model-arg options plus the generic ones (img_size) the backbone's builder takes."""
    import inspect

    from cnnlab.models.registry import get_model_builder

    params = inspect.signature(get_model_builder(cfg.model)).parameters
    kwargs = dict(cfg.model_kwargs)
    if "img_size" in params:
        kwargs.setdefault("img_size", img_size)
    return kwargs


def create_backbone(meta: dict[str, Any]) -> nn.Module:
    """The registered model named in ``meta`` (its classifier unused by heads that read forward_features)."""
    from cnnlab.models import create_model

    return create_model(meta["model"], num_classes=max(1, meta.get("num_classes", 1)), in_chans=meta["in_chans"],
                        **meta.get("model_kwargs", {}))


def build_backbone_model(task: Task, cfg: TrainConfig, resume: bool) -> nn.Module:
    """A backbone + task head: --init on the whole model, --weights into the backbone (new runs), --freeze its stages."""
    from cnnlab.engine.transfer import freeze_stages, init_and_load

    task.meta.update(model=cfg.model, model_kwargs=backbone_kwargs(cfg, task.meta["img_size"][0]),
                     head_drop_rate=cfg.drop_rate)
    model = task.create_network(task.meta)
    if not resume:
        init_and_load(model.backbone, cfg, head_used=False)
    if cfg.freeze:
        freeze_stages(model.backbone, cfg.freeze)
    return model
