"""The costs of neural style transfer (Gatys et al. 2016; Johnson et al. 2016), as pure tensor functions.

- ``gram_matrix(F)``: G[c, d] = sum_hw F[c, hw] F[d, hw] / (C H W): which channels fire together,
  wherever in the image; dividing by the layer size makes layers of different sizes comparable.
- ``style_loss``: the weighted sum over layers of ||G(x) - G(s)||_F^2 (Gatys' E_l times 4, since his
  1 / (4 N^2 M^2) with an unnormalized Gram is 1/4 of this with the normalized one).
- ``content_loss``: the mean squared difference of one layer's features (Gatys' 1/2 sum, divided by C H W / 2).
- ``total_variation``: the mean squared difference of neighbouring pixels, down and across; a smoothness prior.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from cnnlab.errors import ShapeError


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): channel correlations, divided by C * H * W when ``normalize``."""
    if features.ndim != 4:
        raise ShapeError(f"gram_matrix needs (B, C, H, W) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)  # (B, C, HW)
    g = f @ f.transpose(1, 2)  # (B, C, C)
    return g / (c * h * w) if normalize else g


def style_layer_loss(gram_x: torch.Tensor, gram_s: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius distance of two (B, C, C) Gram matrices, averaged over the batch; () tensor.

    ``gram_s`` may be (1, C, C): one style for every image of the batch."""
    if gram_x.shape[-2:] != gram_s.shape[-2:]:
        raise ShapeError(f"Gram matrices of different layers: {tuple(gram_x.shape)} vs {tuple(gram_s.shape)}")
    return (gram_x - gram_s).pow(2).sum(dim=(-2, -1)).mean()


def style_loss(features: Mapping[str, torch.Tensor], style_grams: Mapping[str, torch.Tensor],
               weights: Mapping[str, float] | Sequence[float] | None = None) -> torch.Tensor:
    """sum_l w_l ||G(F_l) - G_l||_F^2 over the layers of ``style_grams`` (default w_l = 1 / number of layers).

    ``features``: layer -> (B, C, H, W) of the generated image; ``style_grams``: layer -> (1 or B, C, C)."""
    names = list(style_grams)
    if weights is None:
        w = {n: 1.0 / len(names) for n in names}
    elif isinstance(weights, Mapping):
        w = dict(weights)
    else:
        w = dict(zip(names, weights))
    total = features[names[0]].new_zeros(())
    for n in names:
        total = total + w[n] * style_layer_loss(gram_matrix(features[n]), style_grams[n])
    return total


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of one layer's features (B, C, H, W) and the content's; () tensor."""
    if features.shape[1:] != target.shape[1:]:
        raise ShapeError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ; "
                         "the generated image must have the content image's size")
    return (features - target).pow(2).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertically plus horizontally adjacent pixels of (B, C, H, W); () tensor."""
    if x.ndim != 4:
        raise ShapeError(f"total_variation needs (B, C, H, W) images, got shape {tuple(x.shape)}")
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).mean()  # (B, C, H-1, W) differences
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()  # (B, C, H, W-1)
    return dh + dw
