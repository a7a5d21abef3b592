"""The verify task's report figure: ROC curve and the distance histograms of same / different pairs."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.metrics.verification import pair_trials, roc_curve


@torch.no_grad()
def roc_figure(task, model, ds, path: Path, device: torch.device, tau: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    embs, ids = [], []
    for batch in task.eval_loader(task.cfg, None, ds):
        embs.append(model(batch["images"].to(device)).cpu())
        ids.append(batch["identities"])
    emb, ident = torch.cat(embs), torch.cat(ids)
    d, same = pair_trials(model.pair_distances(emb.to(device), emb.to(device)).cpu(), ident)
    fpr, tpr, _ = roc_curve(-d, same)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(fpr.clamp(min=1e-6).numpy(), tpr.numpy())
    ax1.set(xscale="log", xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)", title="ROC, all pairs",
            xlim=(1e-5, 1))
    ax1.grid(alpha=0.3)
    ax2.hist(d[same].numpy(), bins=60, alpha=0.6, density=True, label="same identity")
    ax2.hist(d[~same].numpy(), bins=60, alpha=0.6, density=True, label="different")
    tau = tau if tau is not None else (task.meta.get("metrics") or {}).get("tau")
    if tau is not None:
        ax2.axvline(tau, color="k", ls="--", label=f"tau = {tau:.3f} (val)")
    ax2.set(xlabel="distance d(x1, x2)", title="distances of held-out pairs")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
