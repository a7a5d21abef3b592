"""Inference speed of one network four ways: eager PyTorch, torch.compile, TorchScript and onnxruntime.

    python benchmarks/inference.py [--threads 2] [--batches 1 32] [--seconds 2] [--out benchmarks/results/inference.json]

Models: the fast Fashion-MNIST classifier (`cnnlab train classify --recipe fast`: ResNet-9 at width 16, 1 x 28 x 28)
and MobileNetV2 at 224 x 224 (ImageNet weights). TorchScript and ONNX files are written by `cnnlab export`'s own
code (cnnlab.engine.export), and each runtime's outputs are checked against eager (max relative difference).
Figures: milliseconds per image at each batch size (the best of several timed rounds), the speed-up over eager
(the peer), and the share of the machine's matmul peak measured in the same run (forward FLOPs / time / peak).
Prints JSON (and a Markdown table on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.engine.export import _Flat, export  # noqa: E402
from cnnlab.models import create_model  # noqa: E402


def models() -> dict[str, tuple[torch.nn.Module, tuple[int, int, int]]]:
    from cnnlab.engine.recipes import RECIPES

    fast = RECIPES["fast"]
    resnet9 = create_model(fast["model"], num_classes=10, in_chans=1, **fast["model_kwargs"]).eval()
    mobilenet = create_model("mobilenet_v2", num_classes=1000, weights="imagenet").eval()
    return {f"{fast['model']} (fast Fashion-MNIST recipe, 28 px)": (resnet9, (1, 28, 28)),
            "mobilenet_v2 (ImageNet, 224 px)": (mobilenet, (3, 224, 224))}


def timed(fn: Callable[[], Any], seconds: float, rounds: int = 5) -> float:
    """Seconds per call: the best round of ``rounds``, each about ``seconds / rounds`` long, after a warm-up."""
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(1e-6, time.perf_counter() - t0)
    calls = max(1, int(seconds / rounds / once))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def runtimes(model: torch.nn.Module, shape: tuple[int, int, int], tmp: Path, threads: int) -> dict[str, Callable]:
    """name -> function(x) returning the logits tensor, for each runtime (files written with cnnlab export)."""
    flat = _Flat(model).eval()
    example = (torch.randn(2, *shape),)
    info = {"task": "classify", "model": type(model).__name__, "inputs": [{"name": "images", "shape": ["batch", *shape]}]}
    out: dict[str, Callable] = {}

    def eager(x):
        with torch.inference_mode():
            return model(x)

    out["eager"] = eager
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model, dynamic=False)

    def comp(x):
        with torch.inference_mode():
            return compiled(x)

    out["torch.compile"] = comp
    ts_path = export(flat, example, dict(info, inputs=list(info["inputs"])), "torchscript", tmp / "m.pt")["path"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(ts_path).eval()))

    def ts(x):
        with torch.inference_mode():
            return scripted(x)[0]

    out["TorchScript (frozen)"] = ts
    onnx_path = export(flat, example, dict(info, inputs=list(info["inputs"])), "onnx", tmp / "m.onnx")["path"]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def onnx(x):
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    out["onnxruntime"] = onnx  # the files were checked against the network when written (cnnlab.engine.export)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per (model, runtime, batch)")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--markdown", help="write the table here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = common.matmul_peak_gflops()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, shape) in models().items():
            flops = 2 * common.forward_macs(model, shape)
            fns = runtimes(model, shape, Path(tmp), args.threads)
            for batch in args.batches:
                x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
                ref = fns["eager"](x)
                eager_ms = None
                for rt, fn in fns.items():
                    diff = float((fn(x).float() - ref).abs().max() / max(1.0, float(ref.abs().max())))
                    sec = timed(lambda: fn(x), args.seconds)
                    ms = 1000 * sec / batch
                    eager_ms = eager_ms or ms
                    mfu = flops * batch / sec / 1e9 / peak
                    results.append({"model": label, "runtime": rt, "batch": batch, "ms_per_image": ms,
                                    "images_per_s": batch / sec, "speedup_vs_eager": eager_ms / ms,
                                    "forward_gflops": flops / 1e9, "mfu": mfu, "max_rel_diff_vs_eager": diff})
                    rows.append([label, rt, str(batch), common.fmt(ms, 3), f"{eager_ms / ms:.2f}x", f"{100 * mfu:.1f}%"])
                    print(f"{label:<45} {rt:<22} batch {batch:<3} {ms:8.3f} ms/image  {eager_ms / ms:5.2f}x eager  "
                          f"MFU {100 * mfu:5.1f}%  diff {diff:.1e}", file=sys.stderr, flush=True)
    report = common.to_jsonable({"benchmark": "inference", "environment": common.environment(), "threads": args.threads,
                                 "peak_gflops": peak, "results": results,
                                 "method": "best of 5 rounds of ~seconds/5 each after warm-up; ms per image = round time / "
                                           "calls / batch; MFU = forward FLOPs (2 x conv+linear MACs) per second / "
                                           "fp32 matmul peak of this run"})
    table = common.markdown_table(["model", "runtime", "batch", "ms/image", "vs eager", "of matmul peak"], rows)
    common.emit_report(report, table, args.out, args.markdown)


if __name__ == "__main__":
    main()
