"""Per-image augmentation with torchvision.transforms.v2, for data decoded lazily from disk.

The same AugmentConfig as the whole-batch path, built from torchvision's own transforms
(RandomResizedCrop, RandomAffine, RandomCrop with padding, RandomHorizontalFlip,
ColorJitter) plus AlexNet's PCA lighting, which torchvision does not ship.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnlab.data.augment import AugmentConfig
from cnnlab.data.batch_augment import random_erasing
from cnnlab.errors import ConfigError


class PCALighting(v2.Transform):
    """AlexNet's lighting noise: add eigvecs @ (alpha * eigvals), alpha ~ N(0, std), to every pixel.

    eigvals (C,) and eigvecs (C, C) (columns) are those of the training pixels' colour covariance
    in [0, 1] units (see pca_lighting_basis). Float images get the offset as is; uint8 images are
    rounded and clipped back to 0..255.
    """

    def __init__(self, std: float, eigvals: torch.Tensor, eigvecs: torch.Tensor):
        super().__init__()
        self.std = float(std)
        self.eigvals = eigvals.float()
        self.eigvecs = eigvecs.float()

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        alpha = torch.randn(self.eigvals.shape[0]) * self.std  # (C,)
        return {"offset": self.eigvecs @ (alpha * self.eigvals)}  # (C,)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.ndim < 3:
            return inpt
        offset = params["offset"]
        if inpt.shape[-3] != offset.shape[0]:
            raise ConfigError(f"PCA lighting basis has {offset.shape[0]} channels but the image has {inpt.shape[-3]}")
        offset = offset.to(inpt.device).view(-1, 1, 1)
        if inpt.is_floating_point():
            out = inpt + offset.to(inpt.dtype)
        else:
            out = (inpt.float() + offset * 255).round_().clamp_(0, 255).to(inpt.dtype)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class RandomErase(v2.Transform):
    """Random erasing (Zhong et al. 2017) of one float image in [0, 1]: the whole-batch op on a batch of one."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.ndim != 3 or not inpt.is_floating_point():
            return inpt
        out = random_erasing(inpt.unsqueeze(0), self.p, None).squeeze(0)  # torch's global RNG, seeded per image
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def build_sample_transform(cfg: AugmentConfig, img_size: tuple[int, int], train: bool,
                           pca_basis: tuple[torch.Tensor, torch.Tensor] | None = None) -> v2.Compose:
    """uint8 (C, H, W) at ``img_size`` -> float32 in [0, 1], randomly augmented when ``train`` (no normalization)."""
    steps: list[v2.Transform] = [v2.ToDtype(torch.float32, scale=True)]
    if train:
        size = list(img_size)
        if cfg.scale is not None:
            steps.append(v2.RandomResizedCrop(size, scale=cfg.scale, antialias=True))
        if cfg.rotation or cfg.shear:
            steps.append(v2.RandomAffine(degrees=cfg.rotation, shear=[-cfg.shear, cfg.shear] if cfg.shear else None,
                                         interpolation=v2.InterpolationMode.BILINEAR))
        if cfg.crop_padding:
            steps.append(v2.RandomCrop(size, padding=cfg.crop_padding))
        if cfg.hflip:
            steps.append(v2.RandomHorizontalFlip())
        if cfg.color_jitter:
            j = cfg.color_jitter
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
        if cfg.pca_lighting:
            if pca_basis is None:
                raise ConfigError("augment pca=... needs the training images' colour basis (pca_basis=pca_lighting_basis(...))")
            steps.append(PCALighting(cfg.pca_lighting, *pca_basis))
        if cfg.erase:
            steps.append(RandomErase(cfg.erase))
    return v2.Compose(steps)
