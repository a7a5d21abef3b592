"""Siamese encoders: one network f, shared by both (or all three) inputs, giving a 128-d encoding.

``EmbeddingNet``: any zoo backbone's ``forward_features`` -> global average pool (``avg``) or the
whole map flattened (``flatten``: keeps where things are, which transfers better to unseen
identities on small aligned images) -> linear projection to D -> L2 normalization, so
||f(x)|| = 1 and squared distances lie in [0, 4].

``encoding="features"`` trains the same way (the loss sees the projection) but encodes with the
L2-normalized pooled backbone features, before the projection: the projection is a training head,
as in SimCLR (Chen et al. 2020), whose representation before the head transfers better. With
few training identities the projection learns to separate only them (7 classes need 6
dimensions), while the features below it keep what unseen identities differ in (measured in
docs/verification.md).

``PairwiseHead``: the course's binary-classification variant, a logistic regression on the
element-wise difference of two encodings:
    l1:   y_hat = sigma(sum_k w_k |f_k(x_i) - f_k(x_j)| + b)
    chi2: y_hat = sigma(sum_k w_k (f_k(x_i) - f_k(x_j))^2 / (|f_k(x_i)| + |f_k(x_j)|) + b)
(the chi-square form is stated for non-negative features; the absolute values keep the
denominator positive for L2-normalized ones). It returns the logit; sigma gives P(same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingNet(nn.Module):
    """(B, C, H, W) -> (B, D) unit-norm encodings, on any backbone keeping the zoo's contract."""

    def __init__(self, backbone: nn.Module, dim: int = 128, pool: str = "avg",
                 in_shape: tuple[int, int, int] | None = None, encoding: str = "projection"):
        super().__init__()
        if pool not in ("avg", "flatten"):
            raise ValueError(f"pool must be avg or flatten, got {pool!r}")
        if encoding not in ("projection", "features"):
            raise ValueError(f"encoding must be projection or features, got {encoding!r}")
        self.backbone, self.dim, self.pool, self.encoding = backbone, dim, pool, encoding
        channels = getattr(backbone, "num_features", None)
        if channels is None:
            channels = backbone.feature_info[-1]["num_chs"]
        if pool == "flatten":
            if in_shape is None:
                raise ValueError("pool='flatten' needs in_shape (C, H, W) to size the projection")
            was = backbone.training
            with torch.no_grad():
                channels = backbone.eval().forward_features(torch.zeros(1, *in_shape)).numel()  # C * h * w
            backbone.train(was)
        self.proj = nn.Linear(channels, dim)
        self.encoding_dim = channels if encoding == "features" else dim

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(x).float()  # (B, C, h, w)
        return feats.flatten(1) if self.pool == "flatten" else feats.mean((2, 3))  # (B, C*h*w) or (B, C)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """What the training loss sees: (B, D) unit-norm projections."""
        return F.normalize(self.proj(self.pooled(x)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The encoding f(x): the projection, or with ``encoding="features"`` the unit-norm pooled features."""
        if self.encoding == "features":
            return F.normalize(self.pooled(x), dim=1)  # (B, C*h*w) or (B, C), ||f|| = 1
        return self.project(x)  # (B, D)


class PairwiseHead(nn.Module):
    """Logistic regression on |f(x_i) - f(x_j)| (``l1``) or the chi-square similarity (``chi2``): logits (N,)."""

    def __init__(self, dim: int = 128, kind: str = "l1", eps: float = 1e-6):
        super().__init__()
        if kind not in ("l1", "chi2"):
            raise ValueError(f"pairwise head kind must be l1 or chi2, got {kind!r}")
        self.kind, self.eps = kind, eps
        self.linear = nn.Linear(dim, 1)

    def features(self, fi: torch.Tensor, fj: torch.Tensor) -> torch.Tensor:
        if self.kind == "l1":
            return (fi - fj).abs()  # (N, D)
        return (fi - fj).pow(2) / (fi.abs() + fj.abs() + self.eps)

    def forward(self, fi: torch.Tensor, fj: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(fi, fj)).squeeze(-1)  # (N,) logits of "same identity"


class VerificationNet(nn.Module):
    """The encoder, plus the pairwise head when training the binary-classification variant."""

    def __init__(self, embedder: EmbeddingNet, head: PairwiseHead | None = None):
        super().__init__()
        self.embedder = embedder
        self.head = head

    @property
    def backbone(self) -> nn.Module:
        return self.embedder.backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)  # (B, D): the encoding

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder.project(x)  # (B, D): what the training loss (and the pairwise head) sees

    @torch.no_grad()
    def pair_distances(self, a: torch.Tensor, b: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """Distance matrix (Na, Nb) between two sets of encodings: lower = more alike.

        Without a head: the squared Euclidean distance ||f_a - f_b||^2 (the course's d).
        With one: 1 - P(same) from the logistic regression.
        """
        if self.head is None:
            return torch.cdist(a.float(), b.float()).pow(2)
        rows = []
        for s in range(0, len(a), chunk):
            ai = a[s:s + chunk]
            logits = self.head(ai[:, None, :].expand(-1, len(b), -1), b[None].expand(len(ai), -1, -1))  # (c, Nb)
            rows.append(1 - torch.sigmoid(logits))
        return torch.cat(rows) if rows else a.new_zeros(0, len(b))
