"""L-BFGS (CS231n lecture 7, "Second-order optimization"): it works well full batch (deterministic
objective), but does not transfer to the mini-batch setting: a curvature estimate built from
different mini-batches at every step is noise.

Both runs are the engine's ``--optimizer lbfgs`` (one L-BFGS step per epoch over the training
loader, strong-Wolfe line search): full batch over the whole training set, and "mini-batch" with a
loader that gives one new random mini-batch per epoch (step).
"""

from __future__ import annotations

import torch

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment
from cnnlab.tasks.classify import Classify


class OneBatchPerEpoch:
    """A loader of one random mini-batch per epoch (seeded by seed and epoch): L-BFGS steps on mini-batches."""

    def __init__(self, full, batch_size: int, seed: int):
        self.full, self.batch_size, self.seed, self.epoch = full, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.full.set_epoch(epoch)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        batches = list(self.full)  # the full loader's batches of this epoch (reshuffled per epoch)
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        yield batches[int(torch.randint(len(batches), (1,), generator=g))]


class MiniBatchLBFGS(Classify):
    """Classification whose training loader gives L-BFGS one mini-batch per step."""

    def train_loader(self, cfg, data, rank=0, world_size=1):
        return OneBatchPerEpoch(super().train_loader(cfg, data, rank, world_size), cfg.batch_size, cfg.seed)


def full_train_loss(r) -> float:
    """Cross-entropy of the final model on the whole training split (the objective full-batch L-BFGS minimizes)."""
    import torch.nn.functional as F

    x, y = r.images(len(r.data.train))
    r.model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(r.model(x), y))


@register_experiment(name="lbfgs", claim="L-BFGS works well full batch but not with mini-batches", budget_s=10,
                     section="CS231n lecture 7 (second-order optimization: L-BFGS)")
def lbfgs(ctx: Context) -> Outcome:
    steps = ctx.pick(30, 3)
    flags = dict(model="linear", model_kwargs={}, optimizer="lbfgs", lr=1.0, epochs=steps, weight_decay=0.0)
    full = ctx.train_seeds(**flags)
    mini = [ctx.train(task_cls=MiniBatchLBFGS, seed=s, batch_size=32, note="mini-batch L-BFGS", **flags) for s in ctx.seeds]
    n = {"train_loss_full_batch": mean([full_train_loss(r) for r in full]),
         "train_loss_mini_batch": mean([full_train_loss(r) for r in mini]),
         "val_acc_full_batch": mean([r.last("val_acc") for r in full]),
         "val_acc_mini_batch": mean([r.last("val_acc") for r in mini])}
    fig, ax = ctx.figure("loss")
    for label, runs in (("full batch", full), ("mini-batch of 32", mini)):
        ax.plot(range(1, len(runs[0].rows) + 1), runs[0].series("val_loss"), "o-", label=label)
    ax.set(xlabel="L-BFGS step (epoch)", ylabel="validation loss", yscale="log", title="softmax classifier on digits")
    ax.legend()
    fig_path = ctx.save(fig, "loss")
    held = n["train_loss_full_batch"] < n["train_loss_mini_batch"] and n["val_acc_full_batch"] > n["val_acc_mini_batch"]
    verdict = (f"after {steps} L-BFGS steps the training loss is {n['train_loss_full_batch']:.3f} full batch and "
               f"{n['train_loss_mini_batch']:.3f} with mini-batches of 32; validation accuracy "
               f"{n['val_acc_full_batch']:.1%} vs {n['val_acc_mini_batch']:.1%}")
    return Outcome(n, held, verdict, [fig_path])
