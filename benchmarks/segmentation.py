"""The course's segmentation comparison, measured on one scenes set: mIoU, training time, inference, memory.

Every model trains through ``cnnlab train segment`` with that task's defaults (only --model, --backbone,
--upsample and --weights differ, and --epochs is the same for all), each in its own process so its
peak memory is its own. Per model: test mIoU and pixel accuracy of the best-on-val checkpoint,
training seconds, inference ms/image (batch of 16, eval mode, fastest of 5) and memory: the bytes of
every layer's output for one image (what backpropagation keeps), the peak memory one image's forward
adds in a fresh process (peak RSS rise; CUDA's max_memory_allocated on a GPU), and the training
process's peak RSS (data and torch included). JSON to stdout (and --out), Markdown to stderr.

    python benchmarks/segmentation.py --data data/seg/voc --threads 2             # the full table
    python benchmarks/segmentation.py --quick --threads 1                         # a minute: tiny set, 1 epoch
    python benchmarks/segmentation.py --data data/seg/voc --models unet fcn8s     # some of them

Without --data a scenes set is generated (``cnnlab data scenes --kind segment --n N``) in --work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# name -> the flags that make it (everything else: the segment task's defaults)
VARIANTS: dict[str, list[str]] = {
    "sliding_window": ["--model", "sliding_window"],
    "full_res": ["--model", "full_res"],
    "encdec_nearest": ["--model", "encdec", "--upsample", "nearest"],
    "encdec_bed_of_nails": ["--model", "encdec", "--upsample", "bed_of_nails"],
    "encdec_max_unpool": ["--model", "encdec", "--upsample", "max_unpool"],
    "encdec_transposed": ["--model", "encdec", "--upsample", "transposed"],
    "encdec_bilinear": ["--model", "encdec", "--upsample", "bilinear"],
    "fcn32s": ["--model", "fcn32s"],
    "fcn16s": ["--model", "fcn16s"],
    "fcn8s": ["--model", "fcn8s"],
    "unet_scratch": ["--model", "unet", "--backbone", "none"],
    "unet_mobilenet_v2_scratch": ["--model", "unet", "--weights", "none"],
    "unet": ["--model", "unet"],  # ImageNet MobileNetV2 encoder: the task's default
}
QUICK_MODELS = ["sliding_window", "full_res", "encdec_max_unpool", "fcn8s", "unet"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a segmentation folder (default: generate scenes into --work)")
    p.add_argument("--n", type=int, default=1200, help="training scenes to generate without --data (default: 1200)")
    p.add_argument("--epochs", type=int, default=8, help="epochs for every model (default: 8)")
    p.add_argument("--models", nargs="+", choices=list(VARIANTS), help="the variants to run (default: all)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    p.add_argument("--work", help="folder for the generated data and the runs (default: a temporary folder)")
    p.add_argument("--out", help="also write the JSON report here")
    p.add_argument("--figure", metavar="FILE.png", help="also draw one test image through every model trained, side by side")
    p.add_argument("--image-index", type=int, default=0, help="which test image --figure draws (default: 0)")
    p.add_argument("--quick", action="store_true", help="a tiny set (48 scenes of 64x64), 1 epoch, five models")
    p.add_argument("--one", nargs=2, metavar=("NAME", "RUN_DIR"), help=argparse.SUPPRESS)  # child process: train one
    p.add_argument("--infer", metavar="RUN_DIR", help=argparse.SUPPRESS)  # child process: measure one trained model
    args = p.parse_args(argv)
    if args.epochs < 1 or args.n < 8 or args.threads < 1:
        p.error("--epochs and --threads must be >= 1, --n >= 8")
    return args


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS starts again from the current RSS
        return True
    except OSError:
        return False


def run_one(name: str, data: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant in this process (a child of main): its figures and its peak RSS."""
    from cnnlab.cli.train import config_from_args, register
    from cnnlab.engine.pipeline import train

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    flags = ["train", "segment", "--data", data, *VARIANTS[name], "--epochs", str(args.epochs), "--threads",
             str(args.threads), "--device", args.device, "--out", str(run_dir), "--quiet", "--no-tensorboard"]
    if args.quick:
        flags += ["--warmup-epochs", "0", "--batch-size", "8"]
    cfg = config_from_args(parser.parse_args(flags))
    _, result, summary = train(cfg)
    return {"name": name, "flags": " ".join(VARIANTS[name]), "weights": cfg.weights, "parameters": summary.get("parameters"),
            "epochs": summary.get("epochs"), "status": result.status, "miou": summary.get("miou"),
            "pixel_acc": summary.get("pixel_acc"), "val_miou": summary.get("val_miou"),
            "eval_split": summary.get("eval_split"), "train_seconds": summary.get("train_seconds"),
            "train_peak_rss_mb": round(_peak_rss_mb(), 1), "run_dir": str(run_dir)}


def measure_inference(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: the peak memory a forward of 16 images adds, activation bytes per image, ms/image."""
    import torch

    from cnnlab.engine.evaluate import load_task

    torch.set_num_threads(args.threads)
    task, model, meta, _ = load_task(run_dir)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    bundle = task.build_data(task.cfg)
    split = bundle.test if bundle.test is not None else bundle.val
    x = torch.stack([split[i]["images"] for i in range(min(16, len(split)))]).to(device)
    if task.cfg.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    activations = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: activations.append(out.numel() * out.element_size()
                                                                            if torch.is_tensor(out) else 0))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = _peak_rss_mb() if _reset_peak_rss() else None
        model(x[:1])  # the first forward of this process: what its maps cost
        infer_mb = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else
                    (_peak_rss_mb() - before) if before is not None else None)
        for h in hooks:
            h.remove()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return {"model": meta["model"], "backbone": meta["backbone"],
            "upsample": meta.get("upsample") if meta["model"] == "encdec" else None,
            "infer_ms_per_image": round(best / len(x) * 1e3, 3), "activations_mb_per_image": round(sum(activations) / 2 ** 20, 2),
            "infer_peak_mb_per_image": round(infer_mb, 1) if infer_mb is not None else None, "device": device.type}


def _child(flags: list[str], threads: int) -> dict[str, Any]:
    """Run this script with ``flags`` in a new process; its last JSON line, or {"error": its last stderr line}."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *flags], capture_output=True, text=True, env=env)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(line)


def family_figure(results: list[dict[str, Any]], path: Path, index: int = 0) -> Path:
    """One test image, its true mask, and each model's predicted mask, titled with the model's test mIoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from cnnlab.engine.evaluate import load_task
    from cnnlab.tasks.segment import colour_masks

    done = [r for r in results if "error" not in r]
    if not done:
        raise SystemExit("--figure: no model finished")
    panels = []
    for r in done:
        task, model, _, _ = load_task(r["run_dir"])
        bundle = task.build_data(task.cfg)
        split = bundle.test if bundle.test is not None else bundle.val
        item = split[index]
        with torch.no_grad():
            pred = model(item["images"][None]).argmax(1)[0].numpy()
        if not panels:
            panels += [("image", split.images[index].numpy().transpose(1, 2, 0)), ("true", colour_masks(item["masks"].numpy()))]
        panels.append((f"{r['name']}\nmIoU {r['miou']:.3f}", colour_masks(pred)))
    cols = min(5, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, img) in zip(axes.ravel(), panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def make_data(args: argparse.Namespace, work: Path) -> str:
    from cnnlab.data.scenes import make_scenes

    if args.data:
        return args.data
    out = work / ("scenes-quick" if args.quick else f"scenes-{args.n}")
    if not out.exists():
        if args.quick:
            make_scenes("segment", 48, out, n_val=16, n_test=16, size=64, min_size=14, max_size=32)
        else:
            make_scenes("segment", args.n, out)
    return str(out / "voc")


def markdown(results: list[dict[str, Any]]) -> str:
    rows = ["| model | flags | params | mIoU | pixel acc | train s | infer ms/img | activations MB/img | "
            "infer peak MB/img | train peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in results:
        if "error" in r:
            rows.append(f"| {r['name']} | `{' '.join(VARIANTS[r['name']])}` | failed: {r['error']} | | | | | | | |")
            continue
        rows.append(f"| {r['name']} | `{r['flags']}` | {fmt(r['parameters'], ',')} | {fmt(r['miou'], '.4f')} | "
                    f"{fmt(r['pixel_acc'], '.4f')} | {fmt(r['train_seconds'], '.0f')} | {fmt(r['infer_ms_per_image'], '.2f')} | "
                    f"{fmt(r['activations_mb_per_image'], '.1f')} | {fmt(r['infer_peak_mb_per_image'], '.1f')} | "
                    f"{fmt(r['train_peak_rss_mb'], '.0f')} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.data, Path(args.one[1]), args)))
        return {}
    if args.infer:
        print(json.dumps(measure_inference(Path(args.infer), args)))
        return {}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cnnlab-segbench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(args, work)
    names = args.models or (QUICK_MODELS if args.quick else list(VARIANTS))
    epochs = 1 if args.quick else args.epochs
    results = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        run_dir = work / f"{name}-{stamp}"
        common = ["--data", data, "--epochs", str(epochs), "--threads", str(args.threads), "--device", args.device] + \
            (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        row = _child(["--one", name, str(run_dir), *common], args.threads)
        if "error" not in row:
            row |= _child(["--infer", str(run_dir), *common], args.threads)
        results.append({"name": name, **row, "wall_seconds": round(time.perf_counter() - t0, 1)})
        r = results[-1]
        print(f"{name}: " + (f"mIoU {r['miou']:.4f}, {r['train_seconds']:.0f} s" if "error" not in r else
                             f"failed: {r['error']}"), file=sys.stderr, flush=True)
    import torch

    report = {"benchmark": "segmentation", "data": data, "epochs": epochs, "threads": args.threads, "quick": args.quick,
              "torch": torch.__version__, "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    print(markdown(results), file=sys.stderr)
    if args.figure:
        print(f"figure: {family_figure(results, Path(args.figure), args.image_index)}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
