"""Tuning on the engine: a trainer without a run folder, the LR range test and coarse-to-fine random search.

- ``build_trainer(cfg)``: task, data, model, loaders and the ``Trainer`` exactly as ``pipeline.train``
  builds them, minus the run folder, checkpoints and report (for many short runs: lab, search).
- ``lr_find(cfg)``: Smith's LR range test as fastai's ``lr_find``: the learning rate grows
  exponentially from ``start_lr`` to ``end_lr`` over ``num_steps`` training steps of the real config (the
  Trainer's own steps, its schedule replaced), stopping once the running-mean loss exceeds 4x its minimum;
  the suggestion is the rate of steepest descent of the (centred) smoothed loss, below its minimum.
- ``random_search(cfg, space)``: trials sampled uniformly in log space (Bergstra & Bengio 2012), each a
  real training run; coarse-to-fine: each round narrows every range to the top trials' span.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cnnlab.engine.config import TrainConfig
from cnnlab.errors import ConfigError


def build_trainer(cfg: TrainConfig, task_cls: type | None = None, data_cache: dict | None = None,
                  evaluate: bool = True):
    """(trainer, task, data) for ``cfg``, built like ``pipeline.train`` but writing nothing.

    ``data_cache`` (a dict) keeps built datasets between calls with the same data flags."""
    from cnnlab.engine.registry import get_task
    from cnnlab.engine.run import setup_environment
    from cnnlab.engine.trainer import Trainer

    task_cls = task_cls or get_task(cfg.task)
    if not isinstance(cfg, task_cls.Config):
        cfg = task_cls.Config.from_dict(cfg.to_dict())
    cfg = task_cls.resolve(cfg.resolved())
    device = setup_environment(cfg)
    task = task_cls(cfg)
    key = (task_cls.build_data.__qualname__, cfg.data, cfg.data_root, cfg.img_size, cfg.channels, cfg.limit,
           cfg.limit_test, cfg.val_fraction, cfg.seed, getattr(cfg, "normalize", None), getattr(cfg, "on_features", None))
    if data_cache is not None and key in data_cache:
        data = data_cache[key]
    else:
        data = task.build_data(cfg)
        if data_cache is not None:
            data_cache[key] = data
    task.meta.update(data.meta)
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed, as in the pipeline
    model = task.build_model(cfg, data).to(device)
    train_loader = task.train_loader(cfg, data)
    eval_loader = task.eval_loader(cfg, data, data.val) if evaluate and data.val is not None else None
    trainer = Trainer(cfg, model, task, train_loader, eval_loader, None, {}, device)
    return trainer, task, data


# ---------------------------------------------------------------------------- the LR range test
@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float  # steepest descent of the smoothed loss
    min_loss_lr: float  # the rate at the smoothed loss's minimum (suggestion is usually ~1/10 of it)
    stopped_early: bool


def lr_find(cfg: TrainConfig, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100, beta: float = 0.9,
            diverge: float = 4.0) -> LRFindResult:
    """Train ``num_steps`` steps of ``cfg`` with the rate growing from ``start_lr`` to ``end_lr`` (exponentially)."""
    from cnnlab.errors import TrainingError

    if not 0 < start_lr < end_lr:
        raise ConfigError(f"--start-lr {start_lr} / --end-lr {end_lr}: need 0 < start < end")
    if num_steps < 5:
        raise ConfigError(f"--steps {num_steps}: the sweep needs at least 5 steps")
    if cfg.optimizer == "lbfgs":
        raise ConfigError("lr-find sweeps a step size per mini-batch; --optimizer lbfgs has a line search instead")
    probe = dataclasses.replace(cfg, lr=start_lr, schedule="none", warmup_epochs=0.0, time_budget=None, ema=0.0)
    trainer, task, _ = build_trainer(probe, evaluate=False)
    steps_per_epoch = trainer.steps_per_epoch
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=math.ceil(num_steps / steps_per_epoch), skip_nonfinite=True)
    ratio = end_lr / start_lr
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer, lambda step: ratio ** (min(step, num_steps - 1) / (num_steps - 1)))
    lrs: list[float] = []
    losses: list[float] = []
    state = {"avg": 0.0, "best": math.inf}
    step_fn = task.training_step

    def recording_step(model, batch):  # the task's own step: record (lr, loss), stop when done or diverged
        out = step_fn(model, batch)
        loss = float(out["loss"].detach())
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        losses.append(loss)
        if math.isfinite(loss):  # bias-corrected running mean, for the stopping rule only
            state["avg"] = beta * state["avg"] + (1 - beta) * loss
            s = state["avg"] / (1 - beta ** len(losses))
        else:
            s = math.inf
        state["best"] = min(state["best"], s)
        if len(losses) >= num_steps or s > diverge * state["best"]:
            trainer._stop = True  # the trainer finishes this step and stops
        return out

    task.training_step = recording_step
    try:
        trainer.fit()
    except TrainingError:  # the loss blew up at a high rate: the sweep ends there, as fastai's does
        pass
    return _suggest(lrs, losses, centred_mean(losses, max(3, num_steps // 15)), stopped_early=len(losses) < num_steps)


def centred_mean(values: list[float], width: int) -> list[float]:
    """Moving average over a centred window (no lag, unlike a running mean); inf where the window holds a non-finite loss."""
    half = width // 2
    out = []
    for i in range(len(values)):
        w = values[max(0, i - half): i + half + 1]
        out.append(sum(w) / len(w) if all(math.isfinite(v) for v in w) else math.inf)
    return out


def _suggest(lrs, losses, smoothed, stopped_early: bool) -> LRFindResult:
    """Steepest negative slope of the smoothed loss against log10(lr), searched up to its minimum."""
    finite = [i for i, s in enumerate(smoothed) if math.isfinite(s)]
    if len(finite) < 3:
        raise ConfigError("lr-find: the loss was not finite from the first steps; lower --start-lr")
    i_min = min(finite, key=lambda i: smoothed[i])
    idx = [i for i in finite if i <= i_min]
    if len(idx) < 3:
        return LRFindResult(lrs, losses, smoothed, lrs[i_min] / 10, lrs[i_min], stopped_early)
    x = np.log10([lrs[i] for i in idx])
    y = np.array([smoothed[i] for i in idx])
    slope = np.gradient(y, x)
    skip = max(1, len(idx) // 10)  # the first steps' bias-corrected average is noisy
    j = int(np.argmin(slope[skip:])) + skip if len(idx) > skip + 1 else int(np.argmin(slope))
    return LRFindResult(lrs, losses, smoothed, float(lrs[idx[j]]), float(lrs[i_min]), stopped_early)


def plot_lr_find(res: LRFindResult, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(res.lrs, res.losses, lw=0.6, alpha=0.4, label="loss per step")
    ax.plot(res.lrs, res.smoothed, label="smoothed (centred mean)")
    ax.axvline(res.suggestion, c="C3", ls="--", label=f"suggested {res.suggestion:.2g}")
    ax.axvline(res.min_loss_lr, c="grey", ls=":", label=f"minimum {res.min_loss_lr:.2g}")
    finite = [s for s in res.smoothed if math.isfinite(s)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- random search
SCALES = ("log", "linear", "int")


@dataclass
class Trial:
    round: int
    params: dict[str, Any]
    score: float  # the monitored validation metric (best epoch)
    seconds: float


@dataclass
class SearchResult:
    monitor: str
    mode: str
    trials: list[Trial] = field(default_factory=list)
    spaces: list[dict[str, tuple]] = field(default_factory=list)  # the space of each round

    def best(self) -> Trial:
        ok = [t for t in self.trials if math.isfinite(t.score)]
        if not ok:
            raise ConfigError("search: no trial gave a finite score; widen or lower the ranges (e.g. --param lr=1e-4:1e-1)")
        return (max if self.mode == "max" else min)(ok, key=lambda t: t.score)


def check_space(cfg: TrainConfig, space: dict[str, tuple]) -> None:
    names = {f.name for f in dataclasses.fields(cfg)}
    for name, (low, high, scale) in space.items():
        if name not in names:
            raise ConfigError(f"--param {name}: not a training flag (e.g. lr, weight_decay, momentum, drop_rate)")
        if scale not in SCALES:
            raise ConfigError(f"--param {name}: scale {scale!r}; use log, lin or int")
        if not low < high:
            raise ConfigError(f"--param {name}={low}:{high}: the low end must be below the high end")
        if scale == "log" and low <= 0:
            raise ConfigError(f"--param {name}={low}:{high}: a log-scale range must be positive (or add :lin)")


def sample(space: dict[str, tuple], rng: np.random.Generator) -> dict[str, Any]:
    """One draw: log-scale parameters as 10 ** uniform(log10 low, log10 high) (the scratch engine's sampler)."""
    from cnnlab.scratch.search import sample_params

    return sample_params({k: (lo, hi, "linear" if s == "linear" else s) for k, (lo, hi, s) in space.items()}, rng)


def narrow(space: dict[str, tuple], trials: list[Trial], mode: str, keep: float = 0.25, pad: float = 0.1) -> dict[str, tuple]:
    """The next round's space: each range shrunk to the span of the best ``keep`` fraction of ``trials``
    (at least two), padded by ``pad`` of the span (in log10 for log scales) and kept inside the old range."""
    ok = sorted([t for t in trials if math.isfinite(t.score)], key=lambda t: t.score, reverse=mode == "max")
    top = ok[:max(2, math.ceil(keep * len(ok)))]
    if len(top) < 2:
        return dict(space)
    new = {}
    for name, (low, high, scale) in space.items():
        vals = [t.params[name] for t in top]
        f = (lambda v: math.log10(v)) if scale == "log" else float
        g = (lambda v: 10 ** v) if scale == "log" else (lambda v: v)
        lo, hi = f(min(vals)), f(max(vals))
        p = pad * (f(high) - f(low)) / 2
        lo, hi = max(f(low), lo - p), min(f(high), hi + p)
        nlo, nhi = g(lo), g(hi)
        if scale == "int":
            nlo, nhi = int(math.floor(nlo)), int(math.ceil(nhi))
        new[name] = (nlo, nhi, scale) if nlo < nhi else (low, high, scale)
    return new


def random_search(cfg: TrainConfig, space: dict[str, tuple], trials: int = 8, rounds: int = 2, seed: int = 0,
                  keep: float = 0.25, progress: bool = True, data_cache: dict | None = None) -> SearchResult:
    """``rounds`` rounds of ``trials`` real training runs each; every round after the first samples the narrowed space."""
    from cnnlab.engine.registry import get_task
    from cnnlab.errors import TrainingError

    check_space(cfg, space)
    if trials < 2 or rounds < 1:
        raise ConfigError("search needs --trials of at least 2 and --rounds of at least 1")
    task_cls = get_task(cfg.task)
    result = SearchResult(cfg.monitor or task_cls.monitor, cfg.mode or task_cls.mode)
    rng = np.random.default_rng(seed)
    data_cache = {} if data_cache is None else data_cache
    current = dict(space)
    from tqdm import tqdm

    bar = tqdm(total=trials * rounds, desc="search", unit="run", disable=not progress, dynamic_ncols=True)
    with bar:
        for r in range(rounds):
            result.spaces.append(current)
            for _ in range(trials):
                params = sample(current, rng)
                run_cfg = dataclasses.replace(cfg, quiet=True, tensorboard=False, **params)
                trainer, _, _ = build_trainer(run_cfg, data_cache=data_cache)
                try:
                    trainer.fit()
                    score = trainer.best_metrics.get(trainer.monitor, math.nan)
                except TrainingError:
                    score = math.nan  # diverged: a bad corner of the space
                score = float(score) if isinstance(score, (int, float)) else math.nan
                result.trials.append(Trial(r, params, score, trainer.train_seconds))
                bar.update(1)
                bar.set_postfix_str(", ".join(f"{k}={v:.3g}" for k, v in params.items()) + f": {score:.4f}")
            current = narrow(current, [t for t in result.trials if t.round == r], result.mode, keep)
    return result


def plot_search(res: SearchResult, path) -> None:
    """One scatter per parameter: the score of every trial, coloured by round, log axes for log-scale parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res.spaces[0])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    best = res.best()
    for ax, name in zip(axes[0], names):
        for r in range(len(res.spaces)):
            ts = [t for t in res.trials if t.round == r]
            ax.scatter([t.params[name] for t in ts], [t.score for t in ts], label=f"round {r + 1}", s=25)
        ax.scatter([best.params[name]], [best.score], marker="*", s=200, c="C3", label="best")
        if res.spaces[0][name][2] == "log":
            ax.set_xscale("log")
        ax.set(xlabel=name, ylabel=f"validation {res.monitor}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def search_table(res: SearchResult) -> list[str]:
    names = list(res.spaces[0])
    rows = sorted(res.trials, key=lambda t: (not math.isfinite(t.score), -t.score if res.mode == "max" else t.score))
    lines = [f"| round | {' | '.join(names)} | validation {res.monitor} | seconds |", "|---" * (len(names) + 3) + "|"]
    for t in rows:
        lines.append(f"| {t.round + 1} | " + " | ".join(f"{t.params[n]:.4g}" for n in names) +
                     f" | {t.score:.4f} | {t.seconds:.1f} |")
    return lines
