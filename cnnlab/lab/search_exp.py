"""Random search beats grid search (CS231n lecture 7, "Hyperparameter optimization"; Bergstra & Bengio 2012):
with the same number of trials, a grid tries only a few distinct values of the parameter that matters
(here the learning rate; weight decay matters little), random search tries as many as it has trials.
Each trial is a real training run; samples come from the engine's log-space sampler (``engine.tuning``)."""

from __future__ import annotations

import math

import numpy as np

from cnnlab.engine.tuning import sample
from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment

SPACE = {"lr": (1e-3, 1.0, "log"), "weight_decay": (1e-6, 1e-2, "log")}


@register_experiment(name="random-vs-grid", claim="With the same number of trials, random search finds a better "
                     "setting than grid search (it tries more values of the parameter that matters)", budget_s=120,
                     section="CS231n lecture 7 (hyperparameter optimization); Bergstra & Bengio 2012")
def random_vs_grid(ctx: Context) -> Outcome:
    side = ctx.pick(3, 2)
    epochs = ctx.pick(2, 1)
    flags = dict(optimizer="momentum", epochs=epochs, model_kwargs={"width": 8}, data="fashion-mnist", img_size=28,
                 limit=ctx.pick(2000, 256), limit_test=ctx.pick(1000, 128))

    def score(params: dict) -> float:
        r = ctx.train(**flags, **params, note=f"lr {params['lr']:.3g}")
        return 0.0 if r.diverged else r.best("val_acc")

    logs = {k: np.linspace(math.log10(lo), math.log10(hi), side + 2)[1:-1] for k, (lo, hi, _) in SPACE.items()}
    grid = [{"lr": 10 ** a, "weight_decay": 10 ** b} for a in logs["lr"] for b in logs["weight_decay"]]
    grid_scores = [score(p) for p in grid]
    rand_best, rand_points = [], []
    for s in ctx.seeds:  # one random search per seed (sampler seed)
        rng = np.random.default_rng(s)
        pts = [sample(SPACE, rng) for _ in range(len(grid))]
        sc = [score(p) for p in pts]
        rand_best.append(max(sc))
        rand_points.append(list(zip(pts, sc)))
    fig, ax = ctx.figure("trials")
    ax.scatter([p["lr"] for p in grid], grid_scores, marker="s", label=f"grid {side}x{side}")
    ax.scatter([p["lr"] for p, _ in rand_points[0]], [s for _, s in rand_points[0]], marker="o", label="random")
    ax.set(xscale="log", xlabel="learning rate", ylabel="best validation accuracy", title=f"{len(grid)} trials each")
    ax.legend()
    fig_path = ctx.save(fig, "trials")
    n = {"best_grid": max(grid_scores), "best_random": mean(rand_best), "distinct_lr_grid": float(side),
         "distinct_lr_random": float(len(grid)), "trials": float(len(grid))}
    n["random_minus_grid"] = n["best_random"] - n["best_grid"]
    held = n["random_minus_grid"] >= 0
    verdict = (f"best validation accuracy with {len(grid)} trials: random {n['best_random']:.1%}, grid "
               f"{n['best_grid']:.1%} ({n['random_minus_grid']:+.1%}); random tried {len(grid)} learning rates, the grid {side}")
    return Outcome(n, held, verdict, [fig_path])
