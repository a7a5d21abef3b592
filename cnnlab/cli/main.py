"""Entry point of the `cnnlab` command.

Every module in cnnlab.cli that defines ``register(subparsers)`` adds its commands; a
command's handler is stored as ``func`` in its parser defaults and gets the parsed args.
User mistakes (CnnlabError) print one ``error: ...`` line and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import cnnlab
from cnnlab.errors import CnnlabError

EPILOG = """examples:
  cnnlab demo                                   train, evaluate and report in ~2 minutes
  cnnlab train classify --data fashion-mnist --model lenet5 --epochs 3
  cnnlab evaluate runs/classify-lenet5-*        accuracy, per-class, confusion matrix
  cnnlab predict RUN_DIR photo.jpg              top-5 classes of your own image
  cnnlab models 'resnet*'                       the model zoo

run `cnnlab COMMAND --help` for each command's options and an example."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="cnnlab: the CNNs-for-visual-recognition curriculum, runnable on your laptop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {cnnlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import cnnlab.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cnnlab.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except CnnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
