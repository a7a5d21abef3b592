"""The course's cells against torch's own, given the same weights."""

import pytest
import torch
from torch import nn

from cnnlab.models.language import CharLM, GRUCell, LSTMCell, RNNCell, StackedRNN, detach_state

TORCH_CELLS = {"rnn": (RNNCell, nn.RNNCell), "lstm": (LSTMCell, nn.LSTMCell), "gru": (GRUCell, nn.GRUCell)}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cell_equals_torch_cell(kind):
    ours_cls, torch_cls = TORCH_CELLS[kind]
    torch.manual_seed(0)
    ours, ref = ours_cls(5, 7), torch_cls(5, 7)
    ref.load_state_dict(ours.state_dict())  # same parameter names and layout
    x = torch.randn(3, 5)
    state = ours.zero_state(3)
    h = torch.randn(3, 7)
    state = (h, torch.randn(3, 7)) if kind == "lstm" else h
    a, b = ours(x, state), ref(x, state)
    for u, v in zip(a if kind == "lstm" else [a], b if kind == "lstm" else [b]):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


def test_vanilla_cell_is_the_course_formula():
    cell = RNNCell(2, 3)
    x, h = torch.randn(4, 2), torch.randn(4, 3)
    want = torch.tanh(h @ cell.weight_hh.T + x @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh)
    torch.testing.assert_close(cell(x, h), want)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_stacked_unrolled_equals_fused(kind):
    torch.manual_seed(1)
    net = StackedRNN(kind, 6, 8, layers=3)
    x = torch.randn(2, 11, 6)
    state = net.zero_state(2)
    state = tuple(torch.randn_like(s) for s in state) if kind == "lstm" else torch.randn_like(state)
    net.fused = True
    out_f, st_f = net(x, state)
    net.fused = False
    out_u, st_u = net(x, state)
    torch.testing.assert_close(out_u, out_f, atol=1e-5, rtol=1e-5)
    for a, b in zip(st_u if kind == "lstm" else [st_u], st_f if kind == "lstm" else [st_f]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and the gradients agree too
    net.fused = True
    g_f = torch.autograd.grad(net(x, state)[0].sum(), net.rnn.weight_hh_l0)[0]
    net.fused = False
    g_u = torch.autograd.grad(net(x, state)[0].sum(), net.rnn.weight_hh_l0)[0]
    torch.testing.assert_close(g_u, g_f, atol=1e-4, rtol=1e-4)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    net = StackedRNN("lstm", 4, 16, layers=2, dropout=0.5, fused=False)
    x = torch.randn(2, 5, 4)
    net.eval()
    a, b = net(x)[0], net(x)[0]
    torch.testing.assert_close(a, b)
    net.train()
    assert not torch.allclose(net(x)[0], net(x)[0])


def test_tbptt_two_chunks_equal_one_long_sequence():
    """Carrying the (detached) state across chunks gives the same outputs as one forward over the whole sequence."""
    torch.manual_seed(0)
    model = CharLM(20, embed=8, hidden=16, layers=2, cell="lstm").eval()
    tokens = torch.randint(0, 20, (3, 24))
    full, _ = model(tokens)
    first, state = model(tokens[:, :10])
    second, _ = model(tokens[:, 10:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=1e-5, rtol=1e-5)
    # a fresh state instead of the carried one gives different logits: the state matters
    fresh, _ = model(tokens[:, 10:])
    assert not torch.allclose(fresh, full[:, 10:], atol=1e-3)


def test_detach_state_stops_the_gradient():
    model = CharLM(10, embed=4, hidden=6, layers=1, cell="gru")
    _, state = model(torch.randint(0, 10, (2, 5)))
    assert state.requires_grad and not detach_state(state).requires_grad
    _, (h, c) = CharLM(10, 4, 6, 1, "lstm")(torch.randint(0, 10, (2, 5)))
    assert not any(s.requires_grad for s in detach_state((h, c)))


def test_weight_tying_shares_the_matrix():
    model = CharLM(30, embed=16, hidden=24, layers=1, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    logits, _ = model(torch.randint(0, 30, (2, 7)))
    assert logits.shape == (2, 7, 30)
    n_untied = sum(p.numel() for p in CharLM(30, 16, 24, 1, tie_weights=False).parameters())
    assert sum(p.numel() for p in model.parameters()) < n_untied
