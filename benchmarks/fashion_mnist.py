"""Train one configuration on Fashion-MNIST and print JSON: test accuracy, wall seconds, training
images/s, and (cheap to add) the machine's fp32 matmul peak and the run's MFU.

    python benchmarks/fashion_mnist.py --model lenet5 --epochs 10
    python benchmarks/fashion_mnist.py --recipe fast            # a named recipe; --model/--epochs override it

Training images/s = images trained on / wall seconds of the training epochs (data loading included,
evaluation excluded); wall_seconds is the whole run (data, training, every evaluation, checkpoints).
FLOP and MFU conventions are those of common.py (training FLOPs/image = 6 x conv+linear MACs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.tasks.classify import ClassifyConfig as TrainConfig  # noqa: E402
from cnnlab.engine.recipes import recipe  # noqa: E402


def build_config(args: argparse.Namespace, out: Path) -> TrainConfig:
    fields: dict[str, Any] = recipe(args.recipe) if args.recipe else {"model": "lenet5", "epochs": 10}
    if args.model is not None:
        fields["model"] = args.model
        if args.recipe and args.model != recipe(args.recipe).get("model"):
            fields.pop("model_kwargs", None)  # the recipe's widths belong to its own model
    if args.epochs is not None:
        fields["epochs"] = args.epochs
    cfg = TrainConfig(**fields)
    return dataclasses.replace(cfg, data="fashion-mnist", seed=args.seed, threads=args.threads, limit=args.limit,
                               limit_test=args.limit_test, quiet=True, tensorboard=False, out=str(out),
                               recipe=args.recipe, device="cpu")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cnnlab.engine.pipeline import train as train_classifier
    from cnnlab.tasks.classify import setup

    if args.threads:
        torch.set_num_threads(args.threads)
    peak_before = common.matmul_peak_gflops(args.peak_sizes)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cnnlab-fmnist-"))
    try:
        cfg = build_config(args, root / "run" if not args.out else root)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            run_dir, result, summary = train_classifier(cfg)
        wall = time.perf_counter() - t0
        rows = common.read_metrics_csv(Path(run_dir) / "metrics.csv")
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    peak = max(peak_before, common.matmul_peak_gflops(args.peak_sizes))
    cfg = cfg.resolved()
    task, data = setup(cfg)
    input_size = (data.meta["in_chans"], *data.meta["img_size"])
    macs = common.forward_macs(task.build_model(cfg, data), input_size)
    flops = common.training_flops(macs)
    train_s = sum(r["epoch_seconds"] for r in rows)
    ips = sum(r["images_per_s"] * r["epoch_seconds"] for r in rows) / train_s
    return common.to_jsonable({
        "model": cfg.model, "model_kwargs": cfg.model_kwargs, "recipe": cfg.recipe, "epochs": int(rows[-1]["epoch"]),
        "seed": cfg.seed, "train_images": len(data.train), "test_images": len(data.test),
        "test_acc": summary.get("test_acc"), "tta": cfg.eval_tta, "wall_seconds": wall, "train_seconds": train_s,
        "images_per_s": ips, "threads": torch.get_num_threads(), "peak_gflops": peak,
        "macs_per_image": macs, "flops_per_image": flops, **common.utilization(ips, flops, peak),
        "status": result.status,
    })


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=None, help="a named recipe (cnnlab.engine.recipes), e.g. fast")
    ap.add_argument("--model", default=None, help="registered model (default lenet5, or the recipe's)")
    ap.add_argument("--epochs", type=int, default=None, help="default 10, or the recipe's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="train on this many images (quick checks)")
    ap.add_argument("--limit-test", type=int, default=None, help="test on this many images (default: --limit)")
    ap.add_argument("--peak-sizes", default="1024,1536,2048", help="matmul sizes of the peak measurement")
    ap.add_argument("--out", default=None, help="keep the run folder here (default: temporary, removed)")
    args = ap.parse_args(argv)
    args.peak_sizes = [int(n) for n in args.peak_sizes.split(",")]
    if args.limit_test is None:
        args.limit_test = args.limit
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cnnlab.errors import CnnlabError

    try:
        report = run(parse_args(argv))
    except CnnlabError as e:
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
