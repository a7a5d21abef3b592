"""The gradient-check suite behind ``cnnlab gradcheck``: every layer and loss, checked.

Each case builds small random inputs, a scalar function f of them (a layer's output dotted
with a fixed random upstream gradient, or a loss), and the analytic gradients from the
hand-written backward pass; ``run_gradchecks`` compares them with centered differences.
Inputs are kept away from kinks (ReLU at 0, ties in max pooling) where no derivative exists.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnlab.scratch import conv, layers, losses, norm, pool, rnn
from cnnlab.scratch.gradcheck import grad_check_sparse, numerical_gradient, numerical_gradient_array, rel_error


@dataclass
class GradCheckResult:
    layer: str
    grad: str
    error: float


@dataclass
class Case:
    """Inputs (nudged in place), analytic gradients, and either a scalar function of the
    inputs or a layer output function with its upstream gradient ``dout``."""

    inputs: dict
    analytic: dict
    scalar_fn: Callable[[], float] | None = None
    out_fn: Callable[[], np.ndarray] | None = None
    dout: np.ndarray | None = None
    sparse: bool = False


def _away_from_zero(a: np.ndarray, margin: float = 0.05) -> np.ndarray:
    return np.where(a >= 0, a + margin, a - margin)


def _layer(forward, backward, inputs: dict, grad_names: list[str], rng, **kw):
    """Case from a forward/backward pair, checked on sum(forward(*inputs) * dout)."""
    out, cache = forward(*inputs.values(), **kw)
    dout = rng.standard_normal(out.shape).astype(out.dtype)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    return Case(inputs, dict(zip(grad_names, grads)), out_fn=lambda: forward(*inputs.values(), **kw)[0], dout=dout)


def _loss(loss_fn, inputs: dict, name: str, *extra):
    """Case from a loss returning (value, d value / d first input)."""
    _, grad = loss_fn(*inputs.values(), *extra)
    return Case(inputs, {name: grad}, scalar_fn=lambda: loss_fn(*inputs.values(), *extra)[0])


def _conv_case(impl: str, rng, dt):
    fwd, bwd = conv.CONV_IMPLEMENTATIONS[impl]
    inputs = {"x": rng.standard_normal((2, 3, 7, 7)).astype(dt), "w": rng.standard_normal((3, 3, 3, 3)).astype(dt),
              "b": rng.standard_normal(3).astype(dt)}
    return _layer(fwd, bwd, inputs, ["x", "w", "b"], rng, stride=2, pad=1)


def _lstm_step(rng, dt):
    n, d, h = 3, 4, 5
    inputs = {"x": rng.standard_normal((n, d)), "prev_h": rng.standard_normal((n, h)), "prev_c": rng.standard_normal((n, h)),
              "Wx": 0.5 * rng.standard_normal((d, 4 * h)), "Wh": 0.5 * rng.standard_normal((h, 4 * h)),
              "b": rng.standard_normal(4 * h)}
    inputs = {k: v.astype(dt) for k, v in inputs.items()}
    dh, dc = rng.standard_normal((n, h)).astype(dt), rng.standard_normal((n, h)).astype(dt)
    _, _, cache = rnn.lstm_step_forward(*inputs.values())
    grads = rnn.lstm_step_backward(dh, dc, cache)

    def both_outputs():
        next_h, next_c, _ = rnn.lstm_step_forward(*inputs.values())
        return np.concatenate([next_h, next_c], axis=1)  # (N, 2H)

    return Case(inputs, dict(zip(["x", "prev_h", "prev_c", "Wx", "Wh", "b"], grads)), out_fn=both_outputs,
                dout=np.concatenate([dh, dc], axis=1))


def _seq(forward, backward, gates: int, rng, dt):
    n, t, d, h = 2, 3, 4, 5
    inputs = {"x": rng.standard_normal((n, t, d)), "h0": rng.standard_normal((n, h)),
              "Wx": 0.5 * rng.standard_normal((d, gates * h)), "Wh": 0.5 * rng.standard_normal((h, gates * h)),
              "b": rng.standard_normal(gates * h)}
    inputs = {k: v.astype(dt) for k, v in inputs.items()}
    return _layer(forward, backward, inputs, ["x", "h0", "Wx", "Wh", "b"], rng)


def _rnn_step(rng, dt):
    inputs = {"x": rng.standard_normal((3, 4)), "prev_h": rng.standard_normal((3, 5)),
              "Wx": 0.5 * rng.standard_normal((4, 5)), "Wh": 0.5 * rng.standard_normal((5, 5)), "b": rng.standard_normal(5)}
    inputs = {k: v.astype(dt) for k, v in inputs.items()}
    return _layer(rnn.rnn_step_forward, rnn.rnn_step_backward, inputs, ["x", "prev_h", "Wx", "Wh", "b"], rng)


def _affine_inputs(rng, dt, shape=(4, 2, 3), m=5):
    d = int(np.prod(shape[1:]))
    return {"x": rng.standard_normal(shape).astype(dt), "w": rng.standard_normal((d, m)).astype(dt),
            "b": rng.standard_normal(m).astype(dt)}


def _elementwise(forward, backward, rng, dt, **kw):
    x = _away_from_zero(rng.standard_normal((4, 6))).astype(dt)
    return _layer(forward, backward, {"x": x}, ["x"], rng, **kw)


def _svm_case(rng, dt, n: int = 5, c: int = 4):
    """Scores whose hinge margins s_j - s_y + 1 are all at least 0.05 away from the kink at 0."""
    x, y = rng.standard_normal((n, c)), rng.integers(0, c, n)
    correct = x[np.arange(n), y][:, None]
    x = correct - 1.0 + _away_from_zero(x - correct + 1.0)
    x[np.arange(n), y] = correct[:, 0]
    return _loss(losses.svm_loss, {"x": x.astype(dt)}, "x", y)


def _maxout(rng, dt):
    """Maxout inputs whose winning piece leads the runner-up by at least 0.05 everywhere."""
    while True:
        x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 3))
        z = np.sort(np.einsum("nd,kdm->knm", x, w) + b[:, None, :], axis=0)  # (K, N, M)
        if np.min(z[-1] - z[-2]) > 0.05:
            break
    inputs = {"x": x.astype(dt), "w": w.astype(dt), "b": b.astype(dt)}
    return _layer(layers.maxout_forward, layers.maxout_backward, inputs, ["x", "w", "b"], rng)


def _conv_large(rng, dt):
    """A bigger convolution (6144 input entries), checked at 20 random entries per gradient."""
    fwd, bwd = conv.CONV_IMPLEMENTATIONS["im2col"]
    inputs = {"x": rng.standard_normal((8, 3, 16, 16)).astype(dt), "w": rng.standard_normal((8, 3, 5, 5)).astype(dt),
              "b": rng.standard_normal(8).astype(dt)}
    case = _layer(fwd, bwd, inputs, ["x", "w", "b"], rng, stride=1, pad=2)
    case.scalar_fn = lambda: np.sum(case.out_fn() * case.dout)
    case.sparse = True
    return case


def _bn(spatial: bool, rng, dt):
    shape, c = ((3, 2, 4, 4), 2) if spatial else ((6, 4), 4)
    inputs = {"x": (2.0 * rng.standard_normal(shape) + 1.0).astype(dt), "gamma": rng.standard_normal(c).astype(dt),
              "beta": rng.standard_normal(c).astype(dt)}
    fwd, bwd = ((norm.spatial_batchnorm_forward, norm.spatial_batchnorm_backward) if spatial
                else (norm.batchnorm_forward, norm.batchnorm_backward))
    return _layer(fwd, bwd, inputs, ["x", "gamma", "beta"], rng, bn_param={"mode": "train"})


def _pool(forward, backward, rng, dt):
    x = (rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1).astype(dt)  # distinct values: no ties
    return _layer(forward, backward, {"x": x}, ["x"], rng, pool_height=3, pool_width=3, stride=2)


CASES: dict[str, Callable] = {
    "affine": lambda r, dt: _layer(layers.affine_forward, layers.affine_backward, _affine_inputs(r, dt), ["x", "w", "b"], r),
    "relu": lambda r, dt: _elementwise(layers.relu_forward, layers.relu_backward, r, dt),
    "leaky_relu": lambda r, dt: _elementwise(layers.leaky_relu_forward, layers.leaky_relu_backward, r, dt, alpha=0.1),
    "elu": lambda r, dt: _elementwise(layers.elu_forward, layers.elu_backward, r, dt, alpha=1.0),
    "sigmoid": lambda r, dt: _elementwise(layers.sigmoid_forward, layers.sigmoid_backward, r, dt),
    "tanh": lambda r, dt: _elementwise(layers.tanh_forward, layers.tanh_backward, r, dt),
    "maxout": _maxout,
    "conv_naive": lambda r, dt: _conv_case("naive", r, dt),
    "conv_im2col": lambda r, dt: _conv_case("im2col", r, dt),
    "conv_fft": lambda r, dt: _conv_case("fft", r, dt),
    "conv_im2col_large (sparse)": _conv_large,
    "max_pool": lambda r, dt: _pool(pool.max_pool_forward, pool.max_pool_backward, r, dt),
    "avg_pool": lambda r, dt: _pool(pool.avg_pool_forward, pool.avg_pool_backward, r, dt),
    "batchnorm": lambda r, dt: _bn(False, r, dt),
    "spatial_batchnorm": lambda r, dt: _bn(True, r, dt),
    "dropout": lambda r, dt: _layer(norm.dropout_forward, norm.dropout_backward, {"x": r.standard_normal((5, 6)).astype(dt)},
                                    ["x"], r, keep_prob=0.7, train=True, seed=3),
    "rnn_step": _rnn_step,
    "rnn": lambda r, dt: _seq(rnn.rnn_forward, rnn.rnn_backward, 1, r, dt),
    "lstm_step": _lstm_step,
    "lstm": lambda r, dt: _seq(rnn.lstm_forward, rnn.lstm_backward, 4, r, dt),
    "word_embedding": lambda r, dt: _layer(rnn.word_embedding_forward, rnn.word_embedding_backward,
                                           {"x": r.integers(0, 5, (2, 4)), "W": r.standard_normal((5, 3)).astype(dt)}, ["W"], r),
    "temporal_affine": lambda r, dt: _layer(rnn.temporal_affine_forward, rnn.temporal_affine_backward,
                                            {"x": r.standard_normal((2, 3, 4)).astype(dt), "w": r.standard_normal((4, 5)).astype(dt),
                                             "b": r.standard_normal(5).astype(dt)}, ["x", "w", "b"], r),
    "temporal_softmax_loss": lambda r, dt: _loss(rnn.temporal_softmax_loss, {"x": r.standard_normal((2, 3, 5)).astype(dt)}, "x",
                                                 r.integers(0, 5, (2, 3)), r.random((2, 3)) > 0.3),
    "svm_loss": _svm_case,
    "softmax_loss": lambda r, dt: _loss(losses.softmax_loss, {"x": r.standard_normal((5, 4)).astype(dt)}, "x", r.integers(0, 4, 5)),
    "logistic_loss": lambda r, dt: _loss(losses.logistic_loss, {"x": r.standard_normal(6).astype(dt)}, "x", r.integers(0, 2, 6)),
    "l2_loss": lambda r, dt: _loss(losses.l2_loss, {"pred": r.standard_normal((4, 3)).astype(dt)}, "pred", r.standard_normal((4, 3))),
    "l1_loss": lambda r, dt: _loss(losses.l1_loss, {"pred": _away_from_zero(r.standard_normal((4, 3))).astype(dt)}, "pred",
                                   np.zeros((4, 3))),
    "l2_penalty": lambda r, dt: _loss(losses.l2_penalty, {"W": r.standard_normal((3, 4)).astype(dt)}, "W", 0.3),
    "l1_penalty": lambda r, dt: _loss(losses.l1_penalty, {"W": _away_from_zero(r.standard_normal((3, 4))).astype(dt)}, "W", 0.3),
    "elastic_net": lambda r, dt: _loss(losses.elastic_net_penalty, {"W": _away_from_zero(r.standard_normal((3, 4))).astype(dt)},
                                       "W", 0.3, 0.2),
}


def run_gradchecks(pattern: str = "*", dtype=np.float64, order: int = 4, h: float | None = None, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> list[GradCheckResult]:
    """Check every case whose name matches the glob ``pattern``; one result per gradient.

    order 4 (default) is the five-point stencil, order 2 the course's two-point formula.
    """
    results = []
    for name, build in CASES.items():
        if not fnmatch.fnmatch(name, pattern):
            continue
        case = build(np.random.default_rng(seed), np.dtype(dtype))
        for gname, grad in case.analytic.items():
            x = case.inputs[gname]
            if case.sparse:
                err = grad_check_sparse(case.scalar_fn, x, grad, num_checks=10, h=h, order=order, seed=seed)
            elif case.out_fn is not None:
                err = rel_error(grad, numerical_gradient_array(case.out_fn, x, case.dout, h=h, order=order))
            else:
                err = rel_error(grad, numerical_gradient(case.scalar_fn, x, h=h, order=order))
            results.append(GradCheckResult(name, gname, err))
        if progress is not None:
            progress(name)  # called after each case is checked
    return results
