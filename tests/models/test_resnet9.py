"""ResNet-9's pool-first variant (airbench's conv-pool-bn-relu order) against Page's conv-bn-relu-pool."""

import torch

from cnnlab.models.registry import create_model


def _page_key(key: str) -> str:
    """A pool-first parameter name -> the same parameter's name in Page's layout."""
    parts = key.split(".")
    if parts[0] in ("layer1", "layer2", "layer3") and parts[1] == "0" and parts[2] == "2":
        parts[2] = "1"  # batch norm: after the pool in pool-first, right after the conv in Page's block
    if parts[0] in ("layer1", "layer3") and parts[1] == "1":
        parts[1] = "2"  # the residual follows the block (and, in Page's layout, its pool)
    return ".".join(parts)


def test_pool_first_equals_page_order_in_eval_mode_with_positive_bn_scales():
    """Max-pool commutes with ReLU and with an increasing per-channel affine map, so with BN in eval mode
    (fixed statistics) and positive scales the two orders compute the same function from the same weights."""
    torch.manual_seed(0)
    page = create_model("resnet9", num_classes=10, in_chans=1, width=4)
    pool_first = create_model("resnet9", num_classes=10, in_chans=1, width=4, pool_first=True)
    for m in page.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    state = page.state_dict()
    pf_keys = pool_first.state_dict().keys()
    assert {_page_key(k) for k in pf_keys} == set(state)  # the same parameters, only placed differently
    pool_first.load_state_dict({k: state[_page_key(k)] for k in pf_keys})
    page.eval(), pool_first.eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(pool_first(x), page(x))
    # in training mode batch norm sees the pooled statistics: a different (but equally trainable) net
    page.train(), pool_first.train()
    assert not torch.allclose(pool_first(x), page(x))


def test_pool_first_trains_on_any_size_down_to_8():
    torch.manual_seed(0)
    model = create_model("resnet9", num_classes=10, in_chans=1, width=4, pool_first=True)
    for size in (8, 20, 28):
        out = model(torch.randn(2, 1, size, size))
        assert out.shape == (2, 10)
        out.sum().backward()
