"""Losses of face verification and online triplet mining in a P x K batch.

Distances are squared Euclidean on the (unit-norm) encodings, as in the course and FaceNet:
    triplet:     L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)
    contrastive: L = y d^2 + (1 - y) max(m - d, 0)^2 with d = ||f(x_i) - f(x_j)|| (Hadsell et al. 2006)
Random triplets are mostly too easy (their loss is already 0), so triplets are mined in the batch:
    random     every anchor-positive pair with a random negative;
    semihard   every anchor-positive pair with FaceNet's semi-hard negative: the nearest negative
               farther than the positive (d(A,P) < d(A,N)); where there is none, the farthest negative;
    batchhard  one triplet per anchor: its farthest positive and its nearest negative (Hermans et al. 2017).
``soft=True`` replaces the hinge max(x + alpha, 0) by Hermans et al.'s soft margin ln(1 + exp(x)),
x = d(A,P) - d(A,N): it never reaches 0, so it keeps pulling positives in after the margin is met.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MINING = ("random", "semihard", "batchhard")


def pairwise_sq_distances(emb: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) squared Euclidean distances (exactly 0 on the diagonal)."""
    sq = emb.pow(2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * emb @ emb.T
    return d.clamp(min=0) * (1 - torch.eye(len(emb), device=emb.device, dtype=emb.dtype))


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2,
                 reduction: str = "mean") -> torch.Tensor:
    """max(||a - p||^2 - ||a - n||^2 + margin, 0) per triplet; mean (or none) over the triplets."""
    losses = F.relu((anchor - positive).pow(2).sum(-1) - (anchor - negative).pow(2).sum(-1) + margin)
    return losses.mean() if reduction == "mean" else losses


def mine_triplets(dist: torch.Tensor, labels: torch.Tensor, strategy: str, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices (anchor, positive, negative), each i64 (T,), chosen from a (B, B) distance matrix."""
    if strategy not in MINING:
        raise ValueError(f"mining must be one of {MINING}, got {strategy!r}")
    dist = dist.detach()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    inf = torch.tensor(float("inf"), device=dist.device, dtype=dist.dtype)
    if strategy == "batchhard":
        has = pos_mask.any(1) & neg_mask.any(1)
        hardest_pos = torch.where(pos_mask, dist, -inf).argmax(1)  # (B,) farthest positive
        hardest_neg = torch.where(neg_mask, dist, inf).argmin(1)  # (B,) nearest negative
        a = torch.nonzero(has).flatten()
        return a, hardest_pos[a], hardest_neg[a]
    a, p = torch.nonzero(pos_mask, as_tuple=True)  # every anchor-positive pair
    ok = neg_mask[a].any(1)
    a, p = a[ok], p[ok]
    if strategy == "random":
        weights = neg_mask[a].float()  # (T, B) uniform over each anchor's negatives
        n = torch.multinomial(weights, 1, generator=generator).flatten()
        return a, p, n
    d_an = dist[a]  # (T, B)
    d_ap = dist[a, p][:, None]  # (T, 1)
    farther = neg_mask[a] & (d_an > d_ap)
    semi = torch.where(farther, d_an, inf).argmin(1)  # nearest negative beyond the positive
    easiest = torch.where(neg_mask[a], d_an, -inf).argmax(1)
    n = torch.where(farther.any(1), semi, easiest)
    return a, p, n


def mined_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, strategy: str = "batchhard",
                       generator: torch.Generator | None = None, soft: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss over the mined triplets, fraction of them active) for a batch (B, D).

    Active: a non-zero hinge loss, i.e. d(A,P) - d(A,N) + margin > 0 (with ``soft`` too, where the
    loss itself is never 0 and the margin only defines what counts as active)."""
    dist = pairwise_sq_distances(emb)
    a, p, n = mine_triplets(dist, labels, strategy, generator)
    if len(a) == 0:
        zero = emb.sum() * 0
        return zero, zero.detach()
    x = dist[a, p] - dist[a, n]  # (T,)
    active = ((x.detach() + margin) > 0).float().mean()
    losses = F.softplus(x) if soft else F.relu(x + margin)
    return losses.mean(), active


def contrastive_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean over all pairs i < j of y d^2 + (1 - y) max(margin - d, 0)^2, d the Euclidean distance."""
    i, j = torch.triu_indices(len(emb), len(emb), 1, device=emb.device)
    d = (emb[i] - emb[j]).pow(2).sum(1).clamp(min=1e-12).sqrt()
    y = (labels[i] == labels[j]).float()
    return (y * d.pow(2) + (1 - y) * F.relu(margin - d).pow(2)).mean()


def pair_bce_loss(head, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The binary-classification variant: logistic loss of ``head`` on all pairs i < j of the batch,
    positives and negatives weighted to count equally; returns (loss, pair accuracy)."""
    i, j = torch.triu_indices(len(emb), len(emb), 1, device=emb.device)
    y = (labels[i] == labels[j]).float()
    logits = head(emb[i], emb[j])  # (pairs,)
    n_pos = y.sum().clamp(min=1)
    n_neg = (1 - y).sum().clamp(min=1)
    weight = y / n_pos + (1 - y) / n_neg  # each class sums to 1
    loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight).sum() / 2
    acc = ((logits.detach() > 0).float() == y).float().mean()
    return loss, acc
