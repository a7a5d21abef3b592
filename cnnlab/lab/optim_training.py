"""The optimizers and learning-rate schedules in real training (CS231n lecture 7; notes Neural Networks Part 3).

- adam-default: with their usual learning rates, Adam reaches a good result without tuning, and
  plain SGD is the slowest.
- lr-decay: decaying the learning rate (step or cosine) lets SGD settle lower than a constant rate.
"""

from __future__ import annotations

from cnnlab.engine.config import DEFAULT_LR
from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@register_experiment(name="adam-default", claim="Adam is a good default: at its usual learning rate it trains as well "
                     "as or better than SGD, momentum, Nesterov, AdaGrad and RMSProp at theirs",
                     section="CS231n lecture 7 ('Adam is a good default choice')", budget_s=150)
def adam_default(ctx: Context) -> Outcome:
    epochs = ctx.pick(3, 1)
    res, curves = {}, {}
    for name in OPTIMIZERS:
        lr = 0.01 if name == "sgd" else DEFAULT_LR[name]  # the lab's SGD baseline uses the course's 1e-2
        runs = ctx.train_seeds(optimizer=name, lr=lr, epochs=epochs, model_kwargs={"width": 16}, data="fashion-mnist",
                               img_size=28, limit=ctx.pick(5000, 256), limit_test=ctx.pick(1000, 128))
        res[name] = mean([r.last("val_acc") for r in runs])
        curves[name] = runs[0].series("train_loss")
    fig, ax = ctx.figure("loss")
    for name, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "o-", label=name)
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="convnet_bn, Fashion-MNIST subset, default learning rates")
    ax.legend()
    fig_path = ctx.save(fig, "loss")
    n = {f"val_acc_{k}": v for k, v in res.items()}
    best = max(res.values())
    n["adam_minus_best"] = res["adam"] - best
    n["adam_minus_sgd"] = res["adam"] - res["sgd"]
    held = res["adam"] >= best - 0.01 and res["adam"] > res["sgd"]
    table = ["| optimizer | learning rate | validation accuracy |", "|---|---|---|",
             *[f"| {k} | {0.01 if k == 'sgd' else DEFAULT_LR[k]:g} | {v:.2%} |" for k, v in res.items()]]
    verdict = adam_verdict(res, epochs, len(ctx.seeds))
    return Outcome(n, held, verdict, [fig_path], table=table)


def adam_verdict(res: dict[str, float], epochs: int, seeds: int) -> str:
    best = max(res, key=res.get)
    where = ("the best of the six" if best == "adam" else
             f"{res[best] - res['adam']:.1%} behind the best, {best} ({res[best]:.1%})")
    return (f"Adam reached {res['adam']:.1%} validation accuracy after {epochs} epochs ({seeds} seed(s)): {where}; "
            f"{res['adam'] - res['sgd']:+.1%} against plain SGD")


@register_experiment(name="lr-decay", claim="Decaying the learning rate (step, cosine) lets SGD reach a lower loss than "
                     "keeping it constant", section="CS231n lecture 7 (learning rate decay)", budget_s=240)
def lr_decay(ctx: Context) -> Outcome:
    epochs = ctx.pick(9, 2)
    res, curves = {}, {}
    for sched in ("none", "step", "cosine"):
        runs = ctx.train_seeds(optimizer="momentum", lr=0.1, schedule=sched, step_size=epochs / 3, gamma=0.1, epochs=epochs,
                               model_kwargs={"width": 16}, data="fashion-mnist", img_size=28, limit=ctx.pick(5000, 256),
                               limit_test=ctx.pick(1000, 128))
        res[sched] = (mean([r.last("train_loss") for r in runs]), mean([r.last("val_loss") for r in runs]),
                      mean([r.last("val_acc") for r in runs]))
        curves[sched] = runs[0].series("train_loss")
    fig, ax = ctx.figure("loss")
    for k, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "o-", label=f"--schedule {k}")
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="SGD+momentum lr 0.1, Fashion-MNIST subset")
    ax.legend()
    fig_path = ctx.save(fig, "loss")
    n = {}
    for k, (tl, vl, va) in res.items():
        n[f"train_loss_{k}"], n[f"val_loss_{k}"], n[f"val_acc_{k}"] = tl, vl, va
    best_decay = min(res["step"][0], res["cosine"][0])
    n["constant_over_decayed_train_loss"] = res["none"][0] / best_decay
    held = best_decay < res["none"][0]
    verdict = (f"final training loss: constant {res['none'][0]:.4f}, step decay {res['step'][0]:.4f}, cosine "
               f"{res['cosine'][0]:.4f} ({n['constant_over_decayed_train_loss']:.1f}x lower with decay); validation "
               f"accuracy {res['none'][2]:.1%} / {res['step'][2]:.1%} / {res['cosine'][2]:.1%}")
    return Outcome(n, held, verdict, [fig_path])
