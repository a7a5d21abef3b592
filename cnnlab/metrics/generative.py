"""Scores of generated images read off a classifier: Frechet distance in its feature space, entropies, score.

These are the ideas of FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016) with a
classifier of the images' own domain (e.g. the fast Fashion-MNIST ResNet-9) in place of ImageNet's
Inception-v3: the numbers compare models on one dataset and are not comparable with published FID/IS.
"""

from __future__ import annotations

import numpy as np
import torch


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to features (N, D) and (M, D).

    Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix, so
    only symmetric eigendecompositions are needed (in float64).
    """
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 feature vectors on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    w, v = torch.linalg.eigh(s_a)
    root_a = (v * w.clamp_min(0).sqrt()) @ v.T
    middle = root_a @ s_b @ root_a
    tr_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * tr_root)


def prediction_entropy(probs: np.ndarray | torch.Tensor) -> float:
    """Mean over images of H(p(y|x)) in nats: low when the classifier is sure what each image is."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float64).clamp_min(1e-12)
    return float(-(p * p.log()).sum(1).mean())


def class_entropy(probs: np.ndarray | torch.Tensor) -> float:
    """H(p(y)) of the mean prediction in nats: high (ln K at most) when every class is generated."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float64).mean(0).clamp_min(1e-12)
    return float(-(p * p.log()).sum())


def classifier_score(probs: np.ndarray | torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) = exp(H(p(y)) - E H(p(y|x))): between 1 and K, higher is sharper and more varied."""
    return float(np.exp(class_entropy(probs) - prediction_entropy(probs)))
