"""`cnnlab models [PATTERN]` lists the model zoo; `cnnlab summary MODEL` prints a per-layer table.

Both count parameters and multiply-adds on the meta device, so even VGG-16 costs no memory
and no initialisation time.
"""

from __future__ import annotations

import argparse
import json
import re

from cnnlab.errors import ConfigError

INPUT_HELP = "input shape CxHxW (3x224x224), HxW (channels from the model) or one size (224)"


def parse_input_shape(text: str, default_chans: int) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224); '224x224' and '224' take the model's channel count."""
    parts = re.split(r"\s*[x,]\s*", text.strip().lower())
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"bad --input {text!r}: give positive sizes as CxHxW (3x224x224), HxW (224x224) or one size (224)")
    sizes = [int(p) for p in parts]
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) == 2:
        sizes = [default_chans, *sizes]
    return tuple(sizes)  # type: ignore[return-value]


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.errors import CnnlabError
    from cnnlab.models.registry import get_model_builder, list_models
    from cnnlab.models.summary import default_input_size, summarize_registered

    names = list_models(args.pattern)
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r}; run `cnnlab models` to list them all")
    records = []
    for name in names:
        shape = default_input_size(name)
        doc = (get_model_builder(name).__doc__ or "").strip().splitlines()
        rec = {"name": name, "input": "x".join(map(str, shape)), "description": doc[0] if doc else ""}
        try:
            s = summarize_registered(name, shape)
            rec.update(params=s.total_params, macs=s.total_macs)
        except CnnlabError as e:  # show the model, say why it could not be measured
            rec.update(params=None, macs=None, error=str(e))
        records.append(rec)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [("model", "input", "params", "MACs", "description")]
    for r in records:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] is not None else "?"
        macs = _human(r["macs"]) if r["macs"] is not None else "?"
        rows.append((r["name"], r["input"], params, macs, r.get("error") or r["description"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        print("  ".join(cells).rstrip())
    print(f"\n{len(records)} models; MACs = multiply-adds of conv and linear layers for one image at the input shown")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.models.summary import default_input_size, format_summary, summarize_registered

    default = default_input_size(args.model)  # also checks the name (one-line error if unknown)
    shape = parse_input_shape(args.input, default[0]) if args.input is not None else default
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {args.num_classes}")
    s = summarize_registered(args.model, shape, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
    else:
        print(format_summary(s, all_layers=args.all, title=f"{args.model} at {'x'.join(map(str, shape))}"))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the registered models with parameters and multiply-adds",
        description=(
            "List registered models with parameter counts and multiply-adds (MACs) for one image.\n"
            "Each model is measured at its default input: the builder's img_size if it has one,\n"
            "else 224x224 for ImageNet models (1000 classes) and 32x32 for CIFAR-sized ones."
        ),
        epilog="examples:\n  cnnlab models\n  cnnlab models 'resnet*'\n  cnnlab models 'vgg*' --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pattern", nargs="?", default=None, help="glob pattern on model names, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser(
        "summary",
        help="per-layer output shape, activation size, parameters and multiply-adds of a model",
        description=(
            "Print one row per layer: output shape, activation size, parameters and multiply-adds\n"
            "(conv and linear layers, the convention of published FLOP counts), with totals.\n"
            "Activation and dropout layers are hidden unless --all is given."
        ),
        epilog=(
            "examples:\n  cnnlab summary lenet5 --input 3x32x32      the course's LeNet-5 table\n"
            "  cnnlab summary resnet50 --input 3x224x224  4.09G multiply-adds"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="registered model name (see `cnnlab models`)")
    p.add_argument("--input", default=None, metavar="CxHxW", help=INPUT_HELP + "; default: the model's (see `cnnlab models`)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    p.add_argument("--all", action="store_true", help="also show activation, dropout and flatten layers")
    p.add_argument("--json", action="store_true", help="print the rows and totals as JSON")
    p.set_defaults(func=cmd_summary)
