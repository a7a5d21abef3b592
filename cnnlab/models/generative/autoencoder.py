"""A convolutional autoencoder and a variational autoencoder (Kingma & Welling 2014) for small images.

Both share one shape: the encoder halves the image twice with stride-2 3 x 3 convolutions (BN, ReLU), then a
linear layer gives the code; the decoder mirrors it with a linear layer and two stride-2 transposed
convolutions and ends in logits (a sigmoid gives pixels in [0, 1]). Any H, W divisible by 4 works.

The VAE's encoder gives (mu, log sigma^2) of q(z|x) = N(mu, diag sigma^2); z = mu + sigma * eps with
eps ~ N(0, I) (the reparameterization trick: the sample is a differentiable function of mu and sigma).
Its loss is the negative ELBO per image: the Bernoulli reconstruction term sum_pixels BCE(x_hat, x) plus
KL(q(z|x) || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError


def _check(in_chans: int, img_size: tuple[int, int]) -> tuple[int, int]:
    h, w = img_size
    if h % 4 or w % 4:
        raise ConfigError(f"image size {h}x{w}: the autoencoders need sides divisible by 4 (e.g. --img-size 28 or 32)")
    return h // 4, w // 4


class _Encoder(nn.Module):
    def __init__(self, in_chans: int, width: int, img_size: tuple[int, int], out: int):
        super().__init__()
        h, w = _check(in_chans, img_size)
        self.convs = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True))
        self.fc = nn.Linear(2 * width * h * w, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).flatten(1))


class _Decoder(nn.Module):
    def __init__(self, out_chans: int, width: int, img_size: tuple[int, int], latent: int):
        super().__init__()
        self.h, self.w = _check(out_chans, img_size)
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent, 2 * width * self.h * self.w), nn.ReLU(inplace=True))
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, out_chans, 4, stride=2, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.fc(z).view(-1, 2 * self.width, self.h, self.w))  # logits (B, C, H, W)


class ConvAutoencoder(nn.Module):
    """x -> code (B, latent) -> reconstruction logits (B, C, H, W)."""

    def __init__(self, in_chans: int = 1, img_size: tuple[int, int] = (28, 28), latent: int = 32, width: int = 32):
        super().__init__()
        self.latent = latent
        self.encoder = _Encoder(in_chans, width, tuple(img_size), latent)
        self.decoder = _Decoder(in_chans, width, tuple(img_size), latent)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ConvVAE(nn.Module):
    """x -> (mu, logvar) -> z (reparameterized) -> reconstruction logits; ``forward`` returns all four."""

    def __init__(self, in_chans: int = 1, img_size: tuple[int, int] = (28, 28), latent: int = 16, width: int = 32):
        super().__init__()
        self.latent = latent
        self.encoder = _Encoder(in_chans, width, tuple(img_size), 2 * latent)
        self.decoder = _Decoder(in_chans, width, tuple(img_size), latent)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return {"logits": self.decode(z), "mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [0, 1] decoded from z ~ N(0, I)."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent, generator=generator, dtype=p.dtype).to(p.device)
        return torch.sigmoid(self.decode(z))


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0):
    """(negative ELBO, reconstruction, KL), each the mean over the batch of a per-image sum (nats)."""
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return (recon + beta * kl).mean(), recon.mean(), kl.mean()
