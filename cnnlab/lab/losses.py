"""Cross-entropy vs squared error (deeplearning.ai C1/C2; Nielsen, "Neural Networks and Deep Learning", ch. 3;
CS231n lecture 3 on the softmax loss): from confidently wrong predictions, the softmax's cross-entropy
gradient is p - y (large), while squared error on the probabilities is multiplied by the softmax's
saturated Jacobian (near zero), so learning starts slowly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.lab.core import Context, Outcome, first_reaching, mean, smooth
from cnnlab.lab.registry import register_experiment
from cnnlab.tasks.classify import Classify


class SquaredErrorClassify(Classify):
    """Classification trained with squared error between the softmax and the one-hot label."""

    def training_step(self, model, batch):
        x, y = batch["images"], batch["labels"]
        logits = model(x)
        onehot = F.one_hot(y, logits.shape[1]).float()
        loss = ((logits.softmax(1) - onehot) ** 2).sum(1).mean()
        return {"loss": loss, "acc": (logits.detach().argmax(1) == y).float().mean()}


@register_experiment(name="xent-vs-mse", claim="From confidently wrong predictions, cross-entropy learns much faster "
                     "than squared error", section="CS231n lecture 3 (softmax loss); Nielsen ch. 3", budget_s=10)
def xent_vs_mse(ctx: Context) -> Outcome:
    # (1) the gradient on the logits of one confidently wrong prediction (p(wrong class) ~ 0.99)
    z = torch.tensor([[6.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)  # true class is 1
    y = torch.tensor([1])
    g_ce = torch.autograd.grad(F.cross_entropy(z, y), z)[0].norm()
    g_mse = torch.autograd.grad(((z.softmax(1) - F.one_hot(y, 5).float()) ** 2).sum(), z)[0].norm()
    # (2) training a softmax classifier from a bad (large, confidently wrong) initialization
    flags = dict(model="linear", model_kwargs={}, init="small", init_std=1.0, epochs=ctx.pick(10, 1), optimizer="sgd",
                 lr=0.1)
    ce = ctx.train_seeds(**flags)
    mse = [ctx.train(task_cls=SquaredErrorClassify, seed=s, note="squared error", **flags) for s in ctx.seeds]
    target = ctx.pick(0.8, 0.3)
    reach_ce = mean([first_reaching(smooth(r.steps["acc"], 20), target) for r in ce])
    reach_mse = mean([first_reaching(smooth(r.steps["acc"], 20), target) for r in mse])
    fig, ax = ctx.figure("acc")
    ax.plot(smooth(ce[0].steps["acc"], 20), label="cross-entropy")
    ax.plot(smooth(mse[0].steps["acc"], 20), label="squared error on softmax")
    ax.axhline(target, ls="--", c="grey", lw=0.8)
    ax.set(xlabel="training step", ylabel="training accuracy (running mean)",
           title="softmax classifier on digits from N(0, 1) weights")
    ax.legend()
    fig_path = ctx.save(fig, "acc")
    n = {"logit_grad_ce": float(g_ce), "logit_grad_mse": float(g_mse), "grad_ratio": float(g_ce / g_mse),
         f"steps_to_{int(target * 100)}pct_ce": reach_ce, f"steps_to_{int(target * 100)}pct_mse": reach_mse,
         "val_acc_ce": mean([r.last("val_acc") for r in ce]), "val_acc_mse": mean([r.last("val_acc") for r in mse])}
    n["speedup"] = reach_mse / reach_ce
    held = n["grad_ratio"] > 10 and n["speedup"] > 1
    verdict = (f"on a prediction 99% sure of the wrong class the logit gradient is {n['grad_ratio']:.0f}x larger with "
               f"cross-entropy; training from N(0, 1) weights reached {target:.0%} training accuracy in {reach_ce:.0f} steps "
               f"with cross-entropy and {reach_mse:.0f} with squared error ({n['speedup']:.1f}x)")
    return Outcome(n, held, verdict, [fig_path])
