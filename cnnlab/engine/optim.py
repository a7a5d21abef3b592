"""Optimizers, learning-rate schedules and weight penalties, as the course presents them.

Optimizers are torch.optim's (SGD with and without momentum, Nesterov, AdaGrad, RMSProp, Adam,
AdamW, full-batch L-BFGS). Every schedule is one pure function of the step, wrapped in a
LambdaLR, so resuming needs only the step count.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from cnnlab.engine.config import TrainConfig
from cnnlab.errors import ConfigError


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict]:
    """Split trainable parameters so biases and norm scales/shifts (1-D tensors) skip L2 decay."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 and not decay_norm_and_bias else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    lr, wd = float(cfg.lr), cfg.weight_decay
    groups = param_groups(model, wd, cfg.decay_norm_and_bias)
    if not any(g["params"] for g in groups):
        raise ConfigError("no trainable parameters: --freeze froze the whole model; freeze fewer stages")
    name = cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if name == "nesterov":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.99)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(cfg.beta1, cfg.beta2))
    if name == "adamw":  # decoupled weight decay (Loshchilov & Hutter)
        return torch.optim.AdamW(groups, lr=lr, betas=(cfg.beta1, cfg.beta2))
    if name == "lbfgs":
        if wd:
            raise ConfigError("--optimizer lbfgs takes no --weight-decay (torch's L-BFGS has none); use --weight-decay 0")
        params = [p for g in groups for p in g["params"]]
        return torch.optim.LBFGS(params, lr=lr, max_iter=20, history_size=10, line_search_fn="strong_wolfe")
    raise ConfigError(f"unknown optimizer {name!r}")


def lr_multiplier(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as a function of the global step: linear warm-up, then the chosen decay."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))

    def f(step: int) -> float:
        if cfg.schedule == "onecycle":  # Smith: up from lr/25 over 25% of training, then cosine down to ~0
            peak = max(1, int(0.25 * total))
            if step < peak:
                return 1 / 25 + (1 - 1 / 25) * step / peak
            t = (step - peak) / max(1, total - peak)
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if step < warm:
            return (step + 1) / warm
        epoch = step / steps_per_epoch  # fractional epoch
        if cfg.schedule == "none":
            return 1.0
        if cfg.schedule == "step":
            return cfg.gamma ** math.floor(epoch / cfg.step_size)
        if cfg.schedule == "exp":
            return cfg.gamma ** epoch
        if cfg.schedule == "inv":  # 1/t decay
            return 1.0 / (1.0 + cfg.decay_k * epoch)
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        raise ConfigError(f"unknown schedule {cfg.schedule!r}")

    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                    elapsed: Callable[[], float] | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule per step; with ``cfg.time_budget`` (and ``elapsed``, training seconds so far) it follows the clock:
    the fraction of the budget spent is mapped onto the step count the epochs would have had, so every schedule
    (warm-up, cosine, step, ...) keeps its shape over the budget. Whichever runs out first, the budget or the
    epochs (an upper bound then), ends the schedule."""
    f = lr_multiplier(cfg, steps_per_epoch)
    if cfg.time_budget and elapsed is not None:
        total = max(1, cfg.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: f(max(step, min(1.0, elapsed() / cfg.time_budget) * total)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def weight_penalty(model: nn.Module, l1: float) -> torch.Tensor | None:
    """L1 penalty on weight matrices/kernels (not biases or norm parameters).

    L2 is applied as the optimizer's weight decay; together they make elastic net.
    """
    if l1 <= 0:
        return None
    terms = [p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim > 1]
    return l1 * torch.stack(terms).sum() if terms else None


class EMA:
    """Exponential moving average of the weights (and a copy of the buffers) for evaluation."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.lerp_(v.detach(), 1 - self.decay)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
