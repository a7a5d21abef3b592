"""Recurrent cells written out as the course states them, and a multilayer wrapper.

Parameters are laid out as torch's (``weight_ih`` = the input weights of all gates stacked, ``weight_hh``
the recurrent ones, gate order i, f, g, o for the LSTM and r, z, n for the GRU), so the same weights
give the same numbers here and in ``torch.nn.RNN/LSTM/GRU``; ``StackedRNN(fused=True)`` runs torch's
kernels on those very parameters for speed.

    vanilla: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)
    LSTM:    i, f, o = sigma(.), g = tanh(.);  c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    GRU:     r, z = sigma(.);  n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h_t = (1 - z) * n + z * h_{t-1}
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

State = Tensor | tuple[Tensor, Tensor]  # h (L, B, H), or (h, c) for the LSTM


def rnn_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One vanilla RNN step: x (B, I), h (B, H) -> h (B, H)."""
    return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def lstm_step(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor,
              b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step: the four gates from one matrix product each for x and h; (h, c) -> (h, c)."""
    h, c = state
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g  # the cell state: additive, the gradient highway
    h = o * torch.tanh(c)
    return h, c


def gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One GRU step: reset gate r, update gate z, candidate n; h -> h."""
    gx = x @ w_ih.T + b_ih  # (B, 3H)
    gh = h @ w_hh.T + b_hh
    xr, xz, xn = gx.chunk(3, dim=1)
    hr, hz, hn = gh.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


STEPS = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}


class _Cell(nn.Module):
    """One cell with torch's parameter names (weight_ih, weight_hh, bias_ih, bias_hh) and init U(-1/sqrt(H), 1/sqrt(H))."""

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        g = GATES[self.kind]
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(g * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def zero_state(self, batch: int, device=None) -> State:
        h = torch.zeros(batch, self.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if self.kind == "lstm" else h

    def forward(self, x: Tensor, state: State | None = None) -> State:
        if state is None:
            state = self.zero_state(x.shape[0], x.device)
        return STEPS[self.kind](x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class RNNCell(_Cell):
    """h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)."""

    kind = "rnn"


class LSTMCell(_Cell):
    """(h, c) -> (h, c) through input, forget, candidate and output gates."""

    kind = "lstm"


class GRUCell(_Cell):
    """h -> h through reset and update gates."""

    kind = "gru"


class StackedRNN(nn.Module):
    """``layers`` cells on top of each other, dropout between layers, batch-first sequences.

    The parameters are those of ``torch.nn.RNN/LSTM/GRU`` (``self.rnn``); with ``fused=False`` every
    step runs the equations above in Python (for teaching and for checking), with ``fused=True``
    torch's kernels run on the same parameters. ``forward(x (B, T, I), state) -> (out (B, T, H), state)``;
    ``state`` is h (L, B, H) or (h, c) for the LSTM, as torch's.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, layers: int = 1, dropout: float = 0.0,
                 fused: bool = True):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell {cell!r}: choose one of {', '.join(CELLS)}")
        self.cell, self.hidden_size, self.layers, self.fused = cell, hidden_size, layers, fused
        module = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = module(input_size, hidden_size, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = dropout if layers > 1 else 0.0

    def zero_state(self, batch: int, device=None) -> State:
        h = torch.zeros(self.layers, batch, self.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if self.fused:
            return self.rnn(x, state)
        return self.unrolled(x, state)[:2]

    def unrolled(self, x: Tensor, state: State | None = None, keep_steps: bool = False):
        """The loop over time and layers; with ``keep_steps`` also every layer's h_t (for gradient-flow plots)."""
        if state is None:
            state = self.zero_state(x.shape[0], x.device)
        step = STEPS[self.cell]
        lstm = self.cell == "lstm"
        new_h, new_c, steps = [], [], []
        inp = x  # (B, T, I)
        for layer in range(self.layers):
            w = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            s = (state[0][layer], state[1][layer]) if lstm else state[layer]
            outs = []
            for t in range(inp.shape[1]):
                s = step(inp[:, t], s, *w)
                outs.append(s[0] if lstm else s)
            out = torch.stack(outs, dim=1)  # (B, T, H)
            steps.append(outs)
            new_h.append(s[0] if lstm else s)
            if lstm:
                new_c.append(s[1])
            if self.dropout and self.training and layer < self.layers - 1:
                out = nn.functional.dropout(out, self.dropout, training=True)
            inp = out
        h = torch.stack(new_h)
        final = (h, torch.stack(new_c)) if lstm else h
        return (inp, final, steps) if keep_steps else (inp, final, None)


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a chunk boundary (truncated BPTT): the values carry on, the gradients stop."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
