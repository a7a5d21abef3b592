import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.scratch.data import load_digits_data
from cnnlab.scratch.nets import ThreeLayerConvNet, TwoLayerNet
from cnnlab.scratch.recipes import train_scratch
from tests.scratch.helpers import close, t


def _compare(model, torch_forward, X, y):
    loss, grads = model.loss(X, y)
    params = {k: t(v) for k, v in model.params.items()}
    scores = torch_forward(params, t(X, False))
    weights = [v for k, v in params.items() if k.startswith("W")]
    tloss = F.cross_entropy(scores, torch.tensor(y)) + 0.5 * model.reg * sum((w * w).sum() for w in weights)
    tloss.backward()
    assert close(model.loss(X), scores)
    assert close(loss, tloss)
    for name, p in params.items():
        assert close(grads[name], p.grad), name


def test_two_layer_net_matches_torch(rng):
    model = TwoLayerNet(12, 9, 4, weight_scale=0.3, reg=0.2)
    X, y = rng.standard_normal((6, 3, 2, 2)), rng.integers(0, 4, 6)
    _compare(model, lambda p, x: torch.relu(x.reshape(6, -1) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], X, y)


def test_three_layer_conv_net_matches_torch(rng):
    for impl in ("naive", "im2col", "fft"):
        model = ThreeLayerConvNet((2, 6, 6), num_filters=3, filter_size=3, hidden_dim=7, num_classes=4, reg=0.1,
                                  conv_impl=impl, seed=1)
        for v in model.params.values():  # non-zero biases so they are really tested
            v += 0.1
        X, y = rng.standard_normal((5, 2, 6, 6)), rng.integers(0, 4, 5)

        def forward(p, x):
            h = F.max_pool2d(torch.relu(F.conv2d(x, p["W1"], p["b1"], padding=1)), 2)  # (N, F, 3, 3)
            return torch.relu(h.reshape(5, -1) @ p["W2"] + p["b2"]) @ p["W3"] + p["b3"]

        _compare(model, forward, X, y)


def test_he_init_scale_and_initial_loss(rng):
    model = ThreeLayerConvNet((1, 8, 8), num_filters=32, filter_size=3, hidden_dim=100, num_classes=10)
    assert abs(model.params["W2"].std() - np.sqrt(2 / 512)) < 0.002  # He et al.: std sqrt(2 / fan_in)
    small = TwoLayerNet(64, 50, 10, weight_scale=1e-4)
    loss, _ = small.loss(rng.standard_normal((20, 64)), rng.integers(0, 10, 20))
    assert abs(loss - np.log(10)) < 1e-3


def test_conv_net_reaches_97_percent_on_digits():
    # recipe: 20 epochs of Adam; about 5 s with one BLAS thread on this machine
    result = train_scratch("convnet", load_digits_data())
    assert result.test_acc >= 0.97
    assert result.val_acc == max(result.epochs_val_acc)  # the Solver kept the best epoch's parameters


def test_two_layer_net_on_digits():
    assert train_scratch("twolayer", load_digits_data()).test_acc >= 0.95
