"""Regularization (CS231n lecture 7): dropout and data augmentation reduce overfitting.

- dropout: on a small training set, dropout narrows the gap between training and validation
  accuracy, and training itself is slower (the training loss falls later).
- augmentation: random crops/rotations shrink the train/validation gap on a small training set.
"""

from __future__ import annotations

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment


def _gap_runs(ctx: Context, label_flags: dict[str, dict], epochs: int, limit: int) -> dict[str, dict]:
    res = {}
    for label, flags in label_flags.items():
        runs = ctx.train_seeds(epochs=epochs, limit=limit, optimizer="adam", lr=2e-3, **flags)
        # training accuracy in eval mode (no dropout, no augmentation) on the training images themselves
        res[label] = {"train_acc": mean([r.accuracy("train", limit) for r in runs]), "val_acc": mean([r.last("val_acc") for r in runs]),
                      "train_loss": runs[0].series("train_loss"), "val_loss": runs[0].series("val_loss"),
                      "final_train_loss": mean([r.last("train_loss") for r in runs])}
    return res


def _plot(ctx: Context, res: dict, name: str, title: str) -> str:
    fig, ax = ctx.figure(name)
    for i, (label, r) in enumerate(res.items()):
        c = f"C{i}"
        ax.plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], "-", c=c, label=f"{label}: train")
        ax.plot(range(1, len(r["val_loss"]) + 1), r["val_loss"], "--", c=c, label=f"{label}: validation")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    return ctx.save(fig, name)


@register_experiment(name="dropout", claim="Dropout regularizes (smaller gap between training and validation accuracy) "
                     "and slows training", section="CS231n lecture 7 (dropout); Srivastava et al. 2014", budget_s=30)
def dropout(ctx: Context) -> Outcome:
    epochs = ctx.pick(40, 2)
    flags = {"data": "fashion-mnist", "img_size": 28, "limit_test": ctx.pick(1000, 128), "model": "lenet5",
             "model_kwargs": {}}
    res = _gap_runs(ctx, {"no dropout": flags, "dropout 0.5": dict(flags, drop_rate=0.5)}, epochs, ctx.pick(500, 128))
    fig_path = _plot(ctx, res, "loss", "LeNet-5 on 500 Fashion-MNIST images")
    a, b = res["no dropout"], res["dropout 0.5"]
    n = {"gap_no_dropout": a["train_acc"] - a["val_acc"], "gap_dropout": b["train_acc"] - b["val_acc"],
         "val_acc_no_dropout": a["val_acc"], "val_acc_dropout": b["val_acc"],
         "final_train_loss_no_dropout": a["final_train_loss"], "final_train_loss_dropout": b["final_train_loss"]}
    held = n["gap_dropout"] < n["gap_no_dropout"] and n["final_train_loss_dropout"] > n["final_train_loss_no_dropout"]
    verdict = (f"train-validation accuracy gap {n['gap_no_dropout']:.1%} without dropout, {n['gap_dropout']:.1%} with; "
               f"final training loss {n['final_train_loss_no_dropout']:.3f} vs {n['final_train_loss_dropout']:.3f} "
               f"(slower); final validation accuracy {n['val_acc_no_dropout']:.1%} vs {n['val_acc_dropout']:.1%}")
    return Outcome(n, held, verdict, [fig_path])


@register_experiment(name="augmentation", claim="Data augmentation reduces overfitting on a small training set",
                     section="CS231n lecture 7 (data augmentation)", budget_s=90)
def augmentation(ctx: Context) -> Outcome:
    epochs = ctx.pick(30, 2)
    flags = {"data": "fashion-mnist", "img_size": 28, "model_kwargs": {"width": 16}, "limit_test": ctx.pick(1000, 128)}
    res = _gap_runs(ctx, {"none": dict(flags), "crop+rotate": dict(flags, augment="crop=3,rotate=10")}, epochs,
                    ctx.pick(500, 128))
    fig_path = _plot(ctx, res, "loss", "500 Fashion-MNIST training images")
    a, b = res["none"], res["crop+rotate"]
    n = {"gap_none": a["train_acc"] - a["val_acc"], "gap_augmented": b["train_acc"] - b["val_acc"],
         "val_acc_none": a["val_acc"], "val_acc_augmented": b["val_acc"]}
    held = n["gap_augmented"] < n["gap_none"]
    verdict = (f"train-validation accuracy gap {n['gap_none']:.1%} without augmentation, {n['gap_augmented']:.1%} with "
               f"random crops and rotations; final validation accuracy {n['val_acc_none']:.1%} vs {n['val_acc_augmented']:.1%}")
    return Outcome(n, held, verdict, [fig_path])
