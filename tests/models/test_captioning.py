"""Captioning models: shapes, attention, the fused and stepwise paths, greedy vs beam search."""

import math

import pytest
import torch
from torch import nn

from cnnlab.models.captioning import (CAPTIONERS, ShowAttendTell, ShowTell, beam_search, create_captioner,
                                      doubly_stochastic_penalty, greedy_decode)
from cnnlab.models.captioning.base import Captioner

V = 11


class TinyBackbone(nn.Module):
    """A zoo-shaped stand-in: forward_features (B, 3, 16, 16) -> (B, 8, 4, 4)."""

    num_features = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)

    def forward_features(self, x):
        return self.conv(x)


def _model(name, frozen=True):
    torch.manual_seed(0)
    return create_captioner(name, TinyBackbone(), V, embed_dim=12, hidden=16, att_dim=10, att_feat=10, frozen=frozen).eval()


@pytest.mark.parametrize("name", list(CAPTIONERS))
def test_shapes_and_teacher_forcing_matches_stepping(name):
    m = _model(name)
    feats = m.encode(torch.randn(3, 3, 16, 16))
    assert feats.shape == (3, 16, 8)  # (B, L = 4 * 4, D)
    inputs = torch.randint(0, V, (3, 7))
    logits, alphas = m(feats, inputs)
    assert logits.shape == (3, 7, V)
    stepped, alphas2 = Captioner.forward(m, feats, inputs)  # the generic one-step-at-a-time loop
    assert torch.allclose(logits, stepped, atol=1e-5)  # show_tell's fused LSTM == its steps
    if name == "show_attend_tell":
        assert alphas.shape == (3, 7, 16)
        assert torch.allclose(alphas.sum(-1), torch.ones(3, 7), atol=1e-6) and (alphas >= 0).all()
    else:
        assert alphas is None and alphas2 is None


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval():
    m = _model("show_attend_tell").train()
    assert not m.backbone.training and all(not p.requires_grad for p in m.backbone.parameters())
    logits, _ = m(m.encode(torch.randn(2, 3, 16, 16)), torch.randint(0, V, (2, 4)))
    logits.sum().backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("backbone"))
    joint = _model("show_tell", frozen=False).train()
    out, _ = joint(joint.encode(torch.randn(2, 3, 16, 16)), torch.randint(0, V, (2, 4)))
    out.sum().backward()
    assert all(p.grad is not None for p in joint.backbone.parameters())


def test_doubly_stochastic_penalty_by_hand():
    alphas = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]]])  # (B=1, T=3, L=2); the last step is padding
    mask = torch.tensor([[True, True, False]])
    # column sums over real steps: 1.5, 0.5 -> (1 - 1.5)^2 + (1 - 0.5)^2 = 0.5
    assert doubly_stochastic_penalty(alphas, mask).item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", list(CAPTIONERS))
def test_beam_of_one_is_greedy(name):
    m = _model(name)
    feats = m.encode(torch.randn(5, 3, 16, 16))
    g, g_att = greedy_decode(m, feats, start=1, end=2, max_len=9)
    b, b_att, _ = beam_search(m, feats, start=1, end=2, beam=1, max_len=9)
    assert g == b
    if name == "show_attend_tell":
        for x, y, words in zip(g_att, b_att, g):
            assert x.shape == (len(words) + (len(words) < 9), 16) and torch.allclose(x, y)


class Scripted(nn.Module):
    """A decoder with fixed next-word probabilities: after <START> 'A' 0.6 / 'B' 0.4; after 'A' <END> 0.34;
    after 'B' <END> 1.0. Greedy takes 'A' (total 0.6 * 0.34 = 0.204); the best caption is 'B' (0.4)."""

    table = {1: {3: 0.6, 4: 0.4}, 3: {2: 0.34, 3: 0.33, 4: 0.33}, 4: {2: 1.0}, 2: {2: 1.0}}

    def start(self, feats):
        return (torch.zeros(feats.shape[0], 1),), ()

    def step(self, words, state, memory):
        logits = torch.full((len(words), 5), -1e9)
        for i, w in enumerate(words.tolist()):
            for nxt, p in self.table[w].items():
                logits[i, nxt] = math.log(p)
        return logits, state, None


def test_beam_search_finds_a_better_caption_than_greedy():
    m, feats = Scripted(), torch.zeros(2, 1, 1)
    g, _ = greedy_decode(m, feats, start=1, end=2, max_len=5)
    b, _, scores = beam_search(m, feats, start=1, end=2, beam=2, max_len=5, alpha=0.0)
    assert g == [[3], [3]] and b == [[4], [4]]
    assert scores[0] == pytest.approx(math.log(0.4)) and math.log(0.4) > math.log(0.6 * 0.34)
    # length normalization: with alpha = 1 both captions have 2 tokens (word + <END>), the winner is the same
    b1, _, s1 = beam_search(m, feats, start=1, end=2, beam=2, max_len=5, alpha=1.0)
    assert b1 == [[4], [4]] and s1[0] == pytest.approx(math.log(0.4) / 2)


def test_classes_are_the_registered_ones():
    assert CAPTIONERS == {"show_tell": ShowTell, "show_attend_tell": ShowAttendTell}
    with pytest.raises(ValueError):
        create_captioner("show_and_guess", TinyBackbone(), V)


def test_hard_attention_uses_one_location_and_reports_its_log_probability():
    torch.manual_seed(0)
    m = create_captioner("show_attend_tell", TinyBackbone(), V, embed_dim=12, hidden=16, att_dim=10, att_feat=10,
                         dropout=0.0, hard=True).eval()
    feats = m.encode(torch.randn(3, 3, 16, 16))
    state, memory = m.start(feats)
    words = torch.tensor([1, 4, 5])
    logits, _, alpha = m.step(words, state, memory)
    # by hand, in eval mode: z = beta * a_s at the argmax location s
    h, c = state
    a = memory[0]
    z = torch.sigmoid(m.f_beta(h)) * a[torch.arange(3), alpha.argmax(-1)]
    y = m.embed(words)
    h2, _ = m.cell(torch.cat([y, z], 1), (h, c))
    assert torch.allclose(logits, m.L_o(y + m.L_h(h2) + m.L_z(z)), atol=1e-6)
    out, alphas = m(feats, torch.randint(0, V, (3, 5)))
    log_ps, entropy = m.hard_terms()
    assert log_ps.shape == entropy.shape == (3, 5)
    assert torch.allclose(log_ps, alphas.max(-1).values.log(), atol=1e-6)  # eval: the argmax's log alpha
    assert (entropy >= 0).all() and (entropy <= math.log(16) + 1e-6).all()
    inputs = torch.randint(0, V, (3, 5))
    assert torch.equal(m(feats, inputs)[0], m(feats, inputs)[0])  # eval: deterministic
    m.train()  # no dropout here: only the sampled locations make two passes differ
    assert not torch.equal(m(feats, inputs)[0], m(feats, inputs)[0])


def test_hard_attention_trains_by_reinforce():
    from cnnlab.tasks.caption import Caption, CaptionConfig

    torch.manual_seed(0)
    m = create_captioner("show_attend_tell", TinyBackbone(), V, embed_dim=12, hidden=16, att_dim=10, att_feat=10,
                         hard=True).train()
    task = Caption(CaptionConfig(task="caption", data="x", attention="hard"))
    batch = {"images": torch.randn(4, 3, 16, 16), "tokens": torch.tensor([[1, 5, 6, 2], [1, 7, 2, -1]] * 2)}
    out = task.training_step(m, batch)
    out["loss"].backward()
    assert float(m.baseline) < 0 and float(out["baseline"]) == float(m.baseline)  # moving average of log p(y|s)
    # the attention scorer gets its gradient only through the REINFORCE term (z itself is a picked row)
    assert m.att_w.weight.grad is not None and m.att_w.weight.grad.abs().sum() > 0
