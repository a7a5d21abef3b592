"""Training configuration: dataclasses whose fields are the command line.

Shared settings live in their own dataclasses: ``RunConfig`` (seed, device, run folder, ...),
``OptimConfig`` (epochs, optimizer, schedule, ...) and ``TrainConfig`` (data, model, transfer
learning) which joins them; each task's ``Config`` subclasses ``TrainConfig`` with its own fields.
A field's metadata carries its flag help, group and numeric range (``opt``), so a new option is
one edit: ``cnnlab train <task> --help`` and the validation are generated from it.

``None`` means "choose for me" and is resolved before training starts (the learning rate of
the chosen optimizer, the task's monitored metric), so ``config.json`` shows what ran.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs")
SCHEDULES = ("none", "step", "exp", "inv", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "auto")
INITS = ("default", "small", "xavier", "he", "lsuv")
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 1e-3,
              "adam": 2e-3, "adamw": 2e-3, "lbfgs": 1.0}
GROUPS = ("data", "model", "optimization", "regularization", "run")


def opt(default: Any = None, help: str = "", *, group: str = "run", flag: str | None = None,
        choices: tuple | None = None, min: float | None = None, max: float | None = None,
        min_open: bool = False, max_open: bool = False, factory: Any = None, cli: bool = True) -> Any:
    """A config field with its command-line description.

    ``min``/``max`` bound a number (``*_open``: the bound itself is excluded); every float must be finite.
    """
    meta = dict(help=help, group=group, flag=flag, choices=choices, min=min, max=max, min_open=min_open,
                max_open=max_open, cli=cli)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """How and where a run executes."""

    seed: int = opt(0, "random seed (runs are seeded by default)", min=0)
    deterministic: bool = opt(False, "bit-exact runs (deterministic algorithms)")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N")
    channels_last: bool = opt(False, "channels_last memory format")
    precision: str = opt("fp32", "fp32, bf16 (the training forward in bfloat16 autocast: fast on CPUs with "
                         "AVX-512 BF16/AMX and on GPUs, several times slower on other CPUs), or auto (bf16 where it "
                         "is native, else fp32); evaluation stays fp32", choices=PRECISIONS)
    compile: bool = opt(False, "torch.compile the model")
    threads: int | None = opt(None, "CPU threads for torch (default: torch's choice)", min=1)
    num_workers: int = opt(0, "data-loading processes (image folders too big for memory)", min=0)
    skip_nonfinite: bool = opt(False, "skip batches whose loss is NaN/inf instead of stopping")
    stop_after: int | None = opt(None, "train this many epochs now, then stop resumably (the schedule still spans --epochs)", min=1)
    snapshots: bool = opt(False, "keep a checkpoint of every epoch (for `cnnlab ensemble`)")
    monitor: str | None = opt(None, "validation metric that picks the best checkpoint (default: the task's)")
    mode: str | None = opt(None, "max or min: whether a larger --monitor is better (default: the task's)",
                           choices=("max", "min"))
    track_test: bool = opt(False, "also evaluate the test split after every epoch (test_* columns) for time-to-accuracy "
                           "curves; it never chooses a checkpoint")
    out: str | None = opt(None, "run folder (default: runs/<task>-<model>-<time>)")
    quiet: bool = opt(False, "no progress bars")
    tensorboard: bool = opt(True, "write TensorBoard event files", flag="--no-tensorboard")


@dataclass
class OptimConfig:
    """The optimizer, its schedule and the penalties of the loss."""

    epochs: int = opt(10, "number of passes over the training set", group="optimization", min=1)
    time_budget: float | None = opt(None, "train for this many seconds of training time (evaluation not counted): the "
                                    "schedule follows the clock instead of the step count and the epoch in progress "
                                    "ends when time is up; --epochs becomes an upper bound (not bit-reproducible: "
                                    "how far it gets depends on the machine)", group="optimization", min=0,
                                    min_open=True)
    batch_size: int = opt(64, "images per step", group="optimization", min=1)
    optimizer: str = opt("nesterov", "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, lbfgs (full batch)",
                         group="optimization", choices=OPTIMIZERS)
    lr: float | None = opt(None, "peak learning rate (default depends on the optimizer)", group="optimization",
                           min=0, min_open=True)
    momentum: float = opt(0.9, "momentum for momentum/nesterov", group="optimization", min=0, max=1, max_open=True)
    beta1: float = opt(0.9, "Adam/AdamW beta1: decay of the gradient's running mean", group="optimization", min=0, max=1,
                       max_open=True)
    beta2: float = opt(0.999, "Adam/AdamW beta2: decay of the squared gradient's running mean", group="optimization",
                       min=0, max=1, max_open=True)
    schedule: str = opt("cosine", "none, step, exp, inv (1/t), cosine, onecycle", group="optimization", choices=SCHEDULES)
    step_size: float = opt(3.0, "epochs between decays for --schedule step", group="optimization", min=0, min_open=True)
    gamma: float = opt(0.1, "decay factor for step (per step) and exp (per epoch)", group="optimization",
                       min=0, max=1, min_open=True)
    decay_k: float = opt(0.5, "k of the 1/t schedule: lr / (1 + k * epoch)", group="optimization", min=0)
    warmup_epochs: float = opt(0.0, "linear warm-up length in epochs", group="optimization", min=0)
    grad_clip: float | None = opt(None, "clip the gradient norm to this value", group="optimization", min=0, min_open=True)
    weight_decay: float = opt(5e-4, "L2 weight decay (not on biases and norm parameters)", group="regularization", min=0)
    decay_norm_and_bias: bool = opt(False, "apply weight decay to biases and norm parameters too", group="regularization")
    l1: float = opt(0.0, "L1 penalty on weights (with --weight-decay: elastic net)", group="regularization", min=0)
    ema: float = opt(0.0, "keep an exponential moving average of the weights (decay per step, e.g. 0.999)",
                     group="regularization", min=0, max=1, max_open=True)


@dataclass
class TrainConfig(RunConfig, OptimConfig):
    """What every task trains: data, a registered model, and how it starts."""

    task: str = opt("classify", "the task (set by `cnnlab train TASK`)", cli=False)
    data: str = opt("fashion-mnist", "dataset name or folder", group="data")
    data_root: str | None = opt(None, "folder of the IDX files (default: the Debian package's folder)", group="data")
    img_size: int | None = opt(None, "resize images to this square size", group="data", min=1)
    channels: int | None = opt(None, "1 (grey) or 3 (RGB); default: from the data", group="data", choices=(1, 3))
    val_fraction: float | None = opt(None, "hold out this fraction of training images for validation (stratified, "
                                     "fixed seed); 0 trains on everything and keeps the last epoch", group="data",
                                     min=0, max=1, max_open=True)
    limit: int | None = opt(None, "use at most N training images (quick runs)", group="data", min=1)
    limit_test: int | None = opt(None, "use at most N validation/test images", group="data", min=1)
    skip_bad: bool = opt(False, "skip unreadable images (counted in the log) instead of stopping", group="data")
    model: str = opt("lenet5", "registered model name (see `cnnlab models`)", group="model")
    model_kwargs: dict[str, Any] = opt(help="model constructor arguments (--model-arg KEY=VALUE)", group="model",
                                       factory=dict, flag="--model-arg")
    init: str = opt("default", "weight initialization: default, small, xavier, he, lsuv (data-dependent)",
                    group="model", choices=INITS)
    init_std: float = opt(0.01, "standard deviation for --init small", group="model", min=0, min_open=True)
    weights: str | None = opt(None, "start from weights: a file (cnnlab checkpoint or torchvision state dict) or a "
                              "name (imagenet)", group="model")
    freeze: int = opt(0, "freeze the first N stages of the model (their batch norm too)", group="model", min=0)
    drop_rate: float = opt(0.0, "dropout rate before the classifier", group="regularization", min=0, max=1, max_open=True)

    def validate(self) -> "TrainConfig":
        """Check every field against its type and metadata; the message names the flag and the rule."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = flag_name(f)
            if value is None:
                continue
            kind = base_type(hints[f.name])
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"{flag} {value!r}: must be true or false")
                continue
            if kind in (int, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                    raise ConfigError(f"{flag} {value!r}: must be {'an integer' if kind is int else 'a number'}")
                if not math.isfinite(value):
                    raise ConfigError(f"{flag} {value!r}: must be a finite number")
                lo, hi = meta.get("min"), meta.get("max")
                if lo is not None and (value < lo or (meta.get("min_open") and value == lo)):
                    raise ConfigError(f"{flag} {value!r}: must be {'above' if meta.get('min_open') else 'at least'} {lo}")
                if hi is not None and (value > hi or (meta.get("max_open") and value == hi)):
                    raise ConfigError(f"{flag} {value!r}: must be {'below' if meta.get('max_open') else 'at most'} {hi}")
            elif kind is str and not isinstance(value, str):
                raise ConfigError(f"{flag} {value!r}: must be a string")
            elif kind is dict and not isinstance(value, dict):
                raise ConfigError(f"{flag} {value!r}: must be KEY=VALUE pairs")
            if meta.get("choices") and value not in meta["choices"]:
                raise ConfigError(f"{flag} {value!r}: choose one of {', '.join(map(str, meta['choices']))}")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise ConfigError("--optimizer nesterov needs --momentum above 0 (e.g. 0.9); or use --optimizer sgd")
        if self.warmup_epochs > 0 and self.warmup_epochs >= self.epochs:
            raise ConfigError(f"--warmup-epochs {self.warmup_epochs}: must be shorter than --epochs {self.epochs}")
        for key in self.model_kwargs:
            if key in ("num_classes", "in_chans"):
                raise ConfigError(f"--model-arg {key}=...: {key} comes from the data; drop it")
        return self

    def resolved(self) -> "TrainConfig":
        cfg = dataclasses.replace(self).validate()
        if cfg.lr is None:
            cfg.lr = DEFAULT_LR[cfg.optimizer]
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Rebuild from ``config.json``; unknown keys (older or other versions) are ignored, types are checked."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: must hold a JSON object of settings, found {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            cfg = cls(**{k: v for k, v in d.items() if k in names})
            return cfg.validate()
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def base_type(hint: Any) -> Any:
    """int for ``int | None``, dict for ``dict[str, Any]``, ..."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return base_type(args[0])
    return origin or hint


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")
