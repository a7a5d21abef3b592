"""Network in Network's class maps and GoogLeNet's Inception modules and auxiliary classifiers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models import create_model
from cnnlab.models.googlenet import Inception


def test_nin_global_average_of_class_maps_is_the_logits():
    model = create_model("nin", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = model.class_maps(x)
        logits = model(x)
    assert maps.shape == (2, 10, 8, 8)  # 32 -> 16 -> 8 with ceil-mode pooling
    assert torch.allclose(maps.mean(dim=(2, 3)), logits, atol=1e-5)


def test_nin_has_no_fully_connected_hidden_layers():
    model = create_model("nin", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [5, 1, 1, 5, 1, 1, 3, 1]
    assert [m for m in model.modules() if isinstance(m, nn.Linear)] == [model.head]


def test_inception_module_concatenates_four_branches():
    block = Inception(192, 64, 96, 128, 16, 32, 32)  # inception (3a)
    out = block(torch.randn(2, 192, 28, 28))
    assert out.shape == (2, 256, 28, 28) and block.out_channels == 256
    # the 1x1 reductions keep the 3x3 branch cheap: 192->96->128 instead of 192->128 directly
    assert block.branch2[0].conv.weight.shape == (96, 192, 1, 1)


def test_googlenet_aux_heads_in_training_only():
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=5, aux_logits=True)
    assert model.aux_loss_weight == 0.3
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert isinstance(out, tuple)
    logits, aux = out
    assert logits.shape == (2, 5) and len(aux) == 2 and all(a.shape == (2, 5) for a in aux)
    target = torch.tensor([1, 4])
    loss = F.cross_entropy(logits, target) + model.aux_loss_weight * sum(F.cross_entropy(a, target) for a in aux)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.aux1.fc2.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 5)  # a tensor, not a tuple
    model.reset_classifier(3)
    assert model.aux1.fc2.out_features == model.aux2.fc2.out_features == model.fc.out_features == 3


def test_googlenet_without_aux_heads_returns_logits_in_training():
    model = create_model("googlenet", num_classes=5).train()
    assert not hasattr(model, "aux1")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
