"""The transfer-learning example of the frozen-batch-norm fix, measured: frozen stages' BN in eval mode (what
``freeze_stages`` does) against BN left in train mode with momentum 0 (what cnnlab did before).

Source: ResNet-9 (width 8) trained on Fashion-MNIST (raw pixels in [0, 1]). Target: three real textures of
scikit-image (brick, grass, gravel), 28x28 crops, every stage frozen, only the classifier trained. In train mode a
frozen BN normalizes with the textures' batch statistics while training and with Fashion-MNIST's running
statistics when evaluating: the head is evaluated on features it never saw.
"""

import os

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab.engine.transfer as transfer
from cnnlab.engine.pipeline import train
from cnnlab.tasks.classify import ClassifyConfig

FMNIST = "/usr/share/datasets/fashion-mnist"
COMMON = dict(model="resnet9", model_kwargs={"width": 8}, img_size=28, normalize="none", quiet=True, tensorboard=False,
              threads=1, seed=0)


def texture_folder(root, n=60, crop=48, size=28, seed=0):
    """train/ and test/ folders of random crops of three scikit-image textures (resized to ``size``)."""
    import skimage.data as skd

    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name in ("brick", "grass", "gravel"):
            src = getattr(skd, name)()  # (512, 512) uint8
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                y, x = rng.integers(0, src.shape[0] - crop, 2)
                Image.fromarray(src[y:y + crop, x:x + crop]).resize((size, size)).save(d / f"{i}.png")
    return root


def _old_freeze(model, n):
    """cnnlab before the fix: no gradients, but batch norm left in train mode with momentum 0."""
    for stage in model.stages()[:n]:
        for p in stage.parameters():
            p.requires_grad_(False)
        for m in stage.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(f"{FMNIST}/train-images-idx3-ubyte.gz"), reason="dataset-fashion-mnist not installed")
def test_frozen_batch_norm_in_eval_mode_gains_15_points(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    source, _, s = train(ClassifyConfig(data="fashion-mnist", data_root=FMNIST, epochs=3, limit=2000, limit_test=500,
                                        batch_size=32, optimizer="adam", lr=3e-3, out=str(tmp_path / "source"), **COMMON))
    assert s["test_acc"] > 0.7
    textures = texture_folder(tmp_path / "textures")

    def transfer_acc(name):
        _, _, summary = train(ClassifyConfig(data=str(textures), epochs=8, batch_size=8, optimizer="adam", lr=1e-2,
                                             weights=str(source), freeze=4, out=str(tmp_path / name), **COMMON))
        assert summary["eval_split"] == "test"  # chosen on a validation split carved from train, measured on test
        return summary["test_acc"]

    fixed = transfer_acc("eval-mode-bn")
    monkeypatch.setattr(transfer, "freeze_stages", _old_freeze)
    old = transfer_acc("train-mode-bn")
    assert fixed > 0.55, fixed  # chance is 1/3
    assert fixed - old >= 0.15, (fixed, old)
