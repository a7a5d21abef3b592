"""Segmentation models: per-pixel scores of the input's size, gradients everywhere, the upsampling family."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.models import create_model
from cnnlab.models.segmentation import UPSAMPLES, create_segmenter
from cnnlab.models.segmentation.base import learned_upsample, pick_stages
from cnnlab.models.segmentation.sliding_window import SlidingWindowSegmenter

K = 4


def backbone(name):
    return create_model(name, num_classes=1)


CASES = [("unet", "mobilenet_v2", {}), ("unet", "resnet20", {}), ("unet", None, {}), ("fcn8s", "mobilenet_v2", {}),
         ("fcn16s", "mobilenet_v2", {}), ("fcn32s", "mobilenet_v2", {}), ("fcn8s", "resnet20", {}),
         ("full_res", None, {"depth": 3, "width": 8}), ("sliding_window", None, {"patch": 16, "stride": 4}),
         *[("encdec", None, {"upsample": u}) for u in UPSAMPLES]]


@pytest.mark.parametrize("arch,bb,kw", CASES, ids=[f"{a}-{b}-{k.get('upsample', '')}" for a, b, k in CASES])
def test_scores_every_pixel_and_every_parameter_learns(arch, bb, kw):
    torch.manual_seed(0)
    model = create_segmenter(arch, K, backbone(bb) if bb else None, **kw)
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, K, 64, 64) and torch.isfinite(y).all()
    y.square().mean().backward()
    unused = {"backbone.classifier.1.weight", "backbone.classifier.1.bias", "backbone.fc.weight", "backbone.fc.bias",
              "backbone.head.weight", "backbone.head.bias"}  # the backbone's own classifier is not used
    missing = [n for n, p in model.named_parameters() if n not in unused and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, missing
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_fcn_reads_the_strides_8_16_32_of_mobilenet_v2():
    b = backbone("mobilenet_v2")
    assert [r for _, _, r in pick_stages(b)] == [2, 4, 8, 16, 32]
    m = create_segmenter("fcn8s", K, b)
    assert m.reductions == [8, 16, 32] and create_segmenter("fcn32s", K, backbone("mobilenet_v2")).reductions == [32]


def test_learned_upsampling_starts_as_bilinear_interpolation():
    x = torch.randn(1, 3, 6, 6)
    up = learned_upsample(3, 4)
    ours = up(x)
    ref = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert ours.shape == (1, 3, 24, 24)
    assert torch.allclose(ours[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-5)  # equal away from the borders


def test_max_unpool_decoder_puts_values_where_the_maxima_were():
    model = create_segmenter("encdec", K, upsample="max_unpool", widths=(4, 8))
    x = torch.randn(1, 3, 16, 16)
    model(x)  # the pools remember their switches
    pool = model.pools[0]
    pooled = F.max_pool2d(model.encoder[0](x), 2)  # (1, 4, 8, 8)
    pooled = pooled.detach()
    up = model.ups[-1](pooled).detach()  # the decoder level that mirrors the first pool: (1, 4, 16, 16)
    assert up.shape == (1, 4, 16, 16) and int((up != 0).sum()) <= pooled.numel()
    assert torch.equal(up.flatten(2).gather(2, pool.switches.flatten(2)), pooled.flatten(2))
    assert float(up.abs().sum()) == pytest.approx(float(pooled.abs().sum()), rel=1e-6)  # zeros everywhere else


def test_sliding_window_at_stride_1_classifies_the_patch_around_each_pixel():
    torch.manual_seed(0)
    model = SlidingWindowSegmenter(K, patch=8, stride=1, width=4).eval()
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        y = model(x)  # (1, K, 12, 12)
        xp = F.pad(x, (4, 4, 4, 4))
        for r, c in [(0, 0), (5, 7), (11, 11)]:
            patch = xp[:, :, r:r + 8, c:c + 8]  # centred on pixel (r, c)
            assert torch.allclose(y[0, :, r, c], model.classifier(patch)[0], atol=1e-5)
    scores, labels = model.train().sample_logits(x, torch.arange(144).reshape(1, 12, 12) % K)
    assert scores.shape == (model.samples, K) and labels.shape == (model.samples,)


def test_sliding_window_stride_blocks_take_their_centre_patch():
    model = SlidingWindowSegmenter(K, patch=8, stride=4, width=4).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        y = model(x)
        xp = F.pad(x, (4, 4, 4, 4))
        centre = model.classifier(xp[:, :, 2:10, 6:14])  # the block rows 0-3, cols 4-7 is centred on (2, 6)
    assert torch.allclose(y[0, :, 0:4, 4:8], centre[0, :, None, None].expand(K, 4, 4), atol=1e-5)


def test_unknown_architecture_and_missing_backbone():
    with pytest.raises(ValueError, match="unknown segmentation model"):
        create_segmenter("deeplab", K)
    with pytest.raises(ValueError, match="needs a backbone"):
        create_segmenter("fcn8s", K)
