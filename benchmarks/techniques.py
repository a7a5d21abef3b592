"""Which training techniques pay on this CPU? One change at a time against a recipe, measured.

Two parts, each a list of variants of one recipe (default ``fast``):

- ``--part step``: images/s of the whole training step (forward, loss, backward, optimizer) on one
  fixed in-memory batch, with memory format, torch.compile, precision (fp32 / bf16 autocast), threads
  and batch size changed one at a time; with the matmul peaks (fp32, and bf16 for bf16 rows) measured in
  the same process, so each is also an MFU.
- ``--part train``: the recipe trained on Fashion-MNIST with one setting changed (label smoothing,
  flips, flip TTA, EMA, schedule, init, crops), reporting the final test accuracy and training
  seconds next to the unchanged recipe.

JSON goes to stdout (and --json FILE), a Markdown table to stderr (and --markdown FILE).

    python benchmarks/techniques.py --part step --threads 2                    # about a minute
    python benchmarks/techniques.py --part train --threads 2 --seeds 1         # about 2 minutes per variant
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.tasks.classify import ClassifyConfig as TrainConfig  # noqa: E402
from cnnlab.engine.recipes import resolved_recipes  # noqa: E402

RECIPES = resolved_recipes()  # precision "auto" resolved for this CPU: what the runs compute in

# (name, what changes) for the step part; each entry is applied alone on top of the recipe
STEP_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("recipe", {}),
    ("contiguous (NCHW)", {"channels_last": False}),
    ("torch.compile", {"compile": True}),
    ("fp32", {"precision": "fp32"}),
    ("bf16 autocast", {"precision": "bf16"}),
    ("1 thread", {"threads": 1}),
    ("batch 64", {"batch_size": 64}),
    ("batch 256", {"batch_size": 256}),
]

# (name, TrainConfig changes) for the train part; a change may be a function of the recipe's settings
TRAIN_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("recipe", {}),
    ("fp32 instead of bf16", {"precision": "fp32"}),
    ("bf16 instead of fp32", {"precision": "bf16"}),
    ("+ random erasing 0.5", {"augment": lambda r: _add_augment(r.get("augment", "none"), "erase=0.5")}),
    ("no label smoothing", {"label_smoothing": 0.0}),
    ("no flips", {"augment": "none"}),
    ("no flip TTA", {"eval_tta": "none"}),
    ("+ EMA 0.999", {"ema": 0.999}),
    ("cosine instead of one-cycle", {"schedule": "cosine"}),
    ("+ padded crops (2 px)", {"augment": "hflip,crop=2"}),
    ("+ LSUV init", {"init": "lsuv"}),
    ("no progressive resizing", {"progressive_resize": "none"}),
    ("+ progressive resizing 16:0.5", {"progressive_resize": "16:0.5"}),
]


def _add_augment(spec: str, item: str) -> str:
    return item if spec in ("", "none") else f"{spec},{item}"


def resolve_change(recipe: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The variant's settings for this recipe (functions of the recipe evaluated)."""
    return {k: v(recipe) if callable(v) else v for k, v in change.items()}


def is_noop(recipe: dict[str, Any], change: dict[str, Any]) -> bool:
    """Whether the variant changes nothing in this recipe (e.g. "bf16" on a bf16 recipe): it is then left out."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    resolved = resolve_change(recipe, change)
    return bool(resolved) and all(recipe.get(k, defaults.get(k)) == v for k, v in resolved.items())


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- step part
def step_images_per_s(recipe: dict[str, Any], change: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Images/s of the recipe's training step with ``change`` applied, on a fixed random batch."""
    from cnnlab.engine.optim import build_optimizer
    from cnnlab.models import create_model

    fields = dict(recipe, **change)
    threads = fields.pop("threads", args.threads)
    cfg = TrainConfig(**{k: v for k, v in fields.items() if k in TrainConfig.__dataclass_fields__})
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = create_model(cfg.model, num_classes=10, in_chans=1, **cfg.model_kwargs)
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        model = model.to(memory_format=memory).train()
        optimizer = build_optimizer(model, cfg)
        net = torch.compile(model) if cfg.compile else model
        x = torch.randn(cfg.batch_size, 1, 28, 28).contiguous(memory_format=memory)  # (B, 1, 28, 28)
        y = torch.randint(0, 10, (cfg.batch_size,))
        bf16 = cfg.precision == "bf16"

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(net(x).float(), y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            optimizer.step()

        if cfg.compile:
            step()  # compile outside the timed loops
        res = common.measure_step(step, cfg.batch_size, steps=args.step_steps, rounds=args.step_rounds)
        macs = common.forward_macs(model, (1, 28, 28))
        peaks = common.peaks(cfg.precision, args.peak_sizes, args.peak_repeat)
        peak = peaks[cfg.precision]  # MFU against the peak of the dtype the step computes in
        util = common.utilization(res["images_per_s"], common.training_flops(macs), peak)
        return dict(res, threads=torch.get_num_threads(), precision=cfg.precision, peak_gflops=peak,
                    peak_gflops_fp32=peaks["fp32"], mfu_fp32_peak=util["achieved_gflops"] / peaks["fp32"], **util)
    finally:
        torch.set_num_threads(previous)


def run_step_part(recipe_name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    recipe = RECIPES[recipe_name]
    rows = []
    for name, change in STEP_VARIANTS:
        if (change.get("compile") and not args.compile) or is_noop(recipe, change):
            continue
        try:
            res = step_images_per_s(recipe, change, args)
        except Exception as e:  # a technique this machine cannot run (e.g. no compiler for torch.compile)
            log(f"  {name}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            rows.append({"part": "step", "recipe": recipe_name, "variant": name, "change": change, "error": str(e)[:500]})
            continue
        log(f"  {name}: {res['images_per_s']:.0f} img/s, MFU {res['mfu']:.3f}")
        rows.append({"part": "step", "recipe": recipe_name, "variant": name, "change": change, **res})
    base = rows[0]["images_per_s"]
    for r in rows:
        if "images_per_s" in r:
            r["speed_vs_recipe"] = r["images_per_s"] / base
    return rows


# ---------------------------------------------------------------- train part
def train_variant(recipe_name: str, change: dict[str, Any], seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from cnnlab.engine.pipeline import train as train_classifier

    fields = dict(RECIPES[recipe_name], **resolve_change(RECIPES[recipe_name], change))
    epochs = max(1, round(fields.get("epochs", TrainConfig.epochs) * args.epochs_scale))
    cfg = TrainConfig(**dict(fields, epochs=epochs, data="fashion-mnist", seed=seed, threads=args.threads, limit=args.limit,
                             limit_test=args.limit, val_fraction=0.0, track_test=True, quiet=True, tensorboard=False, out=str(out), recipe=recipe_name,
                             device="cpu"))
    with contextlib.redirect_stdout(sys.stderr):
        run_dir, result, summary = train_classifier(cfg)
    rows = common.read_metrics_csv(Path(run_dir) / "metrics.csv")
    curve = common.curve_from_rows(rows, "test_acc")
    return {"final_acc": summary["test_acc"], "train_seconds": curve[-1][0], "curve": [list(p) for p in curve],
            "epochs": epochs, "status": result.status}


def run_train_part(recipe_name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-techniques-") as tmp:
        for i, (name, change) in enumerate(TRAIN_VARIANTS):
            if (args.only and name not in args.only) or is_noop(RECIPES[recipe_name], change):
                continue
            runs = []
            for seed in range(args.seed0, args.seed0 + args.seeds):
                res = train_variant(recipe_name, change, seed, args, Path(tmp) / f"v{i}-s{seed}")
                log(f"  {name} seed {seed}: test acc {res['final_acc']:.4f}, {res['train_seconds']:.1f} s")
                runs.append(dict(res, seed=seed))
            rows.append({"part": "train", "recipe": recipe_name, "variant": name,
                         "change": resolve_change(RECIPES[recipe_name], change), "runs": runs,
                         "final_acc": common.mean_spread([r["final_acc"] for r in runs]),
                         "train_seconds": common.mean_spread([r["train_seconds"] for r in runs])})
    base = next((r for r in rows if r["variant"] == "recipe"), None)
    for r in rows:
        if base is not None:
            r["acc_change_vs_recipe"] = r["final_acc"]["mean"] - base["final_acc"]["mean"]
    return rows


# ---------------------------------------------------------------- output
def render_markdown(report: dict[str, Any]) -> str:
    f = common.fmt
    out = []
    step = [r for r in report["rows"] if r["part"] == "step"]
    if step:
        headers = ["step variant", "precision", "batch", "threads", "images/s", "vs recipe", "GFLOP/s",
                   "MFU % of its precision's peak", "MFU % of fp32 peak"]
        rows = [[r["variant"], "-", "-", "-", "failed", "-", "-", "-", "-"] if "error" in r else
                [r["variant"], r["precision"], r["batch_size"], r["threads"], f(r["images_per_s"]), f"{r['speed_vs_recipe']:.2f}x",
                 f(r["achieved_gflops"]), f(r["mfu"], 3, pct=True), f(r["mfu_fp32_peak"], 3, pct=True)] for r in step]
        out += [common.markdown_table(headers, rows), ""]
    train = [r for r in report["rows"] if r["part"] == "train"]
    if train:
        headers = ["trained variant", "seeds", "test acc %", "change (points)", "train s"]
        rows = [[r["variant"], len(r["runs"]), f(r["final_acc"], 4, pct=True),
                 "-" if r["variant"] == "recipe" or "acc_change_vs_recipe" not in r else f"{100 * r['acc_change_vs_recipe']:+.2f}",
                 f(r["train_seconds"])] for r in train]
        out += [common.markdown_table(headers, rows), ""]
    env = report["environment"]
    out.append(f"Recipe `{report['recipe']}` on Fashion-MNIST; torch {env['torch']}, {env['torch_threads']} threads on {env['cpu']}; "
               f"load average {env['load_average_1m']} at start. One change per row; the step part times a fixed random batch.")
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="fast", help="the recipe the variants change")
    ap.add_argument("--part", choices=["step", "train", "both"], default="step")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated train variant names to run (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="train on this many images (quick checks)")
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="include the torch.compile variant")
    ap.add_argument("--step-steps", type=int, default=20)
    ap.add_argument("--step-rounds", type=int, default=3)
    ap.add_argument("--peak-sizes", default="1024,1536,2048")
    ap.add_argument("--peak-repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    if args.recipe not in RECIPES:
        ap.error(f"--recipe: unknown recipe {args.recipe!r}; choose from {', '.join(RECIPES)}")
    names = {n for n, _ in TRAIN_VARIANTS}
    args.only = [s.strip() for s in args.only.split(",")] if args.only else None
    if args.only and set(args.only) - names:
        ap.error(f"--only: unknown variant {sorted(set(args.only) - names)[0]!r}; choose from: {', '.join(sorted(names))}")
    args.peak_sizes = [int(n) for n in str(args.peak_sizes).split(",")]
    if args.seeds < 1 or args.epochs_scale <= 0:
        ap.error("--seeds must be at least 1 and --epochs-scale positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = common.environment()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if args.part in ("step", "both"):
        log(f"step variants of recipe {args.recipe}")
        rows += run_step_part(args.recipe, args)
    if args.part in ("train", "both"):
        log(f"trained variants of recipe {args.recipe}")
        rows += run_train_part(args.recipe, args)
    report = common.to_jsonable({"benchmark": "techniques", "recipe": args.recipe, "settings": RECIPES[args.recipe],
                                 "environment": env, "wall_seconds": time.perf_counter() - t0, "rows": rows})
    common.emit_report(report, render_markdown(report), args.json, args.markdown)
    return report


if __name__ == "__main__":
    main()
