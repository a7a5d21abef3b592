"""Speed of the NumPy convolutions (im2col, FFT) against torch.nn.functional.conv2d.

Prints JSON: for a few course-sized shapes, the median time of forward and forward+backward
for each implementation, the ratios to torch, and the achieved GFLOP/s as a fraction of
this machine's float32 matmul rate (the faster of NumPy's BLAS and torch) measured in the
same process. Everything runs on one
thread (NumPy's BLAS and torch), float32, so the comparison is like for like.

    python benchmarks/scratch_conv.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from cnnlab.scratch import conv

SHAPES = {  # name: (x shape, w shape, stride, pad)
    "digits convnet (50x1x8x8, 32 3x3)": ((50, 1, 8, 8), (32, 1, 3, 3), 1, 1),
    "CIFAR-10 conv1 (50x3x32x32, 32 7x7)": ((50, 3, 32, 32), (32, 3, 7, 7), 1, 3),
    "VGG-style (16x64x16x16, 64 3x3)": ((16, 64, 16, 16), (64, 64, 3, 3), 1, 1),
    "AlexNet-style strided (8x3x63x63, 32 11x11 s4)": ((8, 3, 63, 63), (32, 3, 11, 11), 4, 2),
}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_peak_gflops(n: int = 1024, repeats: int = 5) -> dict:
    """float32 n x n matmul GFLOP/s with NumPy's BLAS and with torch; the peak is the larger."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    ta = torch.from_numpy(a)
    rates = {"numpy": 2 * n**3 / _median_time(lambda: a @ a, repeats) / 1e9,
             "torch": 2 * n**3 / _median_time(lambda: ta @ ta, repeats) / 1e9}
    rates["peak"] = max(rates.values())
    return rates


def bench_shape(xs, ws, stride, pad, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    b = np.zeros(ws[0], dtype=np.float32)
    out_shape = conv.conv_forward_im2col(x, w, b, stride, pad)[0].shape
    flops = 2 * out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * ws[1] * ws[2] * ws[3]
    dout = rng.standard_normal(out_shape, dtype=np.float32)
    result = {"x": list(xs), "w": list(ws), "stride": stride, "pad": pad, "forward_gflop": flops / 1e9}
    for impl in ("im2col", "fft"):
        fwd, bwd = conv.CONV_IMPLEMENTATIONS[impl]
        result[f"{impl}_forward_s"] = _median_time(lambda: fwd(x, w, b, stride, pad), repeats)
        result[f"{impl}_fwd_bwd_s"] = _median_time(lambda: bwd(dout, fwd(x, w, b, stride, pad)[1]), repeats)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    tdout = torch.from_numpy(dout)
    with torch.no_grad():
        result["torch_forward_s"] = _median_time(lambda: F.conv2d(tx, tw, tb, stride, pad), repeats)
    result["torch_fwd_bwd_s"] = _median_time(
        lambda: torch.autograd.grad(F.conv2d(tx, tw, tb, stride, pad), (tx, tw, tb), tdout), repeats)
    for impl in ("im2col", "fft"):
        result[f"{impl}_vs_torch_forward"] = result[f"{impl}_forward_s"] / result["torch_forward_s"]
        result[f"{impl}_vs_torch_fwd_bwd"] = result[f"{impl}_fwd_bwd_s"] / result["torch_fwd_bwd_s"]
    for impl in ("im2col", "fft", "torch"):
        result[f"{impl}_forward_gflops"] = flops / result[f"{impl}_forward_s"] / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only the first two shapes, 2 repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shapes = dict(list(SHAPES.items())[:2]) if args.quick else SHAPES
    repeats = 2 if args.quick else args.repeats
    with threadpool_limits(limits=1, user_api="blas"):
        peak = matmul_peak_gflops()
        results = {name: bench_shape(*spec, repeats) for name, spec in shapes.items()}
    for r in results.values():
        for impl in ("im2col", "fft", "torch"):
            r[f"{impl}_forward_fraction_of_peak"] = r[f"{impl}_forward_gflops"] / peak["peak"]
    report = {"benchmark": "scratch_conv", "dtype": "float32", "threads": 1, "machine": platform.processor() or platform.machine(),
              "numpy": np.__version__, "torch": torch.__version__, "matmul_gflops_1thread": peak,
              "note": "ratios > 1 mean slower than torch.nn.functional.conv2d", "shapes": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
