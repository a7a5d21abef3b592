"""Model ensembles (CS231n lecture 7, "Model ensembles"): averaging the predictions of several independently
trained models adds a couple of points of accuracy (the notes: "typically about 2%")."""

from __future__ import annotations

import torch

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.tasks.classify import tta_probs


@register_experiment(name="ensembles", claim="An ensemble of independently trained models is a couple of points more "
                     "accurate than its members", section="CS231n lecture 7 (model ensembles)", budget_s=90)
def ensembles(ctx: Context) -> Outcome:
    members = ctx.pick(5, 2)
    flags = dict(data="fashion-mnist", img_size=28, model_kwargs={"width": 8}, epochs=ctx.pick(4, 1),
                 limit=ctx.pick(3000, 256), limit_test=ctx.pick(2000, 128), optimizer="momentum", lr=0.05)
    runs = [ctx.train(**flags, seed=s, note=f"member {s + 1}/{members}") for s in range(members)]
    x, y = runs[0].images(len(runs[0].data.test), split="test")  # the test split, evaluated once at the end
    probs = []
    for r in runs:
        r.model.eval()
        probs.append(tta_probs(r.model, x))  # (N, K)
    single = [float((p.argmax(1) == y).float().mean()) for p in probs]
    ens = [float((torch.stack(probs[:k]).mean(0).argmax(1) == y).float().mean()) for k in range(1, members + 1)]
    fig, ax = ctx.figure("ensemble")
    ax.plot(range(1, members + 1), ens, "o-", label="ensemble of the first k")
    ax.plot(range(1, members + 1), single, "s", label="member k alone")
    ax.set(xlabel="k", ylabel="test accuracy", title="convnet_bn, Fashion-MNIST subset")
    ax.legend()
    fig_path = ctx.save(fig, "ensemble")
    n = {"mean_member_acc": mean(single), "best_member_acc": max(single), "ensemble_acc": ens[-1],
         "gain_over_mean_member": ens[-1] - mean(single), "members": float(members)}
    held = n["gain_over_mean_member"] > 0.005
    verdict = (f"an ensemble of {members} reached {ens[-1]:.2%} test accuracy, {n['gain_over_mean_member']:+.2%} over the "
               f"average member ({mean(single):.2%}) and {ens[-1] - max(single):+.2%} over the best one")
    return Outcome(n, held, verdict, [fig_path])
