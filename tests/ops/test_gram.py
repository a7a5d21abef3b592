"""Style-transfer costs against hand-computed values and their formulas."""

import numpy as np
import pytest
import torch

from cnnlab.errors import ShapeError
from cnnlab.ops.gram import content_loss, gram_matrix, style_layer_loss, style_loss, total_variation


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2 channels, H=1, W=2
    want = torch.tensor([[5.0, 11.0], [11.0, 25.0]])  # <f_c, f_d>
    assert torch.equal(gram_matrix(f, normalize=False)[0], want)
    assert torch.allclose(gram_matrix(f)[0], want / 4)  # / (C H W)


def test_gram_matrix_matches_einsum_and_is_symmetric():
    f = torch.randn(3, 5, 4, 6, dtype=torch.float64)
    g = gram_matrix(f)
    ref = torch.einsum("bchw,bdhw->bcd", f, f) / (5 * 4 * 6)
    assert torch.allclose(g, ref) and torch.allclose(g, g.transpose(1, 2))
    with pytest.raises(ShapeError):
        gram_matrix(torch.zeros(5, 4, 6))


def test_style_loss_zero_for_identical_and_matches_formula():
    torch.manual_seed(0)
    feats = {"a": torch.randn(1, 4, 5, 5, dtype=torch.float64), "b": torch.randn(1, 8, 3, 3, dtype=torch.float64)}
    grams = {k: gram_matrix(v) for k, v in feats.items()}
    assert style_loss(feats, grams).item() == 0.0
    other = {k: torch.randn_like(v) for k, v in feats.items()}
    w = {"a": 0.3, "b": 2.0}
    want = 0.0
    for k in feats:  # sum_l w_l sum_cd (G_x - G_s)^2 with G = F F^T / (C H W), in NumPy
        fx, fs = other[k][0].reshape(other[k].shape[1], -1).numpy(), feats[k][0].reshape(feats[k].shape[1], -1).numpy()
        n = fx.size
        want += w[k] * ((fx @ fx.T / n - fs @ fs.T / n) ** 2).sum()
    assert style_loss(other, grams, w).item() == pytest.approx(want, rel=1e-12)
    assert style_loss(other, grams).item() == pytest.approx(sum(
        style_layer_loss(gram_matrix(other[k]), grams[k]).item() / 2 for k in feats), rel=1e-12)  # default w = 1/L


def test_gatys_normalization_is_a_quarter_of_ours():
    """Gatys' E_l = 1 / (4 N^2 M^2) sum (G - A)^2 with unnormalized Grams is our layer loss / 4."""
    x, s = torch.randn(1, 3, 4, 5, dtype=torch.float64), torch.randn(1, 3, 4, 5, dtype=torch.float64)
    n, m = 3, 20
    gatys = ((gram_matrix(x, False) - gram_matrix(s, False)) ** 2).sum() / (4 * n ** 2 * m ** 2)
    assert style_layer_loss(gram_matrix(x), gram_matrix(s)).item() / 4 == pytest.approx(gatys.item(), rel=1e-12)


def test_content_loss_is_mean_squared_difference():
    a, b = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2) * 3
    assert content_loss(a, b).item() == 9.0
    with pytest.raises(ShapeError):
        content_loss(a, torch.zeros(1, 2, 3, 3))


def test_total_variation_by_hand():
    x = torch.tensor([[0.0, 1.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    # down: 3-0, 5-1 -> mean(9, 16) = 12.5; across: 1-0, 5-3 -> mean(1, 4) = 2.5
    assert total_variation(x).item() == 15.0
    assert total_variation(torch.full((2, 3, 4, 4), 0.7)).item() == 0.0
    g = np.random.default_rng(0).random((1, 3, 6, 7))
    want = (np.diff(g, axis=2) ** 2).mean() + (np.diff(g, axis=3) ** 2).mean()
    assert total_variation(torch.from_numpy(g)).item() == pytest.approx(want)
