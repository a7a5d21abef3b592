"""Recurrent layers for captioning and language models: vanilla RNN, LSTM, word embedding,
temporal affine and the masked temporal softmax loss.

Row-vector convention of the course's code: h_t = tanh(x_t Wx + h_{t-1} Wh + b), which is
the column form tanh(W_hh h + W_xh x) of the lecture transposed. Sequences are batch
first: x (N, T, D), hidden states (N, T, H).
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ShapeError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# ---------------------------------------------------------------- vanilla RNN
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One time step: next_h = tanh(x Wx + prev_h Wh + b); x (N, D), prev_h (N, H)."""
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)  # (N, H)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Returns dx, dprev_h, dWx, dWh, db."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h * next_h)  # through tanh
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the step over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H)."""
    if x.ndim != 3 or h0.shape != (x.shape[0], Wh.shape[0]):
        raise ShapeError(f"rnn: want x (N, T, D) and h0 (N, H); got {x.shape} and {h0.shape}")
    n, t, _ = x.shape
    h = np.zeros((n, t, Wh.shape[0]), dtype=np.result_type(x, Wx))
    caches, prev = [], h0
    for step in range(t):
        prev, cache = rnn_step_forward(x[:, step], prev, Wx, Wh, b)
        h[:, step] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    """Backprop through time. dh (N, T, H) is the upstream gradient of every hidden state."""
    x0, _, Wx, Wh, _ = caches[0]
    n, t, _ = dh.shape
    dx = np.zeros((n, t, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0], dtype=dh.dtype)
    dprev = np.zeros_like(dh[:, 0])
    for step in reversed(range(t)):  # a state's gradient: its own loss + what flows from the future
        dx[:, step], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, step] + dprev, caches[step])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db


# ---------------------------------------------------------------- LSTM
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step; the 4H pre-activations are split into gates i, f, o, g (course order).

    c_t = f * c_{t-1} + i * g and h_t = o * tanh(c_t): the cell state's additive update is
    the "gradient highway" that lets LSTMs learn long dependencies.
    """
    hidden = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H)
    i = _sigmoid(a[:, :hidden])
    f = _sigmoid(a[:, hidden : 2 * hidden])
    o = _sigmoid(a[:, 2 * hidden : 3 * hidden])
    g = np.tanh(a[:, 3 * hidden :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),  # input gate
            dc * prev_c * f * (1.0 - f),  # forget gate
            dnext_h * tanh_c * o * (1.0 - o),  # output gate
            dc * i * (1.0 - g * g),  # candidate g
        ],
        axis=1,
    )  # (N, 4H)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM over a sequence, cell state starting at zero: x (N, T, D) -> h (N, T, H)."""
    if x.ndim != 3 or h0.shape != (x.shape[0], Wh.shape[0]) or Wh.shape[1] != 4 * Wh.shape[0]:
        raise ShapeError(f"lstm: want x (N, T, D), h0 (N, H), Wh (H, 4H); got {x.shape}, {h0.shape}, {Wh.shape}")
    n, t, _ = x.shape
    h = np.zeros((n, t, h0.shape[1]), dtype=np.result_type(x, Wx))
    prev_h, prev_c, caches = h0, np.zeros_like(h0), []
    for step in range(t):
        prev_h, prev_c, cache = lstm_step_forward(x[:, step], prev_h, prev_c, Wx, Wh, b)
        h[:, step] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches):
    """Backprop through time for the LSTM; returns dx, dh0, dWx, dWh, db."""
    x0, _, _, Wx, Wh, *_ = caches[0]
    n, t, hidden = dh.shape
    dx = np.zeros((n, t, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * hidden, dtype=dh.dtype)
    dprev_h = np.zeros((n, hidden), dtype=dh.dtype)
    dprev_c = np.zeros_like(dprev_h)
    for step in reversed(range(t)):
        dx[:, step], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, step] + dprev_h, dprev_c, caches[step]
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


# ---------------------------------------------------------------- words in, words out
def word_embedding_forward(x: np.ndarray, W: np.ndarray):
    """Look up word vectors: integer ids x (N, T) and W (V, D) -> (N, T, D)."""
    if not np.issubdtype(np.asarray(x).dtype, np.integer) or x.min(initial=0) < 0 or x.max(initial=0) >= W.shape[0]:
        raise ShapeError(f"word embedding: ids must be integers in [0, {W.shape[0]})")
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    """dW: each word's rows of dout summed (np.add.at, since a word can repeat)."""
    x, w_shape = cache
    dW = np.zeros(w_shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    """The same affine map at every time step: x (N, T, D) @ w (D, M) + b -> (N, T, M)."""
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    d = x.shape[2]
    dx = dout @ w.T
    dw = x.reshape(-1, d).T @ dout.reshape(-1, dout.shape[2])
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every time step, ignoring masked-out (padding) steps.

    x (N, T, V) scores, y (N, T) targets, mask (N, T) booleans. The loss is summed over
    time and averaged over the N sequences, as in the course. Returns (loss, dx).
    """
    n, t, v = x.shape
    flat = x.reshape(n * t, v)
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N*T, V)
    yf, mf = y.reshape(-1), mask.reshape(-1).astype(x.dtype)
    loss = -np.sum(mf * log_probs[np.arange(n * t), yf]) / n
    dflat = np.exp(log_probs)
    dflat[np.arange(n * t), yf] -= 1.0
    dflat *= mf[:, None] / n
    return loss, dflat.reshape(n, t, v)
