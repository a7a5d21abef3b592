import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ShapeError
from cnnlab.scratch import losses
from tests.scratch.helpers import close, t


def _check(loss_fn, torch_fn, x, *extra):
    value, grad = loss_fn(x, *extra)
    tx = t(x)
    tval = torch_fn(tx)
    tval.backward()
    assert close(value, tval) and close(grad, tx.grad)


def test_svm_loss_course_example():
    # CS231n linear classification notes: scores [13, -7, 11], correct class 0, delta 10 -> 0 + 8
    loss, _ = losses.svm_loss(np.array([[13.0, -7.0, 11.0]]), np.array([0]), delta=10.0)
    assert loss == 8.0


def test_svm_loss_matches_torch_multi_margin_loss(rng):
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    # torch divides the per-example sum by the number of classes C; the course does not
    _check(losses.svm_loss, lambda s: F.multi_margin_loss(s, torch.tensor(y), margin=1.0) * 5, x, y)


def test_softmax_loss_matches_torch_cross_entropy(rng):
    x, y = 4 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    _check(losses.softmax_loss, lambda s: F.cross_entropy(s, torch.tensor(y)), x, y)


def test_softmax_loss_is_ln_c_for_uniform_scores_and_stable_for_huge_scores():
    assert math.isclose(losses.softmax_loss(np.zeros((3, 10)), np.array([0, 4, 9]))[0], math.log(10))
    loss, dx = losses.softmax_loss(np.array([[1000.0, 0.0]]), np.array([1]))
    assert math.isclose(loss, 1000.0) and np.all(np.isfinite(dx))


def test_logistic_loss_matches_torch_bce_with_logits(rng):
    x, y = 5 * rng.standard_normal(8), rng.integers(0, 2, 8)
    _check(losses.logistic_loss, lambda s: F.binary_cross_entropy_with_logits(s, torch.tensor(y, dtype=torch.float64)), x, y)


@pytest.mark.parametrize("name,torch_fn", [("l2_loss", lambda d: (d * d).sum()), ("l1_loss", lambda d: d.abs().sum())])
def test_regression_losses_match_torch(name, torch_fn, rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _check(getattr(losses, name), lambda p: torch_fn(p - torch.tensor(y)) / 4, x, y)


def test_penalties_match_torch(rng):
    W = rng.standard_normal((5, 4))
    _check(losses.l2_penalty, lambda w: 0.5 * 0.3 * (w * w).sum(), W, 0.3)
    _check(losses.l1_penalty, lambda w: 0.3 * w.abs().sum(), W, 0.3)
    _check(losses.elastic_net_penalty, lambda w: 0.3 * w.abs().sum() + 0.5 * 0.2 * (w * w).sum(), W, 0.3, 0.2)


def test_losses_reject_bad_labels():
    with pytest.raises(ShapeError, match="labels"):
        losses.softmax_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ShapeError, match="same shape"):
        losses.l2_loss(np.zeros((2, 3)), np.zeros((3, 2)))
