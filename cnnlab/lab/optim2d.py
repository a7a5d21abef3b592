"""The update rules on 2-D functions, where their paths can be seen (CS231n lecture 7, "Fancier optimization";
notes Neural Networks Part 3). Each path is the engine's own optimizer (``engine.optim.build_optimizer``,
what ``--optimizer`` builds) stepping on a 2-vector of parameters.

- sgd-ravine: in a ravine (one direction 50x steeper) plain SGD's step is capped by the steep direction
  and crawls along the shallow one; momentum and Nesterov build up speed along it.
- momentum-overshoot: momentum overshoots the minimum, Nesterov's look-ahead overshoots less.
- saddle-point: started next to a saddle, plain SGD waits a long time (gradient ~0); Adam and RMSProp
  divide by the gradient's scale and leave at once.
- adagrad-decay: AdaGrad's step keeps shrinking (1/sqrt of the summed squared gradients), so it stalls
  far from the minimum; RMSProp's leaky average keeps the step size.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cnnlab.engine.config import TrainConfig
from cnnlab.engine.optim import build_optimizer
from cnnlab.lab.core import Context, Outcome
from cnnlab.lab.registry import register_experiment

Fn = Callable[[torch.Tensor], torch.Tensor]


class Point(nn.Module):
    def __init__(self, xy: tuple[float, float]):
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(xy, dtype=torch.float64))


def optimize_2d(f: Fn, start: tuple[float, float], optimizer: str, lr: float, steps: int, momentum: float = 0.9) -> torch.Tensor:
    """The path (steps + 1, 2) of the engine's ``optimizer`` minimizing ``f`` from ``start``."""
    p = Point(start)
    opt = build_optimizer(p, TrainConfig(optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=0.0))
    path = [p.xy.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        f(p.xy).backward()
        opt.step()
        path.append(p.xy.detach().clone())
    return torch.stack(path)


def steps_until(f: Fn, path: torch.Tensor, level: float) -> float:
    vals = torch.stack([f(q) for q in path])
    hit = (vals <= level).nonzero()
    return float(hit[0, 0]) if len(hit) else float(len(path))  # len(path): never (a lower bound)


def _contour(ax, f: Fn, xlim, ylim) -> None:
    xs, ys = torch.linspace(*xlim, 200, dtype=torch.float64), torch.linspace(*ylim, 200, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    Z = f(torch.stack([X, Y]))
    ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=25, cmap="Greys", linewidths=0.6)


def ravine(xy: torch.Tensor) -> torch.Tensor:
    return 0.5 * (xy[0] ** 2 + 50 * xy[1] ** 2)


RAVINE_START, RAVINE_LR = (-9.0, 1.0), 0.01  # SGD diverges above lr 2/50 = 0.04


def _ravine_paths(ctx: Context) -> dict[str, torch.Tensor]:
    steps = ctx.pick(1500, 800)
    return {name: optimize_2d(ravine, RAVINE_START, name, RAVINE_LR, steps) for name in ("sgd", "momentum", "nesterov")}


def _plot_paths(ctx: Context, f: Fn, paths: dict, name: str, xlim, ylim, title: str, upto: int | None = None) -> str:
    fig, ax = ctx.figure(name, size=(6.5, 4))
    _contour(ax, f, xlim, ylim)
    for k, p in paths.items():
        p = p[:upto] if upto else p
        ax.plot(p[:, 0].numpy(), p[:, 1].numpy(), ".-", ms=3, lw=1, label=k)
    ax.set(xlim=xlim, ylim=ylim, title=title)
    ax.legend()
    return ctx.save(fig, name)


@register_experiment(name="sgd-ravine", claim="In a ravine plain SGD crawls along the shallow direction (its step is "
                     "capped by the steep one); momentum and Nesterov get there many times sooner",
                     section="CS231n lecture 7 (problems with SGD, momentum)", budget_s=5, trains=False)
def sgd_ravine(ctx: Context) -> Outcome:
    paths = _ravine_paths(ctx)
    n = {f"steps_to_1e-3_{k}": steps_until(ravine, p, 1e-3) for k, p in paths.items()}
    fig_path = _plot_paths(ctx, ravine, paths, "paths", (-10, 2), (-1.5, 1.5), f"f = (x^2 + 50 y^2)/2, lr {RAVINE_LR}", 120)
    n["speedup_momentum"] = n["steps_to_1e-3_sgd"] / n["steps_to_1e-3_momentum"]
    n["speedup_nesterov"] = n["steps_to_1e-3_sgd"] / n["steps_to_1e-3_nesterov"]
    held = n["speedup_momentum"] > 2 and n["speedup_nesterov"] > 2
    verdict = (f"f < 1e-3 after {n['steps_to_1e-3_sgd']:.0f} SGD steps, {n['steps_to_1e-3_momentum']:.0f} with momentum "
               f"({n['speedup_momentum']:.1f}x sooner), {n['steps_to_1e-3_nesterov']:.0f} with Nesterov "
               f"({n['speedup_nesterov']:.1f}x)")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="momentum-overshoot", claim="Momentum overshoots the minimum; Nesterov momentum, which takes "
                     "the gradient at the look-ahead point, overshoots less", budget_s=5, trains=False,
                     section="CS231n lecture 7 (momentum, Nesterov momentum)")
def momentum_overshoot(ctx: Context) -> Outcome:
    paths = _ravine_paths(ctx)
    n = {f"overshoot_{k}": float(p[:, 0].max().clamp_min(0)) for k, p in paths.items()}  # how far past x = 0
    fig, ax = ctx.figure("x")
    for k, p in paths.items():
        ax.plot(p[:120, 0].numpy(), label=k)
    ax.axhline(0, c="grey", lw=0.8)
    ax.set(xlabel="step", ylabel="x (minimum at 0, start at -9)", title="the shallow direction of the ravine")
    ax.legend()
    fig_path = ctx.save(fig, "x")
    held = n["overshoot_momentum"] > n["overshoot_nesterov"] >= n["overshoot_sgd"]
    verdict = (f"largest overshoot past the minimum: momentum {n['overshoot_momentum']:.2f}, Nesterov "
               f"{n['overshoot_nesterov']:.2f}, SGD {n['overshoot_sgd']:.2f} (start 9 away)")
    return Outcome(n, held, verdict, [fig_path])


def saddle(xy: torch.Tensor) -> torch.Tensor:
    """A saddle at (0, 0) between two minima at (0, +-1) (value -0.25)."""
    return xy[0] ** 2 + 0.25 * xy[1] ** 4 - 0.5 * xy[1] ** 2


@register_experiment(name="saddle-point", claim="Near a saddle point plain SGD (and momentum) stall where the gradient "
                     "is ~0; RMSProp and Adam, which scale steps by the gradient's size, escape many times sooner",
                     section="CS231n lecture 7 (saddle points; RMSProp, Adam)", budget_s=5, trains=False)
def saddle_point(ctx: Context) -> Outcome:
    steps, lr = ctx.pick(1500, 400), 0.01
    paths = {k: optimize_2d(saddle, (1.0, 1e-4), k, lr, steps) for k in ("sgd", "momentum", "rmsprop", "adam")}
    n = {f"steps_to_escape_{k}": steps_until(saddle, p, -0.2) for k, p in paths.items()}
    fig, (a1, a2) = ctx.figure("saddle", ncols=2)
    _contour(a1, saddle, (-1.2, 1.2), (-1.5, 1.5))
    for k, p in paths.items():
        a1.plot(p[:, 0].numpy(), p[:, 1].numpy(), ".-", ms=2, lw=1, label=k)
        a2.plot(torch.stack([saddle(q) for q in p]).numpy(), label=k)
    a1.set(title="f = x^2 + y^4/4 - y^2/2 from (1, 1e-4)")
    a2.set(xlabel="step", ylabel="f", title=f"lr {lr} for every optimizer")
    a1.legend()
    fig_path = ctx.save(fig, "saddle")
    n["adam_speedup_over_sgd"] = n["steps_to_escape_sgd"] / n["steps_to_escape_adam"]
    n["rmsprop_speedup_over_sgd"] = n["steps_to_escape_sgd"] / n["steps_to_escape_rmsprop"]
    held = n["adam_speedup_over_sgd"] > 2 and n["rmsprop_speedup_over_sgd"] > 2
    never = f" (SGD never did in {steps} steps: a lower bound)" if n["steps_to_escape_sgd"] > steps else ""
    verdict = (f"steps to leave the saddle (f < -0.2): SGD {n['steps_to_escape_sgd']:.0f}, momentum "
               f"{n['steps_to_escape_momentum']:.0f}, RMSProp {n['steps_to_escape_rmsprop']:.0f}, Adam "
               f"{n['steps_to_escape_adam']:.0f}: Adam {n['adam_speedup_over_sgd']:.1f}x sooner than SGD{never}")
    return Outcome(n, held, verdict, [fig_path])


def slope(xy: torch.Tensor) -> torch.Tensor:
    """A smooth |x| + |y| (Huber, delta 1): a constant gradient far from the minimum at (0, 0)."""
    a = xy.abs()
    return torch.where(a < 1, 0.5 * a ** 2, a - 0.5).sum(0)


@register_experiment(name="adagrad-decay", claim="AdaGrad's effective step decays toward zero (it stalls far from the "
                     "minimum); RMSProp's leaky average keeps the step size", budget_s=5, trains=False,
                     section="CS231n lecture 7 (AdaGrad, RMSProp)")
def adagrad_decay(ctx: Context) -> Outcome:
    steps, lr, start = ctx.pick(1000, 300), 0.1, (60.0, 60.0)
    paths = {k: optimize_2d(slope, start, k, lr, steps) for k in ("adagrad", "rmsprop")}
    dist = {k: p.norm(dim=1) for k, p in paths.items()}
    step_len = {k: (p[1:] - p[:-1]).norm(dim=1) for k, p in paths.items()}
    fig, (a1, a2) = ctx.figure("adagrad", ncols=2)
    for k in paths:
        a1.plot(dist[k].numpy(), label=k)
        a2.loglog(range(1, steps + 1), step_len[k].numpy(), label=k)
    a1.set(xlabel="step", ylabel="distance to the minimum", title=f"smooth |x|+|y| from (60, 60), lr {lr}")
    a2.set(xlabel="step", ylabel="step length", title="AdaGrad's step ~ lr/sqrt(t)")
    a1.legend()
    fig_path = ctx.save(fig, "adagrad")
    n = {"final_distance_adagrad": float(dist["adagrad"][-1]), "final_distance_rmsprop": float(dist["rmsprop"][-1]),
         "adagrad_step200_over_lr": float(step_len["adagrad"][199] / lr),
         "rmsprop_step200_over_lr": float(step_len["rmsprop"][199] / lr)}
    held = n["adagrad_step200_over_lr"] < 0.5 < n["rmsprop_step200_over_lr"] and \
        n["final_distance_adagrad"] > n["final_distance_rmsprop"]
    verdict = (f"step 200 is {n['adagrad_step200_over_lr']:.2f} lr long for AdaGrad and "
               f"{n['rmsprop_step200_over_lr']:.2f} lr for RMSProp (sqrt(2) lr on a constant slope); after {steps} steps AdaGrad is still "
               f"{n['final_distance_adagrad']:.1f} from the minimum (start 84.9), RMSProp {n['final_distance_rmsprop']:.2f}")
    return Outcome(n, held, verdict, [fig_path])
