import numpy as np
import torch

from cnnlab.models.language import CharLM
from cnnlab.models.language.gradients import gradient_by_distance, largest_singular_value
from cnnlab.models.language.interpret import correlate, text_features


def test_text_features_by_hand():
    f = text_features('a"b"\n  (c)')
    assert f["inside_quotes"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert f["position_in_line"].tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4, 5]
    assert f["indentation"].tolist() == [0, 0, 0, 0, 0, 1, 2, 2, 2, 2]
    assert f["inside_brackets"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]


def test_correlate_finds_the_planted_unit():
    rng = np.random.default_rng(0)
    feat = {"x": rng.normal(size=500), "const": np.ones(500)}
    acts = rng.normal(size=(500, 20))
    acts[:, 7] = -2 * feat["x"] + 0.01 * rng.normal(size=500)
    found = correlate(acts, feat)
    assert "const" not in found  # nothing to correlate with
    assert found["x"]["unit"] == 7 and found["x"]["r"] < -0.99


def test_vanilla_rnn_gradient_vanishes_with_small_recurrent_weights():
    """With sigma_max(W_hh) < 1 the gradient shrinks at least geometrically with the distance from the loss."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 30, (8, 41))
    rnn = CharLM(30, 16, 32, 1, "rnn", fused=False)
    with torch.no_grad():
        rnn.rnn.rnn.weight_hh_l0.mul_(0.5 / largest_singular_value(rnn))
    assert abs(largest_singular_value(rnn) - 0.5) < 1e-4
    g = gradient_by_distance(rnn, tokens)
    assert g.shape == (40,) and g[0] > 0
    assert g[20] < g[0] * 0.5 ** 20 * 10  # bounded by sigma_max^k (tanh' <= 1), up to the input Jacobian
    assert torch.all(g[1:] <= g[:-1] * 0.51)
