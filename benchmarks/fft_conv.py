"""From which kernel size does FFT convolution beat direct convolution (torch conv2d) on this CPU?

Prints one JSON object: per kernel size the best-of-N time of ``F.conv2d`` and of
``cnnlab.nn.fft_conv2d`` ('same' padding, stride 1; the two take turns), the speedup, the direct conv's GFLOP/s
as a fraction of this machine's fp32 matmul peak (measured in the same run), and
``fft_wins_from_kernel``: the smallest tested kernel from which the FFT wins at every larger one.

    python benchmarks/fft_conv.py                       # 8x16x64x64 -> 16 channels, k = 1..31, best of 10
    python benchmarks/fft_conv.py --size 128 --kernels 3 7 15 31
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from cnnlab.nn.fft_conv import fft_conv2d


def best_times(fns, repeat: int) -> list[float]:
    """Best-of-``repeat`` wall time in seconds of each function after one warm-up call.

    The functions take turns in every round, so a burst of other work on the machine slows
    them alike; the minimum is the measurement least disturbed by it.
    """
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [min(ts) for ts in times]


def sig(x: float, digits: int = 4) -> float:
    """Round to significant digits, so tiny and large timings keep their precision."""
    return float(f"{x:.{digits}g}")


def matmul_peak_gflops(n: int, repeat: int) -> float:
    """fp32 GFLOP/s of an n x n x n matmul (2 n^3 flops), the machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_times([lambda: torch.mm(a, b)], repeat)[0] / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", type=int, nargs="+", default=[1, 3, 5, 7, 9, 11, 13, 15, 17, 21, 25, 31])
    ap.add_argument("--size", type=int, default=64, help="input height and width")
    ap.add_argument("--channels", type=int, default=16, help="input and output channels")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    peak_before = matmul_peak_gflops(args.matmul_n, args.repeat)
    x = torch.randn(args.batch, args.channels, args.size, args.size)  # (B, C, H, W)
    rows = []
    with torch.no_grad():
        for k in args.kernels:
            w = torch.randn(args.channels, args.channels, k, k) / k
            pad = k // 2 if k % 2 else 0
            direct, fft = best_times([lambda: F.conv2d(x, w, padding=pad), lambda: fft_conv2d(x, w, padding=pad)], args.repeat)
            ref, out = F.conv2d(x, w, padding=pad), fft_conv2d(x, w, padding=pad)
            macs = out.numel() * args.channels * k * k  # direct-convolution multiply-adds
            rows.append({
                "kernel": k,
                "direct_ms": sig(direct * 1e3),
                "fft_ms": sig(fft * 1e3),
                "fft_speedup": sig(direct / fft),
                "direct_gflops": sig(2 * macs / direct / 1e9),
                "max_abs_diff": float((out - ref).abs().max()),
            })  # fmt: skip
    # Measured before and after the sweep; the higher is the less disturbed by other work.
    peak_after = matmul_peak_gflops(args.matmul_n, args.repeat)
    peak = max(peak_before, peak_after)
    for r in rows:
        r["direct_fraction_of_matmul_peak"] = sig(r["direct_gflops"] / peak, 3)
    wins_from = None
    for r in reversed(rows):  # walk down from the largest kernel while the FFT keeps winning
        if r["fft_speedup"] <= 1:
            break
        wins_from = r["kernel"]
    print(json.dumps({
        "benchmark": "fft_conv2d vs torch conv2d, stride 1, 'same' padding",
        "input": [args.batch, args.channels, args.size, args.size],
        "out_channels": args.channels,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "matmul_peak_gflops": sig(peak),
        "matmul_gflops_before_after": [sig(peak_before), sig(peak_after)],
        "matmul_n": args.matmul_n,
        "kernels": rows,
        "fft_wins_from_kernel": wins_from,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
