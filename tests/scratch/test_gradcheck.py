import numpy as np
import pytest

from cnnlab.scratch import checks, layers
from cnnlab.scratch.gradcheck import grad_check_sparse, numerical_gradient, numerical_gradient_array, rel_error


def test_rel_error_hand_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)  # |1-3| / (1+3)
    assert rel_error(np.array([0.0]), np.array([1e-12])) == pytest.approx(1e-4)  # floor 1e-8 for near-zero pairs


@pytest.mark.parametrize("order,tol", [(2, 1e-8), (4, 1e-10)])
def test_numerical_gradient_of_a_cubic(order, tol):
    x = np.array([0.5, -1.2, 2.0])
    grad = numerical_gradient(lambda: np.sum(x**3), x, order=order)
    assert rel_error(grad, 3 * x**2) < tol
    assert np.array_equal(x, [0.5, -1.2, 2.0])  # x restored


def test_five_point_stencil_beats_two_point_on_exp():
    x = np.array([1.3])
    exact = np.exp(1.3)
    err2 = abs(numerical_gradient(lambda: np.exp(x).sum(), x, h=1e-3, order=2)[0] - exact)
    err4 = abs(numerical_gradient(lambda: np.exp(x).sum(), x, h=1e-3, order=4)[0] - exact)
    assert err4 < err2 / 1000  # O(h^4) vs O(h^2) at h = 1e-3


def test_numerical_gradient_array_matches_affine_backward(rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    out, cache = layers.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = layers.affine_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda: layers.affine_forward(x, w, b)[0], x, dout)) < 1e-8
    assert rel_error(dw, numerical_gradient_array(lambda: layers.affine_forward(x, w, b)[0], w, dout)) < 1e-8


def test_sparse_check_passes_right_and_catches_wrong_gradients(rng):
    x = rng.standard_normal(10_000)
    f = lambda: np.sum(np.sin(x))  # noqa: E731
    assert grad_check_sparse(f, x, np.cos(x), num_checks=20) < 1e-8
    wrong = np.cos(x) * 1.01
    assert grad_check_sparse(f, x, wrong, num_checks=20) > 1e-3


def test_suite_catches_a_broken_backward(monkeypatch):
    def bad_backward(dout, cache):  # dout * sigma instead of dout * sigma (1 - sigma)
        return dout * cache

    monkeypatch.setattr(checks, "CASES", {"sigmoid": lambda r, dt: checks._elementwise(
        layers.sigmoid_forward, bad_backward, r, dt)})
    [result] = checks.run_gradchecks("sigmoid")
    assert result.error > 1e-2


def test_suite_covers_every_layer_and_loss():
    required = {"affine", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "maxout", "conv_naive", "conv_im2col",
                "conv_fft", "max_pool", "avg_pool", "batchnorm", "spatial_batchnorm", "dropout", "rnn_step", "rnn",
                "lstm_step", "lstm", "word_embedding", "temporal_affine", "temporal_softmax_loss", "svm_loss",
                "softmax_loss", "logistic_loss", "l1_loss", "l2_loss", "l1_penalty", "l2_penalty", "elastic_net"}
    assert required <= set(checks.CASES)
