"""Convolution (the course's cross-correlation) three ways, each with its backward pass.

* naive: the four nested loops of the definition; slow, obviously right.
* im2col: copy every receptive field into a row of a matrix, then one matrix multiply
  (what Caffe and cuDNN's GEMM path do); col2im scatters the gradient back.
* FFT: convolution theorem, pointwise products of spectra summed over input channels;
  the stride is applied by subsampling (forward) and zero-dilating dout (backward).

Shapes: x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, Ho, Wo) with
Ho = (H + 2 pad - HH) // stride + 1, as torch.nn.functional.conv2d.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.errors import ShapeError


def _out_size(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> tuple[int, int]:
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"conv: want x (N, C, H, W) and w (F, C, HH, WW) with equal C; got {x.shape} and {w.shape}")
    if stride < 1 or pad < 0:
        raise ShapeError(f"conv: stride must be >= 1 and pad >= 0, got stride={stride}, pad={pad}")
    hp, wp = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
    if w.shape[2] > hp or w.shape[3] > wp:
        raise ShapeError(f"conv: kernel {w.shape[2:]} is larger than the padded input {(hp, wp)}")
    return (hp - w.shape[2]) // stride + 1, (wp - w.shape[3]) // stride + 1


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x


def _unpad(xpad: np.ndarray, pad: int) -> np.ndarray:
    return xpad[:, :, pad:-pad, pad:-pad] if pad else xpad


# ---------------------------------------------------------------- naive loops
def conv_forward_naive(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution by its definition: one dot product per (image, filter, output pixel)."""
    ho, wo = _out_size(x, w, stride, pad)
    xpad = _pad(x, pad)
    n_img, n_f, hh, ww = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    out = np.zeros((n_img, n_f, ho, wo), dtype=np.result_type(x, w))
    for n in range(n_img):
        for f in range(n_f):
            for i in range(ho):
                for j in range(wo):
                    field = xpad[n, :, i * stride : i * stride + hh, j * stride : j * stride + ww]  # (C, HH, WW)
                    out[n, f, i, j] = np.sum(field * w[f]) + b[f]
    return out, (x, w, b, stride, pad)


def conv_backward_naive(dout, cache):
    """Each output pixel sends dout * w back to its receptive field and dout * field to w."""
    x, w, b, stride, pad = cache
    xpad = _pad(x, pad)
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    hh, ww = w.shape[2], w.shape[3]
    n_img, n_f, ho, wo = dout.shape
    for n in range(n_img):
        for f in range(n_f):
            for i in range(ho):
                for j in range(wo):
                    hs, ws = i * stride, j * stride
                    dxpad[n, :, hs : hs + hh, ws : ws + ww] += w[f] * dout[n, f, i, j]
                    dw[f] += xpad[n, :, hs : hs + hh, ws : ws + ww] * dout[n, f, i, j]
    db = dout.sum(axis=(0, 2, 3))
    return _unpad(dxpad, pad), dw, db


# ---------------------------------------------------------------- im2col
def im2col(x: np.ndarray, hh: int, ww: int, stride: int, pad: int) -> np.ndarray:
    """Receptive fields as rows: (N, C, H, W) -> (N * Ho * Wo, C * HH * WW)."""
    xpad = _pad(x, pad)
    n, c = x.shape[:2]
    ho = (xpad.shape[2] - hh) // stride + 1
    wo = (xpad.shape[3] - ww) // stride + 1
    win = sliding_window_view(xpad, (hh, ww), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :ho, :wo]  # (N, C, Ho, Wo, HH, WW)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * hh * ww)


def col2im(cols: np.ndarray, x_shape: tuple, hh: int, ww: int, stride: int, pad: int) -> np.ndarray:
    """Adjoint of im2col: add every row back onto the pixels it was copied from."""
    n, c, h, w = x_shape
    hp, wp = h + 2 * pad, w + 2 * pad
    ho, wo = (hp - hh) // stride + 1, (wp - ww) // stride + 1
    cols = cols.reshape(n, ho, wo, c, hh, ww).transpose(0, 3, 4, 5, 1, 2)  # (N, C, HH, WW, Ho, Wo)
    dxpad = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for ki in range(hh):  # HH * WW vectorised scatters instead of N * Ho * Wo small ones
        for kj in range(ww):
            dxpad[:, :, ki : ki + stride * ho : stride, kj : kj + stride * wo : stride] += cols[:, :, ki, kj]
    return _unpad(dxpad, pad)


def conv_forward_im2col(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution as one matrix multiply: (N Ho Wo, C HH WW) @ (C HH WW, F)."""
    ho, wo = _out_size(x, w, stride, pad)
    n_f, _, hh, ww = w.shape
    cols = im2col(x, hh, ww, stride, pad)  # (N*Ho*Wo, C*HH*WW)
    out = cols @ w.reshape(n_f, -1).T + b  # (N*Ho*Wo, F)
    out = out.reshape(x.shape[0], ho, wo, n_f).transpose(0, 3, 1, 2)  # (N, F, Ho, Wo)
    return np.ascontiguousarray(out), (x.shape, cols, w, stride, pad)


def conv_backward_im2col(dout, cache):
    x_shape, cols, w, stride, pad = cache
    n_f, _, hh, ww = w.shape
    dout_mat = dout.transpose(0, 2, 3, 1).reshape(-1, n_f)  # (N*Ho*Wo, F)
    dw = (dout_mat.T @ cols).reshape(w.shape)  # (F, C*HH*WW)
    dcols = dout_mat @ w.reshape(n_f, -1)  # (N*Ho*Wo, C*HH*WW)
    dx = col2im(dcols, x_shape, hh, ww, stride, pad)
    db = dout_mat.sum(axis=0)
    return dx, dw, db


# ---------------------------------------------------------------- FFT
def conv_forward_fft(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution theorem: correlate with w = convolve with w flipped = product of spectra.

    A circular convolution of size (Hp, Wp) is exact on the 'valid' part we keep, because
    the wrapped-around terms only land on the first HH - 1 rows / WW - 1 columns.
    """
    ho, wo = _out_size(x, w, stride, pad)
    xpad = _pad(x, pad)
    hh, ww = w.shape[2], w.shape[3]
    size = xpad.shape[2:]  # (Hp, Wp)
    xf = np.fft.rfft2(xpad, s=size)  # (N, C, Hp, Wp//2+1)
    wf = np.fft.rfft2(w[:, :, ::-1, ::-1], s=size)  # (F, C, Hp, Wp//2+1)
    yf = np.einsum("nchw,fchw->nfhw", xf, wf, optimize=True)  # sum over input channels
    full = np.fft.irfft2(yf, s=size)  # (N, F, Hp, Wp); valid part starts at (HH-1, WW-1)
    out = full[:, :, hh - 1 :: stride, ww - 1 :: stride][:, :, :ho, :wo] + b[None, :, None, None]
    return np.ascontiguousarray(out.astype(np.result_type(x, w), copy=False)), (x, w, stride, pad, xf)


def conv_backward_fft(dout, cache):
    """dx = full convolution of dout with w; dw = correlation of x with dout (both by FFT)."""
    x, w, stride, pad, xf = cache
    n, n_f, ho, wo = dout.shape
    hh, ww = w.shape[2], w.shape[3]
    hp, wp = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
    d = np.zeros((n, n_f, hp - hh + 1, wp - ww + 1), dtype=dout.dtype)  # stride-1 output grid
    d[:, :, : ho * stride : stride, : wo * stride : stride] = dout  # zero-dilate by the stride
    df = np.fft.rfft2(d, s=(hp, wp))  # (N, F, Hp, Wp//2+1)
    wf = np.fft.rfft2(w, s=(hp, wp))  # (F, C, Hp, Wp//2+1)
    dxpad = np.fft.irfft2(np.einsum("nfhw,fchw->nchw", df, wf, optimize=True), s=(hp, wp))
    dwf = np.einsum("nfhw,nchw->fchw", np.conj(df), xf, optimize=True)  # cross-power spectrum
    dw = np.fft.irfft2(dwf, s=(hp, wp))[:, :, :hh, :ww]
    db = dout.sum(axis=(0, 2, 3))
    dtype = np.result_type(x, w)
    return _unpad(dxpad, pad).astype(dtype, copy=False), np.ascontiguousarray(dw).astype(dtype, copy=False), db


CONV_IMPLEMENTATIONS = {
    "naive": (conv_forward_naive, conv_backward_naive),
    "im2col": (conv_forward_im2col, conv_backward_im2col),
    "fft": (conv_forward_fft, conv_backward_fft),
}
