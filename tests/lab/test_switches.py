"""The builder switches the lab turns: defaults give the registered nets unchanged, each switch changes its layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.convnet import ChannelMaxout


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_convnet_defaults_unchanged():
    m = create_model("convnet_bn", num_classes=10, in_chans=3)
    assert sum(p.numel() for p in m.parameters()) == 288_746  # as before the switches existed
    assert _count(m, nn.BatchNorm2d) == 6 and _count(m, nn.ReLU) == 6 and _count(m, nn.Conv2d) == 6
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))
    assert [len(s) for s in m.stages()] == [2, 3, 3]
    assert list(m.state_dict())[:3] == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias"]


@pytest.mark.parametrize("act,kind", [("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("leaky_relu", nn.LeakyReLU),
                                      ("elu", nn.ELU), ("maxout", ChannelMaxout)])
def test_convnet_activation_switch(act, kind):
    m = create_model("convnet_bn", num_classes=10, in_chans=1, width=4, activation=act)
    assert _count(m, kind) == 6 and _count(m, nn.ReLU) == 0
    out = m(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    if act == "maxout":  # twice the filters, max over pairs: the map keeps the stage's width
        first = m.features[0][0]
        assert first.out_channels == 8 and m.features[0](torch.randn(1, 1, 8, 8)).shape[1] == 4


def test_convnet_norm_and_depth_switches():
    plain = create_model("convnet_bn", num_classes=10, in_chans=1, width=4, norm="none")
    assert _count(plain, nn.BatchNorm2d) == 0
    assert all(c.bias is not None for c in plain.modules() if isinstance(c, nn.Conv2d))  # no BN to absorb it
    lrn = create_model("convnet_bn", num_classes=10, in_chans=1, width=4, norm="lrn")
    assert _count(lrn, nn.LocalResponseNorm) == 6 and _count(lrn, nn.BatchNorm2d) == 0
    deep = create_model("convnet_bn", num_classes=10, in_chans=1, width=4, depth=4)
    assert _count(deep, nn.Conv2d) == 12 and [len(s) for s in deep.stages()] == [4, 5, 5]
    assert deep(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_convnet_bad_switch_is_a_model_error():
    from cnnlab.errors import ModelError

    with pytest.raises(ModelError, match="activation 'swishy'"):
        create_model("convnet_bn", activation="swishy")
    with pytest.raises(ModelError, match="norm"):
        create_model("convnet_bn", norm="group")


def test_alexnet_lrn_switch():
    on = create_model("alexnet", num_classes=10)
    off = create_model("alexnet", num_classes=10, lrn=False)
    assert _count(on, nn.LocalResponseNorm) == 2 and _count(off, nn.LocalResponseNorm) == 0
    assert sum(p.numel() for p in on.parameters()) == sum(p.numel() for p in off.parameters())  # LRN has no weights
