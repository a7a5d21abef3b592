"""Character-level language model on Shakespeare: validation loss against training time on this machine.

Runs ``cnnlab train charlm --recipe NAME`` (the plain command, through the normal engine) for each
seed and, in the same process, the peer: the same network trained the conventional way, following
PyTorch's ``word_language_model`` example at character level (plain SGD at lr 20, gradient clipping
0.25, bptt 35, batch 20, dropout 0.2, learning rate divided by 4 whenever validation stops improving),
for the same wall time. Both are scored on held-out Hamlet in nats/char by the same evaluation.
Prints JSON: per run the (train seconds, val loss) curve, the final val loss, characters/s and the
matmul utilization against the peak measured in this run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.data.text import TextStreams, Vocab, load_texts  # noqa: E402
from cnnlab.engine.pipeline import train  # noqa: E402
from cnnlab.models.language import CharLM, detach_state  # noqa: E402
from cnnlab.tasks.charlm import RECIPES, CharLMConfig, CharLMTask  # noqa: E402


def train_flops_per_char(cfg: dict[str, Any], vocab: int) -> float:
    """Matmul FLOPs per character of one training step: forward 2 * MACs, backward twice that."""
    E, H, L = cfg["embed"], cfg["hidden"], cfg["layers"]
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cfg["cell"]]
    macs = sum(gates * H * ((E if l == 0 else H) + H) for l in range(L)) + H * vocab
    return 3 * 2 * macs


def run_recipe(name: str, seed: int, threads: int, out_root: Path) -> dict[str, Any]:
    cfg = CharLMConfig(**RECIPES[name], recipe=name, seed=seed, threads=threads, quiet=True, tensorboard=False,
                       out=str(out_root / f"{name}-seed{seed}"), task="charlm").validate()
    run_dir, result, summary = train(cfg)
    rows = common.read_metrics_csv(Path(run_dir) / "metrics.csv")
    curve = [(float(r["train_seconds"]), float(r["val_loss"])) for r in rows]
    chars = sum(float(r["images_per_s"]) * float(r["epoch_seconds"]) for r in rows)
    return {"recipe": name, "seed": seed, "val_loss": summary["val_loss"], "bpc": summary["bpc"],
            "train_seconds": summary["train_seconds"], "curve": curve, "chars": chars,
            "precision": json.loads((Path(run_dir) / "config.json").read_text())["precision"],  # as resolved
            "chars_per_s": chars / max(1e-9, summary["train_seconds"]), "run_dir": str(run_dir)}


@torch.no_grad()
def evaluate(model: CharLM, val: torch.Tensor) -> float:
    """Nats/char on the validation ids, exactly as the charlm task scores it (its eval streams)."""
    task = CharLMTask(CharLMConfig(task="charlm"))
    streams = task.eval_loader(CharLMConfig(task="charlm"), None, val)
    model.eval()
    total, n, state = 0.0, 0, None
    for b in streams:
        logits, state = model(b["tokens"], None if b["first"] else state)
        total += float(F.cross_entropy(logits.flatten(0, 1), b["targets"].flatten(), reduction="sum"))
        n += b["targets"].numel()
    model.train()
    return total / n


def run_peer(shape: dict[str, Any], budget_s: float, seed: int, eval_every_s: float = 60.0) -> dict[str, Any]:
    """PyTorch's word_language_model recipe at character level, for ``budget_s`` seconds of training."""
    torch.manual_seed(seed)
    train_text, val_text, _ = load_texts("shakespeare")
    vocab = Vocab.from_text(train_text)
    tr, va = vocab.encode(train_text), vocab.encode(val_text)
    model = CharLM(len(vocab), shape["embed"], shape["hidden"], shape["layers"], shape["cell"], dropout=0.2)
    lr, best, curve = 20.0, math.inf, []
    streams = TextStreams(tr, 20, 35)
    elapsed, next_eval, state, k, chars = 0.0, eval_every_s, None, 0, 0
    while elapsed < budget_s:
        t0 = time.perf_counter()
        b = streams.chunk(k)
        k += 1
        logits, state = model(b["tokens"], None if b["first"] else detach_state(state))
        loss = F.cross_entropy(logits.flatten(0, 1), b["targets"].flatten())
        model.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
        chars += b["tokens"].numel()
        elapsed += time.perf_counter() - t0
        if elapsed >= next_eval or elapsed >= budget_s:
            v = evaluate(model, va)
            curve.append((elapsed, v))
            if v < best:
                best = v
            else:
                lr /= 4.0  # the example anneals when validation stops improving
            next_eval += eval_every_s
    return {"recipe": "peer (word_language_model recipe)", "seed": seed, "val_loss": best, "bpc": best / math.log(2),
            "train_seconds": elapsed, "curve": curve, "chars": chars, "chars_per_s": chars / elapsed}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=["fast"], choices=list(RECIPES))
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe (default 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-peer", action="store_true", help="skip the peer")
    p.add_argument("--out", help="folder for the run folders (default: a temporary one)")
    p.add_argument("--json", help="also write the JSON report here")
    p.add_argument("--plot", help="also draw val loss against training time here (PNG)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = common.matmul_peak_gflops()
    bf16_peak: list[float] = []

    def peak_for(precision: str) -> float:
        """The matmul peak a run's utilization is read against: fp32, or bf16 for a bf16 run (measured once)."""
        if precision != "bf16":
            return peak
        if not bf16_peak:
            bf16_peak.append(common.matmul_peak_gflops(dtype=torch.bfloat16))
        return bf16_peak[0]

    out_root = Path(args.out or tempfile.mkdtemp(prefix="charlm-bench-"))
    runs = []
    for name in args.recipes:
        for seed in range(args.seeds):
            r = run_recipe(name, seed, args.threads, out_root)
            vocab = 85
            r["mfu"] = r["chars_per_s"] * train_flops_per_char(RECIPES[name], vocab) / (peak_for(r["precision"]) * 1e9)
            runs.append(r)
            print(f"{name} seed {seed}: val {r['val_loss']:.4f} nats/char after {r['train_seconds']:.0f} s "
                  f"({r['chars_per_s']:.0f} chars/s)", file=sys.stderr)
    if not args.no_peer:
        first = args.recipes[0]
        budget = max(r["train_seconds"] for r in runs if r["recipe"] == first)
        peer = run_peer(RECIPES[first], budget, 0)
        peer["mfu"] = peer["chars_per_s"] * train_flops_per_char(RECIPES[first], 85) / (peak * 1e9)
        runs.append(peer)
        print(f"peer: val {peer['val_loss']:.4f} nats/char after {peer['train_seconds']:.0f} s", file=sys.stderr)
    peak = max(peak, common.matmul_peak_gflops())
    summary = {}
    for name in args.recipes:
        mine = [r for r in runs if r["recipe"] == name]
        summary[name] = {"val_loss": common.mean_spread([r["val_loss"] for r in mine]),
                         "train_seconds": common.mean_spread([r["train_seconds"] for r in mine]),
                         "chars_per_s": common.mean_spread([r["chars_per_s"] for r in mine])}
    report = common.to_jsonable({"benchmark": "charlm", "environment": common.environment(), "peak_gflops": peak,
                                 "peak_gflops_bf16": bf16_peak[0] if bf16_peak else None,
                                 "data": "shakespeare, modern-spelling plays, hamlet held out", "recipes": RECIPES,
                                 "summary": summary, "runs": runs})
    rows = [[r["recipe"], r["seed"], common.fmt(r["val_loss"]), common.fmt(r["bpc"]), common.fmt(r["train_seconds"]),
             common.fmt(r["chars_per_s"]), common.fmt(r["mfu"], pct=True) + " %"] for r in runs]
    table = common.markdown_table(["recipe", "seed", "val nats/char", "bits/char", "train s", "chars/s", "MFU"], rows)
    if args.plot:
        plot(runs, Path(args.plot))
    common.emit_report(report, table, args.json)
    return report


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in runs:
        xs, ys = zip(*r["curve"])
        ax.plot(xs, ys, marker="o", ms=3, label=f"{r['recipe']} (seed {r['seed']})")
    ax.axhline(1.5, color="grey", ls="--", lw=1, label="goal 1.50")
    ax.set(xlabel="training seconds (2 cores)", ylabel="val loss on Hamlet (nats/char)", ylim=(1.2, 2.6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
