import math

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.nn.init import INIT_SCHEMES, activation_stats, init_weights, lsuv_init


def deep_mlp(act: type[nn.Module], depth: int = 10, width: int = 500) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def x():
    return torch.randn(200, 500, generator=torch.Generator().manual_seed(0))  # unit-gaussian data


def test_schemes_and_unknown_name():
    assert INIT_SCHEMES == ("default", "small", "xavier", "he", "lsuv")
    with pytest.raises(ConfigError, match="unknown init scheme 'glorot'"):
        init_weights(nn.Linear(2, 2), "glorot")
    with pytest.raises(ConfigError, match="data-dependent: call lsuv_init"):
        init_weights(nn.Linear(2, 2), "lsuv")


def test_default_leaves_torch_init():
    torch.manual_seed(0)
    m = nn.Linear(50, 40)
    before = (m.weight.clone(), m.bias.clone())
    assert init_weights(m, "default") is m
    assert torch.equal(m.weight, before[0]) and torch.equal(m.bias, before[1])


@pytest.mark.parametrize(
    "scheme,expected_std",
    [("small", 0.01), ("xavier", math.sqrt(2 / (400 + 300))), ("he", math.sqrt(2 / 400))],
)
def test_weight_std_and_zero_bias(scheme, expected_std):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(400, 300), nn.Conv2d(16, 25, 5))  # conv fan_in = 16*25 = 400
    init_weights(model, scheme)
    lin, conv = model
    assert lin.weight.std().item() == pytest.approx(expected_std, rel=0.03)
    assert torch.count_nonzero(lin.bias) == 0 and torch.count_nonzero(conv.bias) == 0
    conv_std = {"small": 0.01, "xavier": math.sqrt(2 / (400 + 25 * 25)), "he": math.sqrt(2 / 400)}[scheme]
    assert conv.weight.std().item() == pytest.approx(conv_std, rel=0.05)


def test_small_init_with_tanh_collapses(x):
    torch.manual_seed(1)
    stats = activation_stats(init_weights(deep_mlp(nn.Tanh), "small", std=0.01), x)
    stds = [s for _, _, s in stats]
    assert [n for n, _, _ in stats] == [str(i) for i in range(1, 20, 2)]  # the 10 Tanh modules
    # Each layer multiplies the std by about 0.01 * sqrt(500) = 0.22 ...
    for a, b in zip(stds[2:], stds[3:]):
        assert 0.15 < b / a < 0.3
    assert stds[-1] < 1e-5  # ... so the last layer's activations are all ~0


def test_xavier_with_tanh_stays_spread(x):
    torch.manual_seed(1)
    stds = [s for _, _, s in activation_stats(init_weights(deep_mlp(nn.Tanh), "xavier"), x)]
    assert all(0.15 < s < 1.0 for s in stds)
    assert stds[-1] > 0.15


def test_he_with_relu_keeps_scale_and_xavier_with_relu_halves_variance(x):
    torch.manual_seed(1)
    he = [s for _, _, s in activation_stats(init_weights(deep_mlp(nn.ReLU), "he"), x)]
    assert 0.5 < he[-1] / he[0] < 2.0
    torch.manual_seed(1)
    xav = [s for _, _, s in activation_stats(init_weights(deep_mlp(nn.ReLU), "xavier"), x)]
    ratio = (xav[-1] / xav[0]) ** (1 / 9)  # per-layer factor, expected 1/sqrt(2)
    assert ratio == pytest.approx(1 / math.sqrt(2), abs=0.06)
    assert xav[-1] < 0.1 < he[-1]


def test_activation_stats_values_and_modes():
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 3), relu, nn.Linear(3, 3), relu, nn.Dropout(0.5))
    model.train()
    x = torch.randn(8, 4)
    stats = activation_stats(model, x)
    assert [n for n, _, _ in stats] == ["1", "1#2"]  # shared module called twice
    h = torch.relu(model[2](torch.relu(model[0](x))))
    assert stats[1][1] == pytest.approx(h.mean().item(), abs=1e-6)
    assert stats[1][2] == pytest.approx(h.std().item(), abs=1e-6)
    assert model.training  # mode restored
    no_act = nn.Sequential(nn.Linear(4, 2))
    (name, mean, std), = activation_stats(no_act, x)
    assert name == "0" and mean == pytest.approx(no_act(x).mean().item(), abs=1e-6)


def test_lsuv_gives_every_layer_unit_output_variance():
    """Mishkin & Matas: orthonormal weights, then each layer (in forward order) scaled to output variance 1."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    x = 5 * torch.randn(64, 3, 16, 16) + 2  # badly scaled input: the first layer must absorb it
    report = lsuv_init(net, x, tol=0.02)
    assert [name for name, _ in report] == ["0", "2", "5"]
    outputs = {}
    hooks = [net[i].register_forward_hook(lambda m, i, o, k=i: outputs.__setitem__(k, o)) for i in (0, 2, 5)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for i in (0, 2, 5):
        assert outputs[i].var().item() == pytest.approx(1.0, abs=0.02)
        assert net[i].bias.abs().max() == 0  # biases start at zero
    # the directions are orthonormal: rescaling changes only the norm of the (out, in*k*k) rows
    w = net[2].weight.flatten(1)
    gram = w @ w.T
    assert torch.allclose(gram / gram[0, 0], torch.eye(32), atol=1e-4)
    assert net.training  # the mode is restored


def test_lsuv_without_layers_is_a_clear_error():
    with pytest.raises(ConfigError, match="no conv or linear layer"):
        lsuv_init(nn.Sequential(nn.ReLU()), torch.randn(2, 3))
