"""`cnnlab demo`: the main job in about two minutes — train, evaluate, and write a report folder."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnlab demo                         Fashion-MNIST (or the embedded digits if it is not installed)
  cnnlab demo --out reports/first     choose the report folder
  cnnlab demo --epochs 2              quicker, a little less accurate"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, evaluate and report on Fashion-MNIST in about two minutes",
                       description="Train the `fast` recipe on Fashion-MNIST (falls back to scikit-learn's bundled digits when "
                                   "the dataset is not installed), evaluate it on the test set and write a report folder with "
                                   "learning curves, the confusion matrix and a grid of predictions.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="report folder (default: runs/demo-<time>)")
    p.add_argument("--data-root", help="folder holding the Fashion-MNIST IDX files")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from cnnlab.engine.checkpoint import atomic_write_bytes
    from cnnlab.engine.pipeline import train
    from cnnlab.engine.recipes import recipe
    from cnnlab.tasks.classify import ClassifyConfig

    values = recipe("fast")
    if args.epochs:
        values["epochs"] = args.epochs
    out = args.out or str(Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = ClassifyConfig(task="classify", data="fashion-mnist-or-digits", data_root=args.data_root, recipe="fast",
                      out=out, quiet=args.quiet, **values)
    t0 = time.perf_counter()
    run_dir, result, summary = train(cfg)
    if result.status != "finished":
        return 143 if result.signal == "SIGTERM" else 130
    acc = summary.get("test_acc")
    wall = time.perf_counter() - t0
    lines = [
        "# cnnlab demo", "",
        f"- data: {summary['data']}", f"- model: {summary['model']} ({summary['parameters']:,} parameters), recipe `fast`",
        f"- epochs: {summary['epochs']}, training time {summary['train_seconds']:.0f} s, total {wall:.0f} s",
        f"- **test accuracy: {acc:.4f}**", "",
        "| class | test accuracy |", "|---|---|",
        *[f"| {c} | {a:.3f} |" for c, a in summary["per_class_acc"].items()], "",
        "![learning curves](plots/curves.png)", "", "![confusion matrix](plots/confusion.png)", "",
        "![predictions](plots/predictions.png)", "",
        f"Evaluate again: `cnnlab evaluate {run_dir}`; classify your own image: `cnnlab predict {run_dir} IMAGE`.", "",
    ]
    atomic_write_bytes(Path(run_dir) / "report.md", "\n".join(lines).encode())
    print(f"\nreport folder: {run_dir}  (report.md, plots/)\ntest accuracy: {acc:.4f}")
    return 0
