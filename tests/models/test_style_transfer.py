"""Gatys' optimization on a tiny network, the extractor's layer handling, and the fast-style transformer net."""

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.style.extractors import FeatureExtractor, get_extractor
from cnnlab.models.style.gatys import StyleCost, gatys_transfer
from cnnlab.models.style.transformer import TransformerNet


def tiny_extractor(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
    return FeatureExtractor(net, lambda x: x - 0.5, name="tiny", content_layer="3", style_layers=["1", "3"],
                            content_weight=1.0, style_weight=1e5, tv_weight=0.0, aliases={"relu1": "1", "relu2": "3"})


def images(seed=0, size=24):
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(1, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    style = torch.stack([(xx % 6 < 3).float(), (yy % 4 < 2).float(), torch.full((size, size), 0.3)])[None]  # stripes
    return content, style


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_reduces_the_style_loss_in_a_few_steps(optimizer):
    content, style = images()
    ext = tiny_extractor()
    out, history = gatys_transfer(ext, content, style, steps=30, optimizer=optimizer, lr=0.05 if optimizer == "adam" else None)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert len(history) == 31 and history[0]["content"] == 0.0  # started from the content image
    assert history[-1]["style"] < 0.2 * history[0]["style"]
    assert history[-1]["loss"] < history[0]["loss"]
    again, _ = gatys_transfer(ext, content, style, steps=30, optimizer=optimizer, lr=0.05 if optimizer == "adam" else None)
    assert torch.equal(out, again)  # deterministic


def test_style_cost_matches_its_parts_and_is_zero_at_the_content_for_content():
    content, style = images()
    ext = tiny_extractor()
    cost = StyleCost.build(ext, content, content, tv_weight=2.0)
    parts = cost(content)
    assert parts["content"].item() == 0.0 and parts["style"].item() < 1e-12
    cost = StyleCost.build(ext, content, style, tv_weight=2.0)
    p = cost(torch.rand_like(content))
    assert p["loss"].item() == pytest.approx(p["content"].item() + 1e5 * p["style"].item() + 2.0 * p["tv"].item(), rel=1e-5)


def test_noise_init_and_bad_options():
    content, style = images()
    ext = tiny_extractor()
    _, history = gatys_transfer(ext, content, style, steps=2, init="noise", seed=7)
    assert history[0]["content"] > 0
    for kw, word in ((dict(optimizer="sgd"), "optimizer"), (dict(init="zeros"), "init")):
        with pytest.raises(ConfigError, match=word):
            gatys_transfer(ext, content, style, steps=1, **kw)


def test_extractor_layers_aliases_and_early_stop():
    ext = tiny_extractor()
    x = torch.rand(2, 3, 16, 16)
    feats = ext(x, ["relu1", "3"])
    assert feats["relu1"].shape == (2, 8, 16, 16) and feats["3"].shape == (2, 16, 8, 8)
    calls = []
    ext.net[4].register_forward_hook(lambda *a: calls.append(1))
    ext(x, ["relu1"])
    assert not calls  # the forward pass stopped after the last requested layer
    with pytest.raises(ConfigError, match="not in the tiny extractor"):
        ext(x, ["conv9_9"])
    with pytest.raises(ConfigError, match="--extractor"):
        get_extractor("no_such_net")


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 37, 50)])
def test_transformer_output_has_the_input_shape(shape):
    net = TransformerNet(width=0.25, residual_blocks=2)
    y = net(torch.rand(shape))
    assert y.shape == shape and y.min() >= 0 and y.max() <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_transformer_channels_follow_the_paper():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128] and convs[0].kernel_size == (9, 9)
    assert len(net.res) == 5 and convs[-1].out_channels == 3 and convs[-1].kernel_size == (9, 9)
