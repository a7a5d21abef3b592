"""FFT convolution: conv2d (stride 1) computed as a product in the frequency domain.

Direct convolution costs H*W*K*K multiply-adds per channel pair; via the FFT it costs
O(H*W*log(HW)) whatever K is, so the FFT wins for large kernels. ``benchmarks/fft_conv.py``
measures from which kernel size it wins on your machine (see docs/building_blocks.md).

Deep-learning "convolution" is cross-correlation, y[i] = sum_u x[i+u] w[u]; in the frequency
domain that is X * conj(W) (correlation theorem), so no kernel flip is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ShapeError


def _fast_len(n: int) -> int:
    """Smallest even m >= n whose only prime factors are 2, 3 and 5 (FFT sizes that run fast)."""
    m = n + n % 2
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def _pad_pair(padding: int | tuple[int, int] | str, kh: int, kw: int) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        if kh % 2 == 0 or kw % 2 == 0:
            raise ShapeError(f"padding='same' needs an odd kernel, got {kh}x{kw}; pad explicitly instead")
        return kh // 2, kw // 2
    if isinstance(padding, int):
        return padding, padding
    return tuple(padding)


def fft_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int | tuple[int, int] | str = 0,
) -> torch.Tensor:
    """Same result as ``F.conv2d(x, weight, bias, stride=1, padding=padding)``, computed with FFTs.

    x (B, C_in, H, W), weight (C_out, C_in, KH, KW) -> (B, C_out, H + 2ph - KH + 1, W + 2pw - KW + 1).
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ShapeError(f"fft_conv2d wants x (B, C, H, W) and weight (C_out, C_in, KH, KW), got {tuple(x.shape)} and {tuple(weight.shape)}")
    c_out, c_in, kh, kw = weight.shape
    if x.shape[1] != c_in:
        raise ShapeError(f"fft_conv2d: input has {x.shape[1]} channels but the weight expects {c_in}")
    ph, pw = _pad_pair(padding, kh, kw)
    x = F.pad(x, (pw, pw, ph, ph))  # (B, C_in, Hp, Wp)
    hp, wp = x.shape[-2:]
    out_h, out_w = hp - kh + 1, wp - kw + 1
    if out_h < 1 or out_w < 1:
        raise ShapeError(f"kernel {kh}x{kw} is larger than the padded input {hp}x{wp}")
    # Circular correlation of length n >= Hp is exact at the positions 0..Hp-KH (no wrap-around).
    fh, fw = _fast_len(hp), _fast_len(wp)
    b = x.shape[0]
    xf = torch.fft.rfft2(x, s=(fh, fw))  # (B, C_in, fh, fw//2+1) complex
    wf = torch.fft.rfft2(weight, s=(fh, fw))  # (C_out, C_in, fh, fw//2+1)
    # At every frequency the channel sum is a (B x C_in) @ (C_in x C_out) matrix product:
    # one batched matmul over the frequencies (faster on CPU than einsum's strided layout).
    xf = xf.flatten(2).permute(2, 0, 1).contiguous()  # (F, B, C_in)
    wf = wf.conj().flatten(2).permute(2, 1, 0).contiguous()  # (F, C_in, C_out)
    yf = torch.bmm(xf, wf).permute(1, 2, 0).reshape(b, c_out, fh, fw // 2 + 1)  # (B, C_out, fh, fw//2+1)
    y = torch.fft.irfft2(yf, s=(fh, fw))[..., :out_h, :out_w]  # (B, C_out, out_h, out_w)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()


class FFTConv2d(nn.Conv2d):
    """A stride-1, dilation-1, groups-1 ``nn.Conv2d`` whose forward uses ``fft_conv2d``.

    Same parameters and initialisation as ``nn.Conv2d``, so weights load either way.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft_conv2d(x, self.weight, self.bias, self.padding if isinstance(self.padding, str) else tuple(self.padding))
