"""`cnnlab gradcheck` and `cnnlab scratch train`: the NumPy teaching engine from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GRADCHECK_EPILOG = """example:
  cnnlab gradcheck                       every layer and loss, float64, five-point stencil
  cnnlab gradcheck --only 'conv*' --order 2   the course's two-point formula on the convolutions
exit status 0 when every max relative error is below --threshold (default 1e-7), else 1."""

TRAIN_EPILOG = """example:
  cnnlab scratch train --model convnet --data digits          ~98% test accuracy in ~10 s
  cnnlab scratch train --model softmax --data fashion-mnist --limit 5000 --out runs/sm
prints train/val/test accuracy and saves OUT/loss_curve.png (kNN: accuracy vs k)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck", help="check every scratch layer's backward pass numerically",
        description="Compare each NumPy layer's and loss's analytic gradients with centered differences "
                    "and print the max relative error of every input and parameter gradient.",
        epilog=GRADCHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="*", metavar="PATTERN", help="glob over layer names (default: all)")
    p.add_argument("--dtype", default="float64", metavar="{float64,float32}", help="precision (default float64)")
    p.add_argument("--order", type=int, default=4, metavar="{2,4}",
                   help="2: (f(x+h)-f(x-h))/2h as in the course; 4: five-point stencil (default)")
    p.add_argument("--threshold", type=float, default=1e-7, help="largest acceptable relative error (default 1e-7)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs (default 0)")
    _add_threads(p)
    p.set_defaults(func=run_gradcheck)

    scratch = subparsers.add_parser(
        "scratch", help="the NumPy teaching engine (train its classifiers)",
        description="The course's classifiers written in NumPy: kNN, linear SVM, softmax, two-layer net, conv net.",
        epilog="example:\n  cnnlab scratch train --model convnet --data digits",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = scratch.add_subparsers(dest="scratch_command", metavar="COMMAND")
    t = sub.add_parser(
        "train", help="train a scratch classifier and report train/val/test accuracy",
        description="Train one of the NumPy classifiers with its built-in recipe, print train/val/test "
                    "accuracy and save a loss-curve plot.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--model", required=True, metavar="{knn,svm,softmax,twolayer,convnet}",
                   help="the NumPy classifier to train (required)")
    t.add_argument("--data", default="digits", metavar="{digits,fashion-mnist}", help="dataset (default digits)")
    t.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N examples per split")
    t.add_argument("--epochs", type=int, default=None, help="override the recipe's number of epochs")
    t.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/scratch-MODEL-DATA)")
    t.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder with the Fashion-MNIST IDX .gz files (default /usr/share/datasets/fashion-mnist)")
    t.add_argument("--seed", type=int, default=0, help="seed of the weights, data order and split (default 0)")
    _add_threads(t)
    t.set_defaults(func=run_train)
    scratch.set_defaults(func=lambda args: (scratch.print_help(), 2)[1])


def _limit_blas_threads(n: int):
    """Cap NumPy's BLAS threads: scratch multiplies small matrices, where extra threads only
    contend (measured on 2 busy cores: conv net on digits 7.7 s with 1 thread, 50 s with 2).
    The limit is a context manager, undone when the command ends."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - without it NumPy keeps its own default
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _add_threads(p) -> None:
    p.add_argument("--threads", type=int, default=1, help="NumPy BLAS threads (default 1; see docs/scratch.md)")


def run_gradcheck(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from cnnlab.errors import ConfigError
    from cnnlab.scratch.checks import CASES, run_gradchecks

    if args.dtype not in ("float64", "float32"):
        raise ConfigError(f"--dtype must be float64 or float32, got {args.dtype!r}")
    if args.order not in (2, 4):
        raise ConfigError(f"--order must be 2 or 4, got {args.order}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    import fnmatch

    names = [n for n in CASES if fnmatch.fnmatch(n, args.only)]
    if not names:
        raise ConfigError(f"--only {args.only!r} matches no layer; layers are: {', '.join(CASES)}")
    with _limit_blas_threads(args.threads), tqdm(total=len(names), desc="gradcheck", leave=False, file=sys.stderr) as bar:
        results = run_gradchecks(args.only, np.dtype(args.dtype), order=args.order, seed=args.seed,
                                 progress=lambda name: (bar.set_postfix_str(name), bar.update(1)))
    width = max(len(r.layer) for r in results) + 2
    print(f"{'layer':<{width}}{'gradient':<10}{'max rel error':>14}  ok")
    failed = 0
    for r in results:
        ok = bool(r.error < args.threshold)
        failed += not ok
        print(f"{r.layer:<{width}}{r.grad:<10}{r.error:>14.2e}  {'yes' if ok else 'NO'}")
    worst = max(results, key=lambda r: r.error)
    print(f"{len(results) - failed}/{len(results)} gradients below {args.threshold:g} "
          f"({args.dtype}, order-{args.order} centered differences); worst {worst.error:.2e} ({worst.layer} d{worst.grad})")
    return 0 if failed == 0 else 1


def _save_plot(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_acc = bool(result.epochs_val_acc)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 6, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(result.curve_x, result.curve, marker="o" if len(result.curve) < 30 else None)
    ax.set_xlabel("k" if result.model_name == "knn" else "iteration")
    ax.set_ylabel(result.curve_label)
    ax.set_title(f"{result.model_name}: {result.curve_label}")
    if has_acc:
        epochs = range(1, len(result.epochs_val_acc) + 1)
        axes[0, 1].plot(epochs, result.epochs_train_acc, label="train")
        axes[0, 1].plot(epochs, result.epochs_val_acc, label="val")
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("accuracy")
        axes[0, 1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_train(args) -> int:
    from cnnlab.errors import ConfigError
    from cnnlab.scratch.recipes import MODELS

    if args.model not in MODELS:
        raise ConfigError(f"unknown model {args.model!r}; choose one of {', '.join(MODELS)}")
    if args.data not in ("digits", "fashion-mnist"):
        raise ConfigError(f"unknown dataset {args.data!r}; choose digits or fashion-mnist")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive number of examples, got {args.limit}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    with _limit_blas_threads(args.threads):
        return _train(args)


def _train(args) -> int:
    import json

    from tqdm import tqdm

    from cnnlab.scratch.data import load_dataset
    from cnnlab.scratch.recipes import train_scratch

    data = load_dataset(args.data, limit=args.limit, data_root=args.data_root, seed=args.seed)
    out = Path(args.out or f"runs/scratch-{args.model}-{args.data}")
    out.mkdir(parents=True, exist_ok=True)
    n = {s: len(data[f"y_{s}"]) for s in ("train", "val", "test")}
    print(f"{args.data}: {n['train']} train / {n['val']} val / {n['test']} test examples, model {args.model}")
    bar = tqdm(total=None, desc=f"train {args.model}", leave=False, file=sys.stderr, disable=args.model == "knn")

    def progress(it: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(it - bar.n)
        if it % 10 == 0 or it == total:
            bar.set_postfix(loss=f"{loss:.3f}")

    try:
        result = train_scratch(args.model, data, epochs=args.epochs, seed=args.seed, progress=progress)
    finally:
        bar.close()
    _save_plot(result, out / "loss_curve.png")
    summary = {"model": args.model, "data": args.data, "train_acc": result.train_acc, "val_acc": result.val_acc,
               "test_acc": result.test_acc, "examples": n,
               "recipe": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    extra = f" (k={result.info['k']})" if args.model == "knn" else ""
    print(f"train accuracy {result.train_acc:.4f}  val accuracy {result.val_acc:.4f}  "
          f"test accuracy {result.test_acc:.4f}{extra}")
    print(f"saved {out / 'loss_curve.png'} and {out / 'summary.json'}")
    return 0
