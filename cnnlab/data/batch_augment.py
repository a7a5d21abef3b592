"""Augmentation of a whole batch at once: every random draw is one tensor call, no per-image loop.

For data held in memory this replaces the usual per-image torchvision pipeline, which would
cost more Python time than a small CNN's forward pass. The ops follow torchvision's
definitions (random-resized crop, padded random crop, horizontal flip, colour jitter) plus
AlexNet's PCA lighting; they run in this order on float (B, C, H, W) images in [0, 1]:

    affine (scale / rotation / shear, one bilinear resampling, zero fill)
    -> padded crop -> horizontal flip -> brightness -> contrast -> saturation -> PCA lighting
    -> random erasing

Colour jitter's grey is ``cnnlab.data.images.to_grey`` (ITU-R 601-2 luma, as PIL; torchvision's
red weight is 0.0001 lower). Every random number comes from the
``generator`` argument, drawn on the CPU, so a batch's augmentation is reproducible from the
generator's seed on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnlab.data.augment import AugmentConfig
from cnnlab.data.images import to_grey
from cnnlab.errors import ConfigError

PCA_SAMPLE_IMAGES = 4096
ERASE_SCALE = (0.02, 0.4)  # Zhong et al. 2017: erased area as a fraction of the image
ERASE_RATIO = (0.3, 1 / 0.3)  # aspect ratio (height / width) of the erased rectangle
ERASE_ATTEMPTS = 10  # rectangles drawn per image until one fits (torchvision's RandomErasing: 10)


class BatchAugment:
    """Random augmentation of (B, C, H, W) float batches with the ops an AugmentConfig turns on."""

    def __init__(self, cfg: AugmentConfig, pca_basis: tuple[torch.Tensor, torch.Tensor] | None = None,
                 hflip_prob: float = 0.5):
        self.cfg = cfg
        self.hflip_prob = hflip_prob
        if cfg.pca_lighting and pca_basis is None:
            raise ConfigError("augment pca=... needs the training images' colour basis: "
                              "BatchAugment(cfg, pca_basis=pca_lighting_basis(train_images))")
        self.pca_basis = None if pca_basis is None else (pca_basis[0].float(), pca_basis[1].float())

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, C, H, W) float in [0, 1] -> augmented (B, C, H, W); ``x`` itself is not modified."""
        cfg = self.cfg
        if cfg.geometric:
            x = self.affine(x, generator)
        if cfg.crop_padding:
            x = self.pad_crop(x, generator)
        if cfg.hflip:
            x = self.hflip(x, generator)
        if cfg.color_jitter:
            x = self.color_jitter(x, generator)
        if cfg.pca_lighting:
            x = self.pca_lighting(x, generator)
        if cfg.erase:
            x = random_erasing(x, cfg.erase, generator)
        return x

    def hflip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Mirror each image left-right with probability ``hflip_prob``."""
        flip = (_rand(x.shape[0], g) < self.hflip_prob).nonzero().squeeze(1).to(x.device)  # (F,) images to mirror
        out = x.clone()  # index_copy_ of the flipped subset: 3-5x faster than torch.where over the batch
        return out.index_copy_(0, flip, x.index_select(0, flip).flip(3))

    def pad_crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Zero-pad P pixels per side, then crop H x W at a random offset: a shift by -P..P pixels."""
        b, c, h, w = x.shape
        p = self.cfg.crop_padding
        offset = torch.randint(0, 2 * p + 1, (2, b), generator=g).to(x.device)  # (2, B) top, left in the padded image
        xp = F.pad(x, (p, p, p, p)).contiguous()  # (B, C, Hp, Wp)
        hp, wp = h + 2 * p, w + 2 * p
        # every window start top * Wp + left is a step along one overlapping strided view; pick one per image
        windows = xp.as_strided((b, 2 * p * wp + 2 * p + 1, c, h, w), (c * hp * wp, 1, hp * wp, wp, 1))
        return windows[torch.arange(b, device=x.device), offset[0] * wp + offset[1]]  # (B, C, H, W)

    def affine(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random-resized crop, rotation and shear as one affine map per image, one bilinear resampling."""
        b, c, h, w = x.shape
        cfg = self.cfg
        lin = torch.eye(2, dtype=torch.float64).repeat(b, 1, 1)  # (B, 2, 2) output -> input, normalized coords
        shift = torch.zeros(b, 2, dtype=torch.float64)  # (B, 2)
        if cfg.rotation or cfg.shear:
            angle = torch.deg2rad((2 * _rand(b, g) - 1) * cfg.rotation)  # (B,)
            shear = torch.tan(torch.deg2rad((2 * _rand(b, g) - 1) * cfg.shear))
            cos, sin = torch.cos(angle), torch.sin(angle)
            rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2) pixels
            shr = torch.eye(2, dtype=torch.float64).repeat(b, 1, 1)
            shr[:, 0, 1] = shear
            to_px = torch.tensor([w / 2, h / 2], dtype=torch.float64)
            lin = (rot @ shr) * to_px.view(1, 1, 2) / to_px.view(1, 2, 1)  # diag(1/s) @ M @ diag(s)
        if cfg.scale is not None:
            lo, hi = cfg.scale
            area = lo + (hi - lo) * _rand(b, g)  # (B,) fraction of the image area
            log_r = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * _rand(b, g)
            ratio = torch.exp(log_r)  # width / height of the crop in pixels
            fw = torch.sqrt(area * ratio * h / w).clamp(max=1.0)  # crop width as a fraction of W
            fh = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
            centre = (2 * _rand((b, 2), g) - 1) * (1 - torch.stack([fw, fh], -1))  # (B, 2) the crop stays inside
            lin = torch.stack([fw, fh], -1).unsqueeze(-1) * lin  # diag(fw, fh) @ lin
            shift = centre
        theta = torch.cat([lin, shift.unsqueeze(-1)], -1).to(x.device, x.dtype)  # (B, 2, 3)
        return F.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)

    def color_jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Brightness, contrast, saturation factors each uniform in [1-S, 1+S] per image (torchvision formulas)."""
        b, c = x.shape[:2]
        s = self.cfg.color_jitter
        f = (1 - s + 2 * s * _rand((3, b), g, x.device)).to(x.dtype).view(3, b, 1, 1, 1)  # (3, B, 1, 1, 1)
        x = (x * f[0]).clamp_(0, 1)
        mean = to_grey(x).mean((1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        x = (f[1] * x + (1 - f[1]) * mean).clamp_(0, 1)
        if c == 3:
            x = (f[2] * x + (1 - f[2]) * to_grey(x)).clamp_(0, 1)
        return x

    def pca_lighting(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """AlexNet: add eigvecs @ (alpha * eigvals) to every pixel, alpha ~ N(0, sigma) per image and component."""
        eigvals, eigvecs = self.pca_basis
        b, c = x.shape[:2]
        if eigvals.shape[0] != c:
            raise ConfigError(f"PCA lighting basis has {eigvals.shape[0]} channels but the images have {c}")
        alpha = torch.randn(b, c, generator=g, dtype=torch.float32) * self.cfg.pca_lighting  # (B, C)
        offset = (alpha * eigvals) @ eigvecs.T  # (B, C): row b = eigvecs @ (alpha_b * eigvals)
        return x + offset.to(x.device, x.dtype).view(b, c, 1, 1)


def random_erasing(x: torch.Tensor, p: float, g: torch.Generator | None, scale: tuple[float, float] = ERASE_SCALE,
                   ratio: tuple[float, float] = ERASE_RATIO, attempts: int = ERASE_ATTEMPTS) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability ``p`` per image, replace a random rectangle by noise.

    The rectangle has area ``scale`` x H x W and aspect ratio (height / width) in ``ratio`` (log-uniform, as
    torchvision); of ``attempts`` draws per image the first that fits inside is used, and an image where none
    fits is left alone. The fill is uniform noise in [0, 1], the paper's random pixel values.
    (B, C, H, W) -> (B, C, H, W); ``x`` itself is not modified.
    """
    b, c, h, w = x.shape
    area = h * w * (scale[0] + (scale[1] - scale[0]) * _rand((b, attempts), g))  # (B, A) pixels
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand((b, attempts), g))  # (B, A) height / width
    eh = torch.sqrt(area * aspect).round().long()  # (B, A) rectangle height
    ew = torch.sqrt(area / aspect).round().long()
    fits = (eh < h) & (ew < w)  # (B, A)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # (B, 1) the first attempt that fits
    eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)  # (B,)
    erase = fits.any(1) & (_rand(b, g) < p)  # (B,)
    top = (_rand(b, g) * (h - eh + 1)).floor().long()  # (B,) uniform over the positions that fit
    left = (_rand(b, g) * (w - ew + 1)).floor().long()
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]).unsqueeze(1)  # (B, 1, H, W)
    noise = torch.rand(x.shape, generator=g, dtype=torch.float32)  # (B, C, H, W) fill
    return torch.where(mask.to(x.device), noise.to(x.device, x.dtype), x)


def pca_lighting_basis(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigvals (C,) descending, eigvecs (C, C) as columns) of the pixel colour covariance in [0, 1] units.

    Uses up to PCA_SAMPLE_IMAGES evenly spaced images (uint8 or float in [0, 1], (N, C, H, W)).
    """
    n, c = images.shape[:2]
    pick = torch.linspace(0, n - 1, min(n, PCA_SAMPLE_IMAGES)).round().long()
    x = images[pick].double()
    if images.dtype == torch.uint8:
        x = x / 255.0
    px = x.transpose(0, 1).reshape(c, -1)  # (C, pixels)
    px = px - px.mean(1, keepdim=True)
    cov = px @ px.T / max(px.shape[1] - 1, 1)  # (C, C)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    return eigvals.flip(0).clamp_min(0).float(), eigvecs.flip(1).float()


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, (B, C, h, w), align_corners=False), separably: about 10x faster on a CPU.

    grid[b, i, j] = theta[b, :, 0] * x_j + (theta[b, :, 1] * y_i + theta[b, :, 2]): one broadcast add.
    """
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1  # (W,) pixel centres in [-1, 1]
    ys = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1  # (H,)
    along_x = (theta[:, :, 0:1] * xs).transpose(1, 2)  # (B, W, 2)
    along_y = (theta[:, :, 1:2] * ys + theta[:, :, 2:3]).transpose(1, 2)  # (B, H, 2)
    return along_x.unsqueeze(1) + along_y.unsqueeze(2)  # (B, H, W, 2)


def _rand(shape, g: torch.Generator, device=None) -> torch.Tensor:
    """Uniform [0, 1) draws from ``g`` on the CPU (float64 for geometry), moved to ``device`` if given."""
    r = torch.rand(shape, generator=g, dtype=torch.float64)
    return r if device is None else r.to(device)
