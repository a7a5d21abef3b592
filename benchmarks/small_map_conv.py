"""Weight gradient of ResNet-9's 3x3 convolutions: oneDNN's kernel against SmallMapConv2d's batch swap.

For each conv of ResNet-9 (width ``--width``) on 28x28 inputs, times the forward pass, the input
gradient and the weight gradient with torch's own kernel (``aten.convolution_backward``) and the
weight gradient as a batch-swapped convolution (``cnnlab.nn.small_map_conv.swapped_weight_grad``),
in bf16 (default) or fp32, channels_last, interleaved over several rounds (the fastest counts), with
the matmul peak of the same dtype measured in the same process. JSON to stdout, Markdown to stderr.

    python benchmarks/small_map_conv.py --threads 2                 # bf16, batch 128, width 24
    python benchmarks/small_map_conv.py --dtype fp32 --width 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.nn.small_map_conv import DEFAULT_MAX_MAP, swapped_weight_grad  # noqa: E402


def resnet9_convs(width: int, in_chans: int = 1, size: int = 28) -> list[tuple[str, int, int, int]]:
    """(name, C in, C out, map side) of every 3x3 conv of ResNet-9 at ``width`` on ``size`` x ``size`` inputs."""
    w = width
    return [("prep", in_chans, w, size), ("layer1 conv", w, 2 * w, size), ("layer1 residual", 2 * w, 2 * w, size // 2),
            ("layer2 conv", 2 * w, 4 * w, size // 2), ("layer3 conv", 4 * w, 8 * w, size // 4),
            ("layer3 residual", 8 * w, 8 * w, size // 8)]


def time_ops(ops: dict[str, Callable[[], Any]], rounds: int, reps: int) -> dict[str, float]:
    """Milliseconds per call of each op: ``rounds`` interleaved loops of ``reps`` calls, the fastest loop."""
    for fn in ops.values():
        fn()
    best = {k: float("inf") for k in ops}
    for _ in range(rounds):
        for k, fn in ops.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t0) / reps * 1e3)
    return best


def measure_layer(cin: int, cout: int, side: int, batch: int, dtype: torch.dtype, rounds: int, reps: int) -> dict[str, Any]:
    cl = torch.channels_last
    x = torch.randn(batch, cin, side, side).to(dtype).contiguous(memory_format=cl)  # (B, C, H, W)
    w = (0.05 * torch.randn(cout, cin, 3, 3)).to(dtype).contiguous(memory_format=cl)
    gy = torch.randn(batch, cout, side, side).to(dtype).contiguous(memory_format=cl)  # (B, O, H, W)
    aten = torch.ops.aten

    def backward(mask: list[bool]):
        return lambda: aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    ms = time_ops({"forward": lambda: F.conv2d(x, w, padding=1), "input_grad": backward([True, False, False]),
                   "weight_grad": backward([False, True, False]),
                   "weight_grad_swapped": lambda: swapped_weight_grad(x, gy, 1)}, rounds, reps)
    ref = backward([False, True, False])()[1]
    err = (swapped_weight_grad(x, gy, 1).float() - ref.float()).abs().max() / ref.float().abs().max()
    macs = batch * cout * cin * 9 * side * side
    return {"c_in": cin, "c_out": cout, "map": side, "macs": macs, "ms": ms,
            "swap_speedup": ms["weight_grad"] / ms["weight_grad_swapped"], "swap_rel_error": float(err),
            "swapped_in_training": side * side <= DEFAULT_MAX_MAP}


def render_markdown(report: dict[str, Any]) -> str:
    f = common.fmt
    headers = ["conv", "C in -> out", "map", "forward ms", "input grad ms", "weight grad ms", "swapped weight grad ms",
               "swap speedup", "used by SmallMapConv2d"]
    rows = [[r["name"], f"{r['c_in']} -> {r['c_out']}", f"{r['map']}x{r['map']}", f(r["ms"]["forward"]),
             f(r["ms"]["input_grad"]), f(r["ms"]["weight_grad"]), f(r["ms"]["weight_grad_swapped"]),
             f"{r['swap_speedup']:.2f}x", "yes" if r["swapped_in_training"] else "no"] for r in report["layers"]]
    s = report["settings"]
    env = report["environment"]
    note = (f"ResNet-9 width {s['width']}, batch {s['batch']}, {s['dtype']}, channels_last, 28x28 inputs; torch {env['torch']}, "
            f"{env['torch_threads']} threads on {env['cpu']}; {s['dtype']} matmul peak {f(report['peak_gflops'])} GFLOP/s. "
            "Fastest of interleaved rounds.")
    return common.markdown_table(headers, rows) + "\n\n" + note + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=24, help="ResNet-9 base width (16: --recipe fast, 24: --recipe best)")
    ap.add_argument("--batch", type=int, default=128, help="batch size of the timed convolutions")
    ap.add_argument("--dtype", choices=sorted(common.PRECISION_DTYPES), default="bf16", help="compute dtype")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds; the fastest counts")
    ap.add_argument("--reps", type=int, default=5, help="calls per op in each round")
    ap.add_argument("--peak-sizes", default="1024,1536,2048", help="matmul sizes of the peak measurement")
    ap.add_argument("--json", default=None, help="also write the JSON report here")
    ap.add_argument("--markdown", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    if args.width < 1 or args.batch < 1 or args.rounds < 1 or args.reps < 1:
        ap.error("--width, --batch, --rounds and --reps must be at least 1")
    try:
        sizes = [int(n) for n in args.peak_sizes.split(",")]
    except ValueError:
        ap.error(f"--peak-sizes {args.peak_sizes!r}: give comma-separated matrix sizes, e.g. 1024,2048")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = common.PRECISION_DTYPES[args.dtype]
    layers = [dict(name=name, **measure_layer(cin, cout, side, args.batch, dtype, args.rounds, args.reps))
              for name, cin, cout, side in resnet9_convs(args.width)]
    peak = common.matmul_peak_gflops(sizes, 3, dtype)
    report = common.to_jsonable({"benchmark": "small_map_conv", "environment": common.environment(), "peak_gflops": peak,
                                 "settings": {"width": args.width, "batch": args.batch, "dtype": args.dtype,
                                              "max_map": DEFAULT_MAX_MAP}, "layers": layers})
    common.emit_report(report, render_markdown(report), args.json, args.markdown)
    return report


if __name__ == "__main__":
    main()
