import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cnnlab.data.augment import (AUGMENT_PRESETS, AugmentConfig, BatchAugment, PCALighting, augment_to_spec,
                                 build_sample_transform, parse_augment, pca_lighting_basis)
from cnnlab.data.batch_augment import affine_grid
from cnnlab.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ramps(b=64, h=32, w=32):
    """(B, 2, H, W): channel 0 = column index, channel 1 = row index (in pixels)."""
    col = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    row = torch.arange(h, dtype=torch.float32).view(h, 1).expand(h, w)
    return torch.stack([col, row]).expand(b, 2, h, w).contiguous()


def slopes(out, h, w):
    """Per image: d/dcol and d/drow of each channel in the central region (least-squares plane fit)."""
    c = out[:, :, h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    dcol = (c[..., 1:] - c[..., :-1]).mean((-1, -2))  # (B, C)
    drow = (c[..., 1:, :] - c[..., :-1, :]).mean((-1, -2))
    return dcol, drow


def test_parse_and_spec_round_trip():
    assert parse_augment("none") == AugmentConfig() and not AugmentConfig().enabled
    cfg = parse_augment("hflip,crop=4,scale=0.35-1,jitter=0.4,pca=0.1,rotate=10,shear=5")
    assert cfg == AugmentConfig(True, 4, (0.35, 1.0), 0.4, 0.1, 10.0, 5.0) and cfg.enabled
    assert parse_augment("flip-crop,jitter=0.2") == AugmentConfig(hflip=True, crop_padding=4, color_jitter=0.2)
    for c in [cfg, *AUGMENT_PRESETS.values(), AugmentConfig(scale=(0.123456789, 0.9))]:
        assert parse_augment(augment_to_spec(c)) == c
    assert augment_to_spec(AUGMENT_PRESETS["flip-crop"]) == "hflip,crop=4"
    assert {"none", "flip-crop", "standard", "alexnet"} <= set(AUGMENT_PRESETS)


@pytest.mark.parametrize("spec,msg", [("crop=-1", "crop=-1 must be"), ("scale=0.5", "must look like scale=0.35-1"),
                                      ("scale=0-1", "needs 0 < LO <= HI <= 1"), ("jitter=2", r"must be in \[0, 1\]"),
                                      ("rotate=x", "is not a number"), ("blur", "unknown item 'blur'"),
                                      ("hflip,standard", "unknown item 'standard'")])
def test_parse_errors(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_augment(spec)


def test_hflip():
    x = torch.rand(16, 3, 5, 7)
    assert torch.equal(BatchAugment(parse_augment("hflip"), hflip_prob=1.0)(x, gen()), torch.flip(x, [3]))
    assert torch.equal(BatchAugment(parse_augment("hflip"), hflip_prob=0.0)(x, gen()), x)
    out = BatchAugment(parse_augment("hflip"))(x, gen())
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped ^ kept).all() and 0 < flipped.sum() < 16


def _shift(img, dy, dx):
    """img (C, H, W) moved down dy and right dx pixels, zero fill."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_pad_crop_is_a_zero_filled_shift():
    x = torch.rand(32, 2, 9, 11) + 0.1  # no zeros inside the images
    p = 3
    out = BatchAugment(parse_augment(f"crop={p}"))(x, gen(1))
    assert out.shape == x.shape
    shifts = set()
    for o, i in zip(out, x):
        match = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1) if torch.equal(o, _shift(i, dy, dx))]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 10  # offsets vary from image to image


def test_affine_grid_matches_torch():
    theta = torch.randn(5, 2, 3)
    torch.testing.assert_close(affine_grid(theta, 7, 9), F.affine_grid(theta, [5, 1, 7, 9], align_corners=False))


def test_random_resized_crop_geometry():
    h = w = 32
    out = BatchAugment(AugmentConfig(scale=(0.25, 0.5)))(ramps(h=h, w=w), gen(2))
    dcol, drow = slopes(out, h, w)
    fw, fh = dcol[:, 0], drow[:, 1]  # a crop of fraction f of the width is magnified by 1 / f
    assert drow[:, 0].abs().max() < 1e-4 and dcol[:, 1].abs().max() < 1e-4  # no rotation
    area, ratio = fw * fh, fw / fh
    assert (area > 0.25 - 1e-4).all() and (area < 0.5 + 1e-4).all() and area.std() > 0.03
    assert (ratio > 3 / 4 - 1e-4).all() and (ratio < 4 / 3 + 1e-4).all()
    # the crop lies inside the image: sampled positions stay within the pixel centres (no zero fill)
    assert out.amin() >= -1e-4 and out[:, 0].amax() <= w - 1 + 1e-4


def test_rotation_and_shear_angles():
    h = w = 32
    out = BatchAugment(AugmentConfig(rotation=20))(ramps(h=h, w=w), gen(3))
    dcol, drow = slopes(out, h, w)
    angle = torch.rad2deg(torch.atan2(drow[:, 0], dcol[:, 0]))  # direction of the column ramp's gradient
    assert angle.abs().max() <= 20.5 and angle.abs().max() > 10 and (angle > 0).any() and (angle < 0).any()
    torch.testing.assert_close(dcol[:, 0] ** 2 + drow[:, 0] ** 2, torch.ones(64), atol=1e-3, rtol=0)  # a rotation
    out = BatchAugment(AugmentConfig(shear=15))(ramps(h=h, w=w), gen(4))
    dcol, drow = slopes(out, h, w)
    # rows are unchanged by a horizontal shear (away from the left and right edges, which fill with zeros)
    torch.testing.assert_close(out[:, 1, :, 8:24], ramps(h=h, w=w)[:, 1, :, 8:24])
    shear = torch.rad2deg(torch.atan(drow[:, 0]))  # column ramp tilts by tan(shear) per row
    assert shear.abs().max() <= 15.1 and shear.abs().max() > 8 and torch.allclose(dcol[:, 0], torch.ones(64), atol=1e-4)


def test_color_jitter_factors():
    x = torch.full((200, 1, 4, 4), 0.4)
    x[:, :, :2] = 0.6  # half the image 0.6, half 0.4: mean 0.5, spread 0.1
    out = BatchAugment(AugmentConfig(color_jitter=0.4))(x, gen(5))
    mean = out.mean((1, 2, 3))
    spread = (out[:, 0, :2].mean((1, 2)) - out[:, 0, 2:].mean((1, 2))) / 2
    brightness, contrast = mean / 0.5, spread / (0.1 * mean / 0.5)
    for f in (brightness, contrast):
        assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5 and f.min() < 0.7 and f.max() > 1.3
    grey_rgb = torch.rand(8, 1, 5, 5).expand(8, 3, 5, 5)
    out = BatchAugment(AugmentConfig(color_jitter=0.5))(grey_rgb, gen())
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(out[:, 1], out[:, 2], atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1
    colour = BatchAugment(AugmentConfig(color_jitter=0.5))(torch.rand(8, 3, 5, 5), gen())
    assert colour.min() >= 0 and colour.max() <= 1


def test_pca_lighting_basis_matches_numpy():
    images = torch.randint(0, 256, (20, 3, 6, 6), dtype=torch.uint8)
    images[:, 1] = images[:, 0] // 2 + images[:, 1] // 2  # correlated channels
    eigvals, eigvecs = pca_lighting_basis(images)
    px = images.permute(1, 0, 2, 3).reshape(3, -1).double().numpy() / 255
    cov = np.cov(px)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[::-1], eigvals, rtol=1e-5)
    assert (eigvals[:-1] >= eigvals[1:]).all()
    np.testing.assert_allclose(cov @ eigvecs.double().numpy(), eigvecs.double().numpy() * eigvals.double().numpy(), atol=1e-6)


def test_pca_lighting_adds_eigvec_times_alpha_eigval():
    eigvals = torch.tensor([0.2175, 0.0188, 0.0045])  # AlexNet-style ImageNet values
    eigvecs = torch.linalg.qr(torch.randn(3, 3, generator=gen(9)))[0]
    x = torch.rand(10, 3, 4, 5)
    out = BatchAugment(AugmentConfig(pca_lighting=0.1), pca_basis=(eigvals, eigvecs))(x, gen(6))
    offset = out - x  # (B, C, H, W): the same RGB offset at every pixel
    per_image = offset[:, :, 0, 0]
    torch.testing.assert_close(offset, per_image.view(10, 3, 1, 1).expand_as(offset))
    alpha = torch.randn(10, 3, generator=gen(6)) * 0.1  # the only draw: alpha ~ N(0, 0.1)
    expect = torch.stack([eigvecs @ (a * eigvals) for a in alpha])
    torch.testing.assert_close(per_image, expect)
    with pytest.raises(ConfigError, match="needs the training images' colour basis"):
        BatchAugment(AugmentConfig(pca_lighting=0.1))


def test_batch_augment_is_reproducible_and_leaves_input_alone():
    x = torch.rand(16, 3, 12, 12)
    before = x.clone()
    aug = BatchAugment(parse_augment("standard,crop=2,rotate=10,shear=5,pca=0.1"), pca_basis=pca_lighting_basis(x))
    a, b, c = aug(x, gen(1)), aug(x, gen(1)), aug(x, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(x, before) and a.shape == x.shape


def test_per_sample_transforms():
    img = torch.randint(0, 256, (3, 10, 12), dtype=torch.uint8)
    plain = build_sample_transform(AugmentConfig(), (10, 12), train=False)
    torch.testing.assert_close(plain(img), img.float() / 255)
    t = build_sample_transform(parse_augment("standard,crop=2,rotate=10,shear=5"), (10, 12), train=True)
    assert isinstance(t, v2.Compose) and t(img).shape == (3, 10, 12) and t(img).dtype == torch.float32
    names = [type(s).__name__ for s in t.transforms]
    assert names == ["ToDtype", "RandomResizedCrop", "RandomAffine", "RandomCrop", "RandomHorizontalFlip", "ColorJitter"]
    flip = build_sample_transform(parse_augment("hflip"), (10, 12), train=False)
    torch.testing.assert_close(flip(img), img.float() / 255)  # no augmentation at evaluation
    with pytest.raises(ConfigError, match="colour basis"):
        build_sample_transform(parse_augment("pca=0.1"), (10, 12), train=True)


def test_pca_lighting_transform():
    eigvals, eigvecs = torch.tensor([0.04, 0.01, 0.0]), torch.eye(3)
    t = PCALighting(0.5, eigvals, eigvecs)
    x = torch.full((3, 4, 4), 0.5)
    torch.manual_seed(0)
    out = t(x)
    torch.manual_seed(0)
    alpha = torch.randn(3) * 0.5
    torch.testing.assert_close(out - x, (alpha * eigvals).view(3, 1, 1).expand(3, 4, 4))
    u8 = torch.full((3, 2, 2), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    out8 = t(u8)
    assert out8.dtype == torch.uint8
    assert torch.equal(out8[:, 0, 0], (128 + alpha * eigvals * 255).round().clamp(0, 255).to(torch.uint8))
    assert math.isclose(float(out[2, 0, 0]), 0.5)  # zero eigenvalue -> no change along it


def _erased_boxes(x, out):
    """Per image: (rows, cols) extent of the changed pixels, or None where nothing changed."""
    boxes = []
    for changed in (out != x).any(1):  # (H, W)
        rows, cols = changed.any(1).nonzero().squeeze(1), changed.any(0).nonzero().squeeze(1)
        boxes.append(None if len(rows) == 0 else (changed, rows, cols))
    return boxes


def test_random_erasing_paints_one_rectangle_of_the_papers_size():
    """Zhong et al. 2017: with probability p, a rectangle of 2-40% of the area, aspect 0.3-3.3, random fill."""
    from cnnlab.data.batch_augment import ERASE_RATIO, ERASE_SCALE, random_erasing

    x = torch.full((400, 2, 28, 28), -1.0)  # outside [0, 1], so every painted pixel differs from the input
    out = random_erasing(x, 0.5, gen())
    boxes = _erased_boxes(x, out)
    erased = [b for b in boxes if b is not None]
    assert 160 <= len(erased) <= 240  # p = 0.5 of 400 (about 5 sigma)
    for changed, rows, cols in erased:
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # contiguous extent
        assert int(changed.sum()) == h * w  # the whole rectangle, nothing else
        assert ERASE_SCALE[0] * 784 - 2 * 28 <= h * w <= ERASE_SCALE[1] * 784 + 2 * 28  # rounding of each side
        assert ERASE_RATIO[0] * 0.75 <= h / w <= ERASE_RATIO[1] / 0.75
    painted = out[out != x]
    assert painted.min() >= 0 and painted.max() < 1 and abs(painted.mean().item() - 0.5) < 0.02  # uniform noise
    assert torch.equal(out[out == x], x[out == x])
    assert torch.all(x == -1.0)  # the input is not modified
    assert torch.equal(random_erasing(x, 0.5, gen()), out)  # reproducible from the generator
    assert torch.equal(random_erasing(x, 0.0, gen()), x)
    assert sum(b is not None for b in _erased_boxes(x, random_erasing(x, 1.0, gen()))) >= 396  # p = 1: (nearly) all fit


def test_random_erasing_in_the_spec_the_batch_and_the_per_sample_paths():
    cfg = parse_augment("hflip,erase=0.5")
    assert cfg == AugmentConfig(hflip=True, erase=0.5) and augment_to_spec(cfg) == "hflip,erase=0.5"
    with pytest.raises(ConfigError, match=r"erase=1.5 must be in \[0, 1\]"):
        parse_augment("erase=1.5")
    x = torch.zeros(64, 1, 16, 16)
    out = BatchAugment(parse_augment("erase=1"))(x, gen())
    assert (out != 0).flatten(1).any(1).float().mean() > 0.9
    t = build_sample_transform(parse_augment("erase=1"), (16, 16), train=True)
    assert any(isinstance(s, type(t.transforms[-1])) and s.p == 1.0 for s in t.transforms)
    torch.manual_seed(0)
    img = t(torch.zeros(1, 16, 16, dtype=torch.uint8))  # (C, H, W) uint8 -> float in [0, 1], erased
    assert img.shape == (1, 16, 16) and img.dtype == torch.float32 and 0 < (img != 0).float().mean() <= 0.45


def test_imports_go_one_way_and_the_old_names_still_work():
    import subprocess
    import sys

    code = ("import sys, cnnlab.data.augment as a; "
            "assert not {'cnnlab.data.batch_augment', 'cnnlab.data.sample_transforms', 'torch'} & set(sys.modules); "
            "from cnnlab.data.augment import BatchAugment, build_sample_transform, pca_lighting_basis, PCALighting; "
            "import cnnlab.data.batch_augment as b, cnnlab.data.sample_transforms as s; "
            "assert BatchAugment is b.BatchAugment and b.AugmentConfig is a.AugmentConfig is s.AugmentConfig; "
            "assert build_sample_transform is s.build_sample_transform and pca_lighting_basis is b.pca_lighting_basis")
    subprocess.run([sys.executable, "-c", code], check=True)
    import cnnlab.data.augment as augment

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        augment.nope
