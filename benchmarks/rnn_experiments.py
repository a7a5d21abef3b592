"""The course's claims about recurrent nets, measured on Shakespeare (plots + JSON for docs/sequences.md).

1. gradients: ||dL/dh_t|| against the distance from the loss for a vanilla RNN and an LSTM of the same
   size, at initialization and after training, with the largest singular value of W_hh; and a vanilla
   RNN trained with and without gradient clipping at a high learning rate.
2. cells: vanilla RNN vs LSTM vs GRU at (about) equal parameter count and equal training time,
   validation loss against seconds.
Every training run is `cnnlab train charlm` through the normal engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.data.text import Vocab, load_texts  # noqa: E402
from cnnlab.engine.evaluate import load_task  # noqa: E402
from cnnlab.engine.pipeline import train  # noqa: E402
from cnnlab.models.language import CharLM  # noqa: E402
from cnnlab.models.language.gradients import gradient_by_distance, largest_singular_value  # noqa: E402
from cnnlab.tasks.charlm import CharLMConfig  # noqa: E402


def charlm_run(out: Path, **kw) -> tuple[Path, list[dict[str, Any]]]:
    base = dict(task="charlm", quiet=True, tensorboard=False, out=str(out))
    cfg = CharLMConfig(**(base | kw)).validate()
    run_dir, _, _ = train(cfg)
    return Path(run_dir), common.read_metrics_csv(Path(run_dir) / "metrics.csv")


def params(cell: str, hidden: int, layers: int, embed: int = 64, vocab: int = 85) -> int:
    return sum(p.numel() for p in CharLM(vocab, embed, hidden, layers, cell).parameters())


def matched_hidden(cell: str, target: int, layers: int) -> int:
    """The hidden size whose parameter count is closest to ``target``."""
    return min(range(16, 2049, 8), key=lambda h: abs(params(cell, h, layers) - target))


def speed(cell: str, hidden: int, layers: int, batch: int = 64, bptt: int = 128) -> float:
    """Training characters/s of one configuration (a few timed steps)."""
    model = CharLM(85, 64, hidden, layers, cell)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    x = torch.randint(0, 85, (batch, bptt))

    def step():
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return batch * bptt / common.best_time(step, repeat=3, warmup=1)


def gradients_experiment(root: Path, epochs: int, epoch_chars: int, hidden: int, seq: int,
                         args_lr: float = 4.0) -> dict[str, Any]:
    _, val_text, _ = load_texts("shakespeare")
    result: dict[str, Any] = {"hidden": hidden, "sequence": seq, "sgd_lr": args_lr, "runs": {}}
    for cell in ("rnn", "lstm"):
        run_dir, rows = charlm_run(root / f"grad-{cell}", cell=cell, layers=1, hidden=hidden, epochs=epochs,
                                   epoch_chars=epoch_chars, lr=3e-3, batch_size=16, grad_clip=1.0)
        task, trained, meta, _ = load_task(run_dir)
        vocab = Vocab(meta["vocab"])
        ids = vocab.encode(val_text[: 16 * (seq + 1)]).view(16, seq + 1)
        torch.manual_seed(0)
        fresh = task.create_network(meta)
        entry = {}
        for label, model in (("init", fresh), ("trained", trained)):
            model.rnn.fused = False
            entry[label] = {"grad_norms": gradient_by_distance(model, ids).tolist(),
                            "sigma_max_whh": largest_singular_value(model)}
        entry["val_loss"] = rows[-1]["val_loss"]
        result["runs"][cell] = entry
    # exploding gradients: a vanilla RNN trained by plain SGD at a high learning rate, with and without clipping
    for clip in (1.0, None):
        name = f"clip{clip}" if clip else "noclip"
        _, rows = charlm_run(root / f"explode-{name}", cell="rnn", layers=1, hidden=hidden, epochs=epochs,
                             epoch_chars=epoch_chars, optimizer="sgd", lr=args_lr, batch_size=16, schedule="none", grad_clip=clip,
                             skip_nonfinite=True)
        result["runs"][f"rnn_sgd_{name}"] = {
            "val_loss": [r["val_loss"] for r in rows], "train_loss": [r["train_loss"] for r in rows],
            "clipped_fraction": [r.get("train_clipped") for r in rows], "grad_norm": [r.get("train_grad_norm") for r in rows],
            "skipped_batches": rows[-1]["skipped_batches"]}
    return result


def cells_experiment(root: Path, seconds: float, target_params: int, layers: int) -> dict[str, Any]:
    out: dict[str, Any] = {"target_params": target_params, "seconds": seconds, "runs": {}}
    for cell in ("rnn", "lstm", "gru"):
        hidden = matched_hidden(cell, target_params, layers)
        cps = speed(cell, hidden, layers)
        epochs = 6
        epoch_chars = int(cps * seconds / epochs)  # equal wall time: faster cells see more characters
        t0 = time.perf_counter()
        _, rows = charlm_run(root / f"cells-{cell}", cell=cell, layers=layers, hidden=hidden, epochs=epochs,
                             epoch_chars=epoch_chars, lr=3e-3, grad_clip=1.0, warmup_epochs=0.1)
        out["runs"][cell] = {"hidden": hidden, "parameters": params(cell, hidden, layers), "chars_per_s": cps,
                             "curve": [(r["train_seconds"], r["val_loss"]) for r in rows],
                             "val_loss": rows[-1]["val_loss"], "wall_seconds": time.perf_counter() - t0}
        print(f"{cell} h{hidden}: val {rows[-1]['val_loss']:.4f} after {rows[-1]['train_seconds']:.0f} s", file=sys.stderr)
    return out


def plot(report: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    g = report.get("gradients")
    if g:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        for cell, color in (("rnn", "tab:red"), ("lstm", "tab:blue")):
            for label, ls in (("init", "--"), ("trained", "-")):
                e = g["runs"][cell][label]
                ax.semilogy(e["grad_norms"], ls, color=color,
                            label=f"{'vanilla RNN' if cell == 'rnn' else 'LSTM'} {label} (sigma_max W_hh {e['sigma_max_whh']:.2f})")
        ax.set(xlabel="distance from the loss (steps back)", ylabel="||dL/dh_t||", title="gradient flow through time")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        ax = axes[1]
        for name, color in (("rnn_sgd_clip1.0", "tab:green"), ("rnn_sgd_noclip", "tab:red")):
            e = g["runs"][name]
            ys = [v if v is not None and v == v else float("nan") for v in e["train_loss"]]
            ax.plot(range(1, len(ys) + 1), ys, marker="o", color=color,
                    label=f"{'clip 1.0' if 'clip1' in name else 'no clipping'} (skipped non-finite batches: {int(e['skipped_batches'])})")
        ax.set(xlabel="epoch", ylabel="train loss (nats/char)", title=f"vanilla RNN, SGD lr {g['sgd_lr']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "sequences_gradient_flow.png", dpi=110)
        plt.close(fig)
    c = report.get("cells")
    if c:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for cell, e in c["runs"].items():
            xs, ys = zip(*e["curve"])
            ax.plot(xs, ys, marker="o", label=f"{cell} (hidden {e['hidden']}, {e['parameters'] / 1e6:.2f}M params)")
        ax.set(xlabel="training seconds (2 cores)", ylabel="val loss on Hamlet (nats/char)",
               title="equal parameters, equal time")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "sequences_cells.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiments", nargs="+", default=["gradients", "cells"], choices=["gradients", "cells"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grad-epochs", type=int, default=4)
    p.add_argument("--grad-epoch-chars", type=int, default=800_000)
    p.add_argument("--sgd-lr", type=float, default=4.0, help="learning rate of the clipping comparison (default 4)")
    p.add_argument("--grad-hidden", type=int, default=128)
    p.add_argument("--seq", type=int, default=100, help="sequence length of the gradient-flow measurement")
    p.add_argument("--cells-seconds", type=float, default=120.0, help="training seconds per cell (default 120)")
    p.add_argument("--cells-params", type=int, default=800_000, help="parameter count to match (default 0.8M)")
    p.add_argument("--cells-layers", type=int, default=2)
    p.add_argument("--out", help="folder for the run folders (default: a temporary one)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--plots", help="write the figures into this folder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="rnn-exp-"))
    report: dict[str, Any] = {"benchmark": "rnn_experiments", "environment": common.environment()}
    if "gradients" in args.experiments:
        report["gradients"] = gradients_experiment(root, args.grad_epochs, args.grad_epoch_chars, args.grad_hidden, args.seq,
                                                   args.sgd_lr)
    if "cells" in args.experiments:
        report["cells"] = cells_experiment(root, args.cells_seconds, args.cells_params, args.cells_layers)
    report = common.to_jsonable(report)
    if args.plots:
        plot(report, Path(args.plots))
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
