"""DCGAN (Radford, Metz & Chintala 2016) for small images, with the paper's architecture guidelines.

- no pooling: strided convolutions in the discriminator, fractional-strided (transposed) ones in the generator;
- batch norm in both, except the generator's output layer and the discriminator's input layer;
- no fully connected hidden layers (the generator's first layer maps z to a 4-D tensor; a transposed
  convolution from 1 x 1 is exactly that matrix multiply and reshape);
- ReLU in the generator with Tanh on its output (images in [-1, 1]); LeakyReLU (slope 0.2) in the discriminator;
- weights from N(0, 0.02) (``dcgan_init``); Adam with lr 2e-4 and beta1 0.5 (the task's defaults).

For H = W = 28 the generator goes 1 -> 7 -> 14 -> 28; for 32 (and 64: one more stage) 1 -> 4 -> 8 -> 16 -> 32.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import ConfigError


def _stages(size: int) -> tuple[int, int]:
    """(first spatial size, number of x2 stages) with first * 2**stages == size."""
    for first in (7, 4):
        n = math.log2(size / first) if size % first == 0 else -1
        if n >= 1 and n == int(n):
            return first, int(n)
    raise ConfigError(f"image size {size}: DCGAN here takes 28, 56 (7 * 2^k) or 32, 64, ... (4 * 2^k) pixels")


class Generator(nn.Module):
    def __init__(self, nz: int = 64, out_chans: int = 1, size: int = 28, width: int = 32):
        super().__init__()
        first, n = _stages(size)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, first, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, out_chans, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.nz, 1, 1))  # (B, C, H, W) in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, in_chans: int = 1, size: int = 28, width: int = 32):
        super().__init__()
        first, n = _stages(size)
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # no BN on the input
        ch = width
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, first, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (B,) logits of "real"


class DCGAN(nn.Module):
    """Generator and discriminator in one module (one checkpoint); ``forward(z)`` generates."""

    def __init__(self, nz: int = 64, chans: int = 1, size: int = 28, width: int = 32):
        super().__init__()
        self.nz = nz
        self.generator = Generator(nz, chans, size, width)
        self.discriminator = Discriminator(chans, size, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [0, 1] from z ~ N(0, I)."""
        p = next(self.parameters())
        z = torch.randn(n, self.nz, generator=generator, dtype=p.dtype).to(p.device)
        return (self.generator(z) + 1) / 2


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02), BN scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
