import numpy as np
import torch

from cnnlab.scratch.graph import Value
from tests.scratch.helpers import close, t


def test_course_example_add_then_multiply():
    x, y, z = Value(-2.0), Value(5.0), Value(-4.0)
    f = (x + y) * z
    f.backward()
    assert f.data == -12.0
    assert x.grad == -4.0 and y.grad == -4.0  # df/dx = df/dy = z
    assert z.grad == 3.0  # df/dz = x + y


def test_course_sigmoid_neuron_example():
    # CS231n backprop notes: f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2)))
    w0, x0, w1, x1, w2 = Value(2.0), Value(-1.0), Value(-3.0), Value(-2.0), Value(-3.0)
    f = 1.0 / (1.0 + (-(w0 * x0 + w1 * x1 + w2)).exp())
    f.backward()
    assert abs(f.data - 0.7310585786) < 1e-9
    assert np.allclose([x0.grad, w0.grad, x1.grad, w1.grad, w2.grad], [0.393, -0.196, -0.590, -0.393, 0.196], atol=1e-3)


def test_reused_node_accumulates_gradient():
    x = Value(3.0)
    f = x * x + x  # df/dx = 2x + 1
    f.backward()
    assert x.grad == 7.0


def test_matches_torch_on_broadcasting_matmul_expression(rng):
    a, b, c = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5) + 3.0
    A, B, C = Value(a.copy()), Value(b.copy()), Value(c.copy())
    h = (A @ B + C).tanh()  # (4, 5)
    f = ((h * h).sum(axis=1) / C.sum() + (A.relu() ** 2).mean() + C.log().sum() - A.sigmoid().sum()
         + (h.reshape(20) - 1.0).exp().mean()).sum()
    f.backward()
    ta, tb, tc = t(a), t(b), t(c)
    th = torch.tanh(ta @ tb + tc)
    tf = ((th * th).sum(1) / tc.sum() + (torch.relu(ta) ** 2).mean() + tc.log().sum() - torch.sigmoid(ta).sum()
          + (th.reshape(20) - 1.0).exp().mean()).sum()
    tf.backward()
    assert close(f.data, tf)
    assert close(A.grad, ta.grad) and close(B.grad, tb.grad) and close(C.grad, tc.grad)


def test_deep_chain_does_not_hit_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert abs(x.grad - 1.0001**5000) < 1e-9
