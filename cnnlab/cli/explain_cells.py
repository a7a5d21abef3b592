"""`cnnlab explain-cells RUN_DIR --text FILE`: hidden units of a character language model that track the text."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnlab explain-cells runs/charlm-charlm-x --text play.txt --out cells/
  cnnlab explain-cells runs/charlm-charlm-x --text code.py --chars 4000 --unit 117"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain-cells", help="find the hidden units of a charlm run that track quotes, line position, ...",
                       description="Run a character language model over a text, correlate every hidden unit with simple "
                                   "features (inside quotes, position in line, indentation, inside brackets) and draw the "
                                   "best unit's value over the text (HTML and PNG heat maps).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `cnnlab train charlm` run folder")
    p.add_argument("--text", required=True, help="a UTF-8 text file to read")
    p.add_argument("--chars", type=int, default=20000, help="read at most this many characters (default 20000)")
    p.add_argument("--show-from", type=int, default=0, help="draw the heat maps from this character on (default 0)")
    p.add_argument("--unit", type=int, default=None, help="also draw this unit (index over all layers' units)")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/cells)")
    p.set_defaults(func=run_explain_cells)


def run_explain_cells(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from cnnlab.data.text import Vocab, read_text
    from cnnlab.engine.checkpoint import atomic_write_bytes
    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError
    from cnnlab.models.language.interpret import correlate, heatmap_html, heatmap_png, hidden_activations, text_features

    if args.chars < 2:
        raise ConfigError(f"--chars {args.chars}: must be at least 2")
    task, model, meta, _ = load_task(args.run_dir)
    if task.name != "charlm":
        raise ConfigError(f"{args.run_dir} is a {task.name} run; explain-cells takes a charlm run")
    text = read_text(args.text, "--text")[: args.chars]
    acts = hidden_activations(model, Vocab(meta["vocab"]).encode(text))  # (N, L*H)
    if args.unit is not None and not 0 <= args.unit < acts.shape[1]:
        raise ConfigError(f"--unit {args.unit}: the model has {acts.shape[1]} units (0..{acts.shape[1] - 1})")
    found = correlate(acts, text_features(text))
    out = Path(args.out) if args.out else Path(args.run_dir) / "cells"
    out.mkdir(parents=True, exist_ok=True)
    hidden = meta["hidden"]
    drawn = [(name, f["unit"], f"r = {f['r']:+.2f} with {name}") for name, f in found.items()]
    if args.unit is not None:
        drawn.append((f"unit{args.unit}", args.unit, "chosen unit"))
    for name, unit, what in drawn:
        title = f"unit {unit} (layer {unit // hidden + 1}, #{unit % hidden}): {what}"
        a = min(max(0, args.show_from), len(text) - 1)
        atomic_write_bytes(out / f"{name}.html", heatmap_html(text[a:a + 5000], acts[a:a + 5000, unit], title).encode())
        heatmap_png(text[a:], acts[a:, unit], out / f"{name}.png", title)
        print(f"{name}: {title} -> {out / (name + '.png')}")
    if not found:
        print("note: the text has no quotes, line structure or brackets to correlate with")
    atomic_write_bytes(out / "cells.json", json.dumps({"text": args.text, "chars": len(text), "features": found},
                                                      indent=2).encode())
    return 0
