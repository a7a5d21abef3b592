"""Vanishing and exploding gradients, measured: how much of the loss's gradient reaches h_t, t steps back.

With the loss on the last step only, dL/dh_t is the product of T - t Jacobians dh_{k+1}/dh_k. For the
vanilla RNN each is diag(tanh') W_hh, so its norm shrinks (or grows) roughly like sigma_max(W_hh)^(T-t);
the LSTM's cell state adds instead of multiplying (c_t = f * c_{t-1} + i * g), which keeps a path open.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.models.language.charlm import CharLM


def gradient_by_distance(model: CharLM, tokens: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """||dL/dh_t|| averaged over the batch for every t of ``tokens`` (B, T), the loss on the last character only.

    Returns (T,) ordered by distance from the loss: index 0 is the last step, index T-1 the first.
    """
    was = model.training
    model.eval()
    x = model.embedding(tokens[:, :-1])  # (B, T-1, E)
    out, _, steps = model.rnn.unrolled(x, None, keep_steps=True)
    hs = steps[layer]  # T-1 tensors (B, H)
    for h in hs:
        h.retain_grad()
    top = out[:, -1]
    if model.proj is not None:
        top = model.proj(top)
    loss = F.cross_entropy(model.head(top), tokens[:, -1])
    loss.backward()
    norms = torch.stack([h.grad.norm(dim=1).mean() for h in hs])  # (T-1,)
    model.zero_grad(set_to_none=True)
    model.train(was)
    return norms.flip(0).detach()


def largest_singular_value(model: CharLM, layer: int = 0) -> float:
    """sigma_max of the recurrent matrix W_hh of ``layer`` (all gates' rows stacked for LSTM/GRU)."""
    w = getattr(model.rnn.rnn, f"weight_hh_l{layer}").detach()
    return float(torch.linalg.matrix_norm(w, ord=2))
