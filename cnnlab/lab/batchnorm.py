"""Batch normalization (CS231n lecture 6; Ioffe & Szegedy 2015): deep nets converge with it, it allows
higher learning rates and it makes training much less sensitive to the initialization."""

from __future__ import annotations

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment

DEEP = {"depth": 4, "activation": "relu"}  # 12 conv layers


@register_experiment(name="batchnorm-deep", claim="Without batch norm a deep net trains slowly or not at all; with it "
                     "the same net converges", section="CS231n lecture 6 (batch normalization)", budget_s=30)
def batchnorm_deep(ctx: Context) -> Outcome:
    epochs = ctx.pick(8, 1)
    n, curves = {}, {}
    for norm in ("none", "batch"):
        runs = ctx.train_seeds(model_kwargs=dict(DEEP, norm=norm), epochs=epochs, optimizer="momentum", lr=0.02)
        n[f"val_acc_{norm}"] = mean([r.last("val_acc") for r in runs])
        n[f"train_loss_{norm}"] = mean([r.last("train_loss") for r in runs])
        curves[norm] = runs[0].series("train_loss")
    fig, ax = ctx.figure("loss")
    for k, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "o-", label=f"norm={k}")
    ax.set(xlabel="epoch", ylabel="training loss", title="12 conv layers (ReLU), digits, same SGD+momentum")
    ax.legend()
    fig_path = ctx.save(fig, "loss")
    held = n["val_acc_batch"] > n["val_acc_none"] + 0.05
    verdict = (f"after {epochs} epochs: with batch norm {n['val_acc_batch']:.1%} validation accuracy (train loss "
               f"{n['train_loss_batch']:.3f}), without {n['val_acc_none']:.1%} (train loss {n['train_loss_none']:.3f})")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="batchnorm-high-lr", claim="Batch norm allows much higher learning rates", budget_s=30,
                     section="CS231n lecture 6 (batch normalization); Ioffe & Szegedy 2015, section 3.3")
def batchnorm_high_lr(ctx: Context) -> Outcome:
    epochs = ctx.pick(4, 1)
    lrs = ctx.pick((0.01, 0.03, 0.1, 0.3, 1.0, 3.0), (0.1, 3.0))
    acc = {}
    for norm in ("none", "batch"):
        for lr in lrs:
            runs = ctx.train_seeds(model_kwargs={"depth": 2, "norm": norm}, init="he", epochs=epochs, optimizer="sgd",
                                   lr=lr, skip_nonfinite=True)
            acc[(norm, lr)] = mean([0.0 if r.diverged else r.last("val_acc") for r in runs])
    fig, ax = ctx.figure("lr")
    for norm in ("none", "batch"):
        ax.semilogx(lrs, [acc[(norm, lr)] for lr in lrs], "o-", label=f"norm={norm}")
    ax.set(xlabel="learning rate (SGD)", ylabel=f"validation accuracy after {epochs} epochs", title="6 conv layers, He init, digits")
    ax.legend()
    fig_path = ctx.save(fig, "lr")
    n = {f"val_acc_{norm}_lr{lr:g}": v for (norm, lr), v in acc.items()}
    best = {norm: max(lrs, key=lambda lr: acc[(norm, lr)]) for norm in ("none", "batch")}
    n["best_lr_none"], n["best_lr_batch"] = best["none"], best["batch"]
    bar = ctx.pick(0.9, 0.3)
    good = {norm: max([lr for lr in lrs if acc[(norm, lr)] >= bar], default=0.0) for norm in best}
    n["highest_lr_reaching_bar_none"], n["highest_lr_reaching_bar_batch"] = good["none"], good["batch"]
    held = good["batch"] > good["none"]
    verdict = (f"the highest learning rate that still reaches {bar:.0%} validation accuracy is {good['batch']:g} with batch "
               f"norm and {good['none']:g} without" + (f" ({good['batch'] / good['none']:.0f}x)" if good["none"] else "")
               + f"; best accuracy {acc[('batch', best['batch'])]:.1%} vs {acc[('none', best['none'])]:.1%}")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="batchnorm-init", claim="Batch norm makes training far less sensitive to the scale of the "
                     "initial weights", section="CS231n lecture 6 (batch normalization: 'reduces the strong dependence "
                     "on initialization')", budget_s=30)
def batchnorm_init(ctx: Context) -> Outcome:
    epochs = ctx.pick(4, 1)
    stds = ctx.pick((0.001, 0.01, 0.1, 0.3, 1.0), (0.001, 0.3))
    acc = {}
    for norm in ("none", "batch"):
        for std in stds:
            runs = ctx.train_seeds(model_kwargs={"depth": 2, "norm": norm}, init="small", init_std=std, epochs=epochs,
                                   optimizer="momentum", lr=0.02, skip_nonfinite=True)
            acc[(norm, std)] = mean([0.0 if r.diverged else r.last("val_acc") for r in runs])
    fig, ax = ctx.figure("init")
    for norm in ("none", "batch"):
        ax.semilogx(stds, [acc[(norm, s)] for s in stds], "o-", label=f"norm={norm}")
    ax.set(xlabel="std of the initial weights (--init small --init-std)", ylabel=f"validation accuracy, {epochs} epochs",
           title="6 conv layers, digits")
    ax.legend()
    fig_path = ctx.save(fig, "init")
    n = {f"val_acc_{norm}_std{s:g}": v for (norm, s), v in acc.items()}
    bar = ctx.pick(0.8, 0.2)
    works = {norm: sum(acc[(norm, s)] >= bar for s in stds) for norm in ("none", "batch")}
    n["scales_that_train_none"], n["scales_that_train_batch"] = float(works["none"]), float(works["batch"])
    n["scales_tried"] = float(len(stds))
    held = works["batch"] > works["none"]
    verdict = (f"of {len(stds)} init scales (std {stds[0]:g}..{stds[-1]:g}), {works['batch']} reach {bar:.0%} validation "
               f"accuracy with batch norm and {works['none']} without")
    return Outcome(n, held, verdict, [fig_path])
