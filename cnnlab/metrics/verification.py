"""Verification and one-shot identification metrics, computed from a distance matrix.

Every pair i < j of a set of encodings is one trial: "same identity" when d(x_i, x_j) <= tau.
Sweeping tau gives the ROC curve: TAR (true accept rate, = TPR) against FAR (false accept rate,
= FPR). Reported: ROC AUC, EER (the error where FAR = 1 - TAR), TAR at FAR = 1e-3 and 1e-2,
and the EER threshold tau (chosen on validation pairs, stored with the run).
One-shot N-way identification: one enrolled image per identity, every other image is a query,
answered by the nearest enrolled image; averaged over ``rounds`` random enrolments.
"""

from __future__ import annotations

import torch


def pair_trials(dist: torch.Tensor, identities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances (P,), same-identity bool (P,)) of all pairs i < j of a (N, N) distance matrix."""
    i, j = torch.triu_indices(len(identities), len(identities), 1)
    return dist[i, j], identities[i] == identities[j]


def roc_curve(scores: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fpr, tpr, thresholds) like sklearn.metrics.roc_curve(drop_intermediate=False): accept if score >= threshold.

    Higher score = more alike (pass -distance). The first point is (0, 0) at threshold +inf.
    """
    scores, same = scores.double().flatten(), same.bool().flatten()
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], same[order].double()
    last_of_tie = torch.ones(len(s), dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]  # one ROC point per distinct threshold
    tp = torch.cumsum(y, 0)[last_of_tie]
    fp = torch.cumsum(1 - y, 0)[last_of_tie]
    zero = torch.zeros(1, dtype=torch.float64)
    tp, fp = torch.cat([zero, tp]), torch.cat([zero, fp])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), s[last_of_tie]])
    return fp / max(1.0, float(fp[-1])), tp / max(1.0, float(tp[-1])), thresholds


def auc(fpr: torch.Tensor, tpr: torch.Tensor) -> float:
    """Area under the ROC curve (trapezoids)."""
    return float(torch.trapezoid(tpr, fpr))


def equal_error_rate(fpr: torch.Tensor, tpr: torch.Tensor, thresholds: torch.Tensor) -> tuple[float, float]:
    """(EER, threshold there): where FAR = FRR = 1 - TAR, linearly interpolated between ROC points."""
    frr = 1 - tpr
    diff = fpr - frr  # rises from -1 to +1 along the curve
    k = int(torch.nonzero(diff >= 0)[0])
    if k == 0:
        return float(fpr[0]), float(thresholds[0])
    d0, d1 = float(diff[k - 1]), float(diff[k])
    t = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    eer = float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))
    lo, hi = float(thresholds[k - 1]), float(thresholds[k])
    threshold = hi if lo == float("inf") else lo + t * (hi - lo)
    return eer, threshold


def tar_at_far(fpr: torch.Tensor, tpr: torch.Tensor, far: float) -> float:
    """The highest TAR reached while FAR <= ``far``."""
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def one_shot_accuracy(dist: torch.Tensor, identities: torch.Tensor, rounds: int = 20, seed: int = 0) -> float:
    """Mean N-way one-shot accuracy: per round, enrol one random image per identity, classify the rest by nearest."""
    ids = torch.unique(identities)
    g = torch.Generator().manual_seed(seed)
    correct = total = 0
    for _ in range(rounds):
        gallery = torch.stack([(m := torch.nonzero(identities == c).flatten())[torch.randint(len(m), (1,), generator=g)][0]
                               for c in ids])  # (N,) one image per identity
        query = torch.ones(len(identities), dtype=torch.bool)
        query[gallery] = False
        nearest = dist[query][:, gallery].argmin(1)  # (Q,)
        correct += int((ids[nearest] == identities[query]).sum())
        total += int(query.sum())
    return correct / max(1, total)


def verification_metrics(dist: torch.Tensor, identities: torch.Tensor, rounds: int = 20, seed: int = 0) -> dict[str, float]:
    """eer, auc, tar_far1e-3, tar_far1e-2, tau (the distance at the EER), oneshot_acc, oneshot_way, pairs."""
    d, same = pair_trials(dist, identities)
    if same.all() or not same.any():
        raise ValueError("verification metrics need pairs of the same and of different identities")
    fpr, tpr, thr = roc_curve(-d, same)
    eer, threshold = equal_error_rate(fpr, tpr, thr)
    return {"eer": eer, "auc": auc(fpr, tpr), "tar_far1e-3": tar_at_far(fpr, tpr, 1e-3),
            "tar_far1e-2": tar_at_far(fpr, tpr, 1e-2), "tau": -threshold,
            "oneshot_acc": one_shot_accuracy(dist, identities, rounds, seed),
            "oneshot_way": float(len(torch.unique(identities))), "pairs": float(len(d))}
