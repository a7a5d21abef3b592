import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.scratch import rnn
from tests.scratch.helpers import close, t

N, T, D, H, V = 3, 4, 5, 6, 7


def _torch_rnn(Wx, Wh, b, cell: bool, lstm: bool):
    """A torch (LSTM|RNN)(Cell) carrying our weights; torch's LSTM gates are i, f, g, o."""
    mod = (torch.nn.LSTMCell if cell else torch.nn.LSTM) if lstm else (torch.nn.RNNCell if cell else torch.nn.RNN)
    kw = {} if cell else {"batch_first": True}
    m = mod(D, H, **kw).double()
    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H] if lstm else np.arange(H)  # ifog -> ifgo
    sfx = "" if cell else "_l0"
    with torch.no_grad():
        getattr(m, f"weight_ih{sfx}").copy_(torch.tensor(Wx[:, perm].T))
        getattr(m, f"weight_hh{sfx}").copy_(torch.tensor(Wh[:, perm].T))
        getattr(m, f"bias_ih{sfx}").copy_(torch.tensor(b[perm]))
        getattr(m, f"bias_hh{sfx}").zero_()
    return m, perm


def _weights(rng, gates):
    return rng.standard_normal((D, gates * H)) * 0.5, rng.standard_normal((H, gates * H)) * 0.5, rng.standard_normal(gates * H)


def _param_grads(m, perm, sfx):
    inv = np.argsort(perm)
    wx = getattr(m, f"weight_ih{sfx}").grad.numpy().T[:, inv]
    wh = getattr(m, f"weight_hh{sfx}").grad.numpy().T[:, inv]
    return wx, wh, getattr(m, f"bias_ih{sfx}").grad.numpy()[inv]


def test_rnn_step_matches_torch_rnncell(rng):
    Wx, Wh, b = _weights(rng, 1)
    x, h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    out, cache = rnn.rnn_step_forward(x, h, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    dx, dh, dWx, dWh, db = rnn.rnn_step_backward(dout, cache)
    m, perm = _torch_rnn(Wx, Wh, b, cell=True, lstm=False)
    tx, th = t(x), t(h)
    tout = m(tx, th)
    tout.backward(torch.tensor(dout))
    assert close(out, tout) and close(dx, tx.grad) and close(dh, th.grad)
    for ours, theirs in zip((dWx, dWh, db), _param_grads(m, perm, "")):
        assert close(ours, theirs)


def test_rnn_sequence_matches_torch_rnn(rng):
    Wx, Wh, b = _weights(rng, 1)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    h, cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
    dout = rng.standard_normal(h.shape)
    dx, dh0, dWx, dWh, db = rnn.rnn_backward(dout, cache)
    m, perm = _torch_rnn(Wx, Wh, b, cell=False, lstm=False)
    tx, th0 = t(x), t(h0)
    tout, _ = m(tx, th0[None])
    tout.backward(torch.tensor(dout))
    assert close(h, tout) and close(dx, tx.grad) and close(dh0, th0.grad)
    for ours, theirs in zip((dWx, dWh, db), _param_grads(m, perm, "_l0")):
        assert close(ours, theirs)


def test_lstm_step_matches_torch_lstmcell(rng):
    Wx, Wh, b = _weights(rng, 4)
    x, h, c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    nh, nc, cache = rnn.lstm_step_forward(x, h, c, Wx, Wh, b)
    dnh, dnc = rng.standard_normal(nh.shape), rng.standard_normal(nc.shape)
    dx, dh, dc, dWx, dWh, db = rnn.lstm_step_backward(dnh, dnc, cache)
    m, perm = _torch_rnn(Wx, Wh, b, cell=True, lstm=True)
    tx, th, tc = t(x), t(h), t(c)
    tnh, tnc = m(tx, (th, tc))
    torch.autograd.backward([tnh, tnc], [torch.tensor(dnh), torch.tensor(dnc)])
    assert close(nh, tnh) and close(nc, tnc)
    assert close(dx, tx.grad) and close(dh, th.grad) and close(dc, tc.grad)
    for ours, theirs in zip((dWx, dWh, db), _param_grads(m, perm, "")):
        assert close(ours, theirs)


def test_lstm_sequence_matches_torch_lstm(rng):
    Wx, Wh, b = _weights(rng, 4)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    h, cache = rnn.lstm_forward(x, h0, Wx, Wh, b)
    dout = rng.standard_normal(h.shape)
    dx, dh0, dWx, dWh, db = rnn.lstm_backward(dout, cache)
    m, perm = _torch_rnn(Wx, Wh, b, cell=False, lstm=True)
    tx, th0 = t(x), t(h0)
    tout, _ = m(tx, (th0[None], torch.zeros(1, N, H, dtype=torch.float64)))
    tout.backward(torch.tensor(dout))
    assert close(h, tout) and close(dx, tx.grad) and close(dh0, th0.grad)
    for ours, theirs in zip((dWx, dWh, db), _param_grads(m, perm, "_l0")):
        assert close(ours, theirs)


def test_word_embedding_matches_torch_embedding_with_repeated_words(rng):
    x = np.array([[0, 3, 3, 1], [6, 0, 3, 2]])  # repeated ids must accumulate
    W = rng.standard_normal((V, D))
    out, cache = rnn.word_embedding_forward(x, W)
    dout = rng.standard_normal(out.shape)
    tW = t(W)
    tout = F.embedding(torch.tensor(x), tW)
    tout.backward(torch.tensor(dout))
    assert close(out, tout) and close(rnn.word_embedding_backward(dout, cache), tW.grad)


def test_temporal_affine_matches_torch(rng):
    x, w, b = rng.standard_normal((N, T, D)), rng.standard_normal((D, V)), rng.standard_normal(V)
    out, cache = rnn.temporal_affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = rnn.temporal_affine_backward(dout, cache)
    tx, tw, tb = t(x), t(w), t(b)
    tout = tx @ tw + tb
    tout.backward(torch.tensor(dout))
    assert close(out, tout) and close(dx, tx.grad) and close(dw, tw.grad) and close(db, tb.grad)


def test_temporal_softmax_loss_matches_masked_torch_cross_entropy(rng):
    x, y = rng.standard_normal((N, T, V)), rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) > 0.3
    loss, dx = rnn.temporal_softmax_loss(x, y, mask)
    tx = t(x)
    per_step = F.cross_entropy(tx.reshape(-1, V), torch.tensor(y.reshape(-1)), reduction="none")
    tloss = (per_step * torch.tensor(mask.reshape(-1), dtype=torch.float64)).sum() / N
    tloss.backward()
    assert close(loss, tloss) and close(dx, tx.grad)
    assert np.all(dx[~mask] == 0)  # padding contributes nothing
