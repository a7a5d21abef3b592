"""Face alignment: a similarity transform (rotation, uniform scale, shift) that puts the 5 MTCNN
landmarks as close as possible (least squares, Umeyama 1991) to a canonical template, then a crop.

The template is the common 112x112 one (eyes at y = 51.6, nose at 71.7, mouth at 92.3), scaled to
the output size; the encoder then sees every face upright, the eyes in the same place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEMPLATE_112 = torch.tensor([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=torch.float64)


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The 2x3 matrix M (float64) of the similarity minimizing sum ||M [src_i; 1] - dst_i||^2 (Umeyama)."""
    src, dst = src.double(), dst.double()  # (N, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)  # (2, 2)
    u, sig, vt = torch.linalg.svd(cov)
    sign = torch.ones(2, dtype=torch.float64)
    if torch.det(u) * torch.det(vt) < 0:
        sign[-1] = -1  # a reflection is not a similarity: flip the weakest axis
    rot = u @ torch.diag(sign) @ vt
    scale = (sig * sign).sum() / s.pow(2).sum(1).mean()
    shift = mu_d - scale * rot @ mu_s
    return torch.cat([scale * rot, shift[:, None]], 1)  # (2, 3)


def align_face(image: torch.Tensor, landmarks, size: int = 112) -> torch.Tensor:
    """uint8 (C, H, W) image + 5 landmarks (x, y) -> uint8 (C, size, size) aligned face crop (bilinear)."""
    pts = torch.as_tensor(landmarks, dtype=torch.float64).reshape(5, 2)
    m = similarity_transform(pts, TEMPLATE_112 * (size / 112.0))  # image px -> output px
    inv = torch.linalg.inv(torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)]))[:2]  # output -> image
    c, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ inv.T  # (size, size, 2) source pixel coordinates
    norm = torch.stack([(grid[..., 0] + 0.5) / w * 2 - 1, (grid[..., 1] + 0.5) / h * 2 - 1], -1)
    out = F.grid_sample(image[None].float(), norm[None].float(), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)
