"""How fast do cnnlab's training recipes learn Fashion-MNIST on this CPU, against the machine's peak
and against the conventional PyTorch-example baseline?

For every recipe and seed: training images/s, achieved GFLOP/s and MFU (end to end, data pipeline
included), step MFU (the forward + backward + optimizer step alone on a fixed batch), time to the
target test accuracy, final test accuracy (with the recipe's test-time augmentation); mean and
spread over seeds; and two ratios to the baseline (benchmarks/baseline.py): the speedup to the
baseline's final accuracy and the accuracy at equal training time. The rules are in common.py and
in the report's "conventions". The peak is measured in this process before and after each run
(the higher counts: the less disturbed by other work on the machine).

JSON goes to stdout (and --json FILE), the Markdown table to stderr (and --markdown FILE), so
``> report.json`` stays valid JSON; progress lines go to stderr.

    python benchmarks/fashion_mnist_speed.py --recipes fast,best --target fast=0.92,best=0.94 --seeds 3
    python benchmarks/fashion_mnist_speed.py --recipes fast --seeds 1 --limit 2000 --epochs-scale 0.25  # quick check
    python benchmarks/fashion_mnist_speed.py merge a.json b.json --json all.json --markdown all.md  # pool reports
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
import baseline as base  # noqa: E402
import common  # noqa: E402

from cnnlab.tasks.classify import ClassifyConfig as TrainConfig  # noqa: E402
from cnnlab.engine.recipes import resolved_recipes  # noqa: E402

RECIPES = resolved_recipes()  # precision "auto" resolved for this CPU: what the runs compute in

CHANCE = 0.1  # ten classes: the accuracy at 0 seconds for the equal-time rule
BUDGETS = {"fast": 120.0, "best": 1200.0}  # the time limits: 93% in 2 minutes, 95% in 20 minutes


def default_budgets(recipes) -> dict[str, float]:
    """The time budgets (BUDGETS) of those of ``recipes`` that have one."""
    return {r: b for r, b in BUDGETS.items() if r in recipes}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- recipe runs
def recipe_config(name: str, seed: int, args: argparse.Namespace, out: Path) -> TrainConfig:
    """The recipe's TrainConfig as ``--recipe NAME`` gives it, plus this benchmark's runtime settings."""
    fields = dict(RECIPES[name])
    epochs = max(1, round(fields.get("epochs", TrainConfig.epochs) * args.epochs_scale))
    warmup = fields.get("warmup_epochs", 0.0) * epochs / fields.get("epochs", TrainConfig.epochs)
    fields.update(epochs=epochs, warmup_epochs=warmup if warmup < epochs else 0.0)
    cfg = TrainConfig(**fields)
    return dataclasses.replace(cfg, data="fashion-mnist", seed=seed, threads=args.threads, limit=args.limit,
                               limit_test=args.limit_test, val_fraction=0.0, track_test=True, quiet=True, tensorboard=False,
                               out=str(out), recipe=name, device="cpu")


def step_benchmark(cfg: TrainConfig, data, args: argparse.Namespace) -> dict[str, Any]:
    """Images/s of the recipe's whole training step (forward, loss, backward, clip, optimizer, EMA) on one
    fixed normalized batch of training images, with the model built exactly as the run builds it."""
    from cnnlab.data.normalize import compute_normalization
    from cnnlab.engine.optim import EMA, build_optimizer
    from cnnlab.tasks.classify import setup

    torch.manual_seed(cfg.seed)
    task, _ = setup(cfg)
    task.meta.update(data.meta)
    model = task.build_model(cfg, data)
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    optimizer = build_optimizer(model, cfg)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    net = torch.compile(model) if cfg.compile else model
    idx = torch.arange(cfg.batch_size) % len(data.train)
    x = data.train.images[idx].float() / 255  # (B, C, H, W) in [0, 1]
    if cfg.normalize != "none":
        x = compute_normalization(data.train, cfg.normalize)(x)
    x, y = x.contiguous(memory_format=memory), data.train.labels[idx]

    bf16 = cfg.precision == "bf16"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as the Trainer runs the step
            loss = task.training_step(net, {"images": x, "labels": y})["loss"]
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(model)

    model.train()
    return common.measure_step(step, cfg.batch_size, steps=args.step_steps, rounds=args.step_rounds)


def run_recipe(name: str, seed: int, target: float | None, args: argparse.Namespace, runs_root: Path) -> dict[str, Any]:
    from cnnlab.engine.pipeline import train as train_classifier
    from cnnlab.tasks.classify import setup

    cfg = recipe_config(name, seed, args, runs_root / f"{name}-seed{seed}")
    peak_before = common.peaks(cfg.precision, args.peak_sizes, args.peak_repeat)
    log(f"{name} seed {seed}: {cfg.model} {cfg.model_kwargs}, {cfg.epochs} epochs, {cfg.precision} "
        f"(peak {', '.join(f'{k} {v:.1f}' for k, v in peak_before.items())} GFLOP/s)")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        run_dir, result, summary = train_classifier(cfg)
    wall = time.perf_counter() - t0
    if result.status != "finished" or summary.get("test_acc") is None:
        raise RuntimeError(f"recipe {name} seed {seed} did not finish ({result.status})")
    rows = common.read_metrics_csv(Path(run_dir) / "metrics.csv")
    curve = common.curve_from_rows(rows, "test_acc")
    train_s = curve[-1][0]
    images = sum(r["images_per_s"] * r["epoch_seconds"] for r in rows)  # drop_last: what was trained on
    cfg = cfg.resolved()
    task, data = setup(cfg)
    input_size = (data.meta["in_chans"], *data.meta["img_size"])
    model = task.build_model(cfg, data)
    macs = common.forward_macs(model, input_size)
    flops = common.training_flops(macs)  # per image at full size: what the step benchmark runs
    # under progressive resizing the early epochs train on smaller, cheaper images: count each epoch at its size
    sizes = common.epoch_sizes(cfg.progressive_resize, cfg.epochs, tuple(data.meta["img_size"]))
    macs_at = {s: common.forward_macs(model, (data.meta["in_chans"], *s)) for s in set(sizes)}
    trained_flops = common.training_flops(round(sum(macs_at[s] for s in sizes) / len(sizes)))
    step = step_benchmark(cfg, data, args)
    peak_after = common.peaks(cfg.precision, args.peak_sizes, args.peak_repeat)
    best_peaks = {k: max(peak_before[k], peak_after[k]) for k in peak_before}
    peak = best_peaks[cfg.precision]  # MFU against the peak of the dtype the run computes in
    ips = images / train_s
    e2e, st = common.utilization(ips, trained_flops, peak), common.utilization(step["images_per_s"], flops, peak)
    tta_s = common.time_to_accuracy(curve, target) if target is not None else None
    out = {
        "kind": "run", "recipe": name, "seed": seed, "model": cfg.model, "model_kwargs": cfg.model_kwargs,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "train_images": len(data.train), "test_images": len(data.test),
        "input_size": list(input_size), "threads": torch.get_num_threads(), "precision": cfg.precision,
        "peak_gflops": peak, "peak_gflops_fp32": best_peaks["fp32"], "peak_gflops_before": peak_before[cfg.precision],
        "peak_gflops_after": peak_after[cfg.precision], "macs_per_image": macs, "flops_per_image": flops,
        "progressive_resize": cfg.progressive_resize, "trained_flops_per_image": trained_flops,
        "train_seconds": train_s, "compute_seconds": rows[-1]["train_seconds"], "wall_seconds": wall,
        "images_per_s": ips, "achieved_gflops": e2e["achieved_gflops"], "mfu": e2e["mfu"],
        "mfu_fp32_peak": e2e["achieved_gflops"] / best_peaks["fp32"],
        "step": dict(step, achieved_gflops=st["achieved_gflops"]), "step_mfu": st["mfu"],
        "target": target, "time_to_target_s": tta_s, "reached_target": tta_s is not None,
        "final_acc": summary["test_acc"], "final_curve_acc": curve[-1][1], "tta": cfg.eval_tta,
        "curve": [list(p) for p in curve], "run_dir": str(run_dir) if args.runs_dir else None,
    }
    log(f"  test acc {out['final_acc']:.4f}, {train_s:.1f} s training, {ips:.0f} img/s, MFU {e2e['mfu']:.3f}, "
        f"step MFU {st['mfu']:.3f}, time to {target}: {tta_s if tta_s is None else round(tta_s, 1)}")
    return out


# ---------------------------------------------------------------- baseline runs
def run_baseline(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from cnnlab.data.datasets import load_classification_data

    peak_before = common.matmul_peak_gflops(args.peak_sizes, args.peak_repeat)
    epochs = max(1, round(args.baseline_epochs * args.epochs_scale))
    log(f"baseline seed {seed}: MNIST-example net, Adadelta, {epochs} epochs (peak {peak_before:.1f} GFLOP/s)")
    data = load_classification_data("fashion-mnist", seed=seed, limit=args.limit, limit_test=args.limit_test)
    res = base.train_baseline(data.train, data.test, epochs, seed, log=lambda s: log("  " + s))
    model = base.BaselineNet(len(data.classes))
    macs = common.forward_macs(model, (1, 28, 28))
    flops = common.training_flops(macs)
    x = torch.randn(base.BATCH_SIZE, 1, 28, 28)
    y = torch.randint(0, len(data.classes), (base.BATCH_SIZE,))
    optimizer = torch.optim.Adadelta(model.parameters(), lr=base.LR)
    step = common.measure_step(base.training_step(model.train(), optimizer, x, y), base.BATCH_SIZE,
                               steps=args.step_steps, rounds=args.step_rounds)
    peak_after = common.matmul_peak_gflops(args.peak_sizes, args.peak_repeat)
    peak = max(peak_before, peak_after)
    e2e, st = common.utilization(res["images_per_s"], flops, peak), common.utilization(step["images_per_s"], flops, peak)
    curve = res["curve"]
    return {
        "kind": "baseline", "seed": seed, "model": "pytorch-mnist-example", "epochs": epochs, "batch_size": base.BATCH_SIZE,
        "parameters": res["parameters"], "threads": torch.get_num_threads(), "peak_gflops": peak,
        "peak_gflops_before": peak_before, "peak_gflops_after": peak_after, "macs_per_image": macs, "flops_per_image": flops,
        "train_seconds": res["train_seconds"],
        "images_per_s": res["images_per_s"], "achieved_gflops": e2e["achieved_gflops"], "mfu": e2e["mfu"],
        "step": dict(step, achieved_gflops=st["achieved_gflops"]), "step_mfu": st["mfu"],
        "final_acc": res["final_acc"], "time_to_final_acc_s": common.time_to_accuracy(curve, res["final_acc"]),
        "curve": [list(p) for p in curve],
    }


# ---------------------------------------------------------------- summaries
def summarize_recipe(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ms = common.mean_spread
    first = runs[0]
    out = {
        "kind": "summary", "recipe": name, "model": first["model"], "model_kwargs": first["model_kwargs"],
        "epochs": first["epochs"], "batch_size": first["batch_size"], "seeds": [r["seed"] for r in runs],
        "n_seeds": len(runs), "target": first["target"], "flops_per_image": first["flops_per_image"],
        "precision": first.get("precision", "fp32"),
        "final_acc": ms([r["final_acc"] for r in runs]), "final_curve_acc": ms([r["final_curve_acc"] for r in runs]),
        "time_to_target_s": ms([r["time_to_target_s"] for r in runs]),
        "reached_target": sum(r["reached_target"] for r in runs),
        "budget_s": first.get("budget_s"),
    }
    if first.get("budget_s") is not None:
        out["acc_at_budget"] = common.mean_spread([r["acc_at_budget"] for r in runs])
        out["target_within_budget"] = sum(r["time_to_target_s"] is not None and r["time_to_target_s"] <= r["budget_s"]
                                          for r in runs)
    for key in ("train_seconds", "images_per_s", "achieved_gflops", "mfu", "step_mfu", "peak_gflops"):
        out[key] = ms([r[key] for r in runs])
    out["mfu_fp32_peak"] = ms([r.get("mfu_fp32_peak", r["mfu"]) for r in runs])  # reports from before bf16: fp32 runs
    out["step_mfu_fp32_peak"] = ms([r["step"]["achieved_gflops"] / r["peak_gflops_fp32"] if "peak_gflops_fp32" in r
                                    else r["step_mfu"] for r in runs])
    out["step_images_per_s"] = ms([r["step"]["images_per_s"] for r in runs])
    if runs[0].get("vs_baseline"):
        vs = [r["vs_baseline"] for r in runs]
        out["vs_baseline"] = {
            "baseline_final_acc": ms([v["baseline_final_acc"] for v in vs]),
            "speedup_to_baseline_acc": ms([v["speedup_to_baseline_acc"] for v in vs]),
            "recipe_reaches_baseline_final_acc": sum(v["recipe_reaches_baseline_final_acc"] for v in vs),
            **{k: ms([v[k] for v in vs]) for k in ("equal_time_s", "recipe_acc_at_equal_time", "baseline_acc_at_equal_time",
                                                   "acc_gain_at_equal_time", "error_ratio_at_equal_time")},
        }
    return out


def summarize_baseline(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ms = common.mean_spread
    out = {"kind": "baseline_summary", "seeds": [r["seed"] for r in runs], "n_seeds": len(runs), "epochs": runs[0]["epochs"],
           "flops_per_image": runs[0]["flops_per_image"]}
    for key in ("final_acc", "time_to_final_acc_s", "train_seconds", "images_per_s", "achieved_gflops", "mfu", "step_mfu",
                "peak_gflops"):
        out[key] = ms([r[key] for r in runs])
    return out


def render_markdown(report: dict[str, Any]) -> str:
    f = common.fmt
    headers = ["run", "precision", "seeds", "epochs", "test acc %", "target %", "time to target s (reached)", "train s",
               "acc % within budget (target in time)", "images/s", "GFLOP/s", "MFU % (of fp32 peak)", "step MFU % (of fp32 peak)", "speedup to baseline acc (reached)",
               "acc % at equal time: recipe vs baseline"]
    rows = []
    for s in report["summaries"]:
        vs = s.get("vs_baseline")
        rows.append([
            s["recipe"], s.get("precision", "fp32"), s["n_seeds"], s["epochs"], f(s["final_acc"], 4, pct=True),
            f(s["target"], 3, pct=True), f"{f(s['time_to_target_s'])} ({s['reached_target']}/{s['n_seeds']})",
            f(s["train_seconds"]),
            "-" if s.get("budget_s") is None else
            f"{f(s['acc_at_budget'], 4, pct=True)} in {f(s['budget_s'])} s ({s['target_within_budget']}/{s['n_seeds']})",
            f(s["images_per_s"]), f(s["achieved_gflops"]),
            f(s["mfu"], 3, pct=True) + ("" if s.get("precision", "fp32") == "fp32" else f" ({f(s['mfu_fp32_peak'], 3, pct=True)})"),
            f(s["step_mfu"], 3, pct=True)
            + ("" if s.get("precision", "fp32") == "fp32" else f" ({f(s['step_mfu_fp32_peak'], 3, pct=True)})"),
            "-" if not vs else f"{f(vs['speedup_to_baseline_acc'])} ({vs['recipe_reaches_baseline_final_acc']}/{s['n_seeds']})",
            "-" if not vs else f"{f(vs['recipe_acc_at_equal_time'], 4, pct=True)} vs {f(vs['baseline_acc_at_equal_time'], 4, pct=True)} "
                               f"at {f(vs['equal_time_s'])} s",
        ])
    b = report.get("baseline_summary")
    if b:
        rows.append(["baseline (PyTorch MNIST example)", "fp32", b["n_seeds"], b["epochs"], f(b["final_acc"], 4, pct=True), "-",
                     f"{f(b['time_to_final_acc_s'])} (to its final acc)", f(b["train_seconds"]), "-", f(b["images_per_s"]),
                     f(b["achieved_gflops"]), f(b["mfu"], 3, pct=True), f(b["step_mfu"], 3, pct=True), "1", "-"])
    env = report["environment"]
    notes = [
        f"Fashion-MNIST, {report['settings']['train_images']} training / {report['settings']['test_images']} test images; "
        f"torch {env['torch']}, {env['torch_threads']} threads on {env['cpu']}; peak fp32 matmul "
        f"{f(report['peak_gflops'])} GFLOP/s"
        + (f", bf16 {f(report['peak_gflops_bf16'])} GFLOP/s" if report.get("peak_gflops_bf16") else "")
        + f" (the better of before and after each run); load average {env['load_average_1m']} at start, "
        f"{env.get('load_average_1m_end')} at end.",
        "Values are mean ± sample std over seeds. Training FLOPs/image = 6 x conv+linear MACs; MFU = achieved / the "
        "matmul peak of the run's precision (bf16 runs: the fp32 ratio in brackets); "
        "step MFU = fixed-batch forward+backward+optimizer loop. Times are training wall seconds, evaluation excluded; "
        "accuracy at equal time interpolates linearly between epochs; accuracy within budget is that of the last epoch "
        "ended in the budget, and (k/n) counts the seeds that reached the target in it. Full rules: the JSON's \"conventions\".",
    ]
    if report.get("merged_from"):
        parts = [f"{Path(m['file']).name} ({', '.join(m['recipes'])}; seeds {', '.join(map(str, m['seeds']))})"
                 for m in report["merged_from"]]
        notes.append("Pooled from " + "; ".join(parts) + " (load averages above: the highest of them).")
    return "\n".join([common.markdown_table(headers, rows), "", *notes]) + "\n"


def pooled_results(runs: list[dict[str, Any]], baselines: list[dict[str, Any]], recipes: list[str],
                   budgets: dict[str, float]) -> dict[str, Any]:
    """The report's results part: peak over every run, the runs (with their accuracy within the recipe's
    time budget), one summary per recipe, the baseline."""
    for run in runs:
        budget = budgets.get(run["recipe"])
        run["budget_s"] = budget
        run["acc_at_budget"] = None if budget is None else common.accuracy_within(run["curve"], budget)
    return {
        "peak_gflops": common.mean_spread([r.get("peak_gflops_fp32", r["peak_gflops"]) for r in runs + baselines]),
        "peak_gflops_bf16": common.mean_spread([r["peak_gflops"] for r in runs if r.get("precision") == "bf16"]),
        "runs": runs,
        "summaries": [summarize_recipe(name, [r for r in runs if r["recipe"] == name]) for name in recipes],
        "baseline_runs": baselines,
        "baseline_summary": summarize_baseline(baselines) if baselines else None,
    }


# ---------------------------------------------------------------- driver
def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise SystemExit(f"error: --recipes: unknown recipe {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    try:
        targets = common.parse_targets(args.target, recipes)
        budgets = default_budgets(recipes) if args.budget is None else common.parse_budgets(args.budget, recipes)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    env = common.environment()
    runs_root = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="cnnlab-speed-"))
    try:
        baselines = [run_baseline(s, args) for s in seeds[:args.baseline_seeds]] if args.baseline else []
        runs = []
        for name in recipes:
            for seed in seeds:
                run = run_recipe(name, seed, targets.get(name), args, runs_root)
                if baselines:
                    ref = next((b for b in baselines if b["seed"] == seed), baselines[0])
                    run["vs_baseline"] = dict(common.compare_to_baseline(run["curve"], ref["curve"], CHANCE), baseline_seed=ref["seed"])
                runs.append(run)
    finally:
        if not args.runs_dir:
            shutil.rmtree(runs_root, ignore_errors=True)
    env["load_average_1m_end"] = common.environment()["load_average_1m"]
    report = {
        "benchmark": "fashion_mnist_speed", "conventions": common.CONVENTIONS, "environment": env,
        "settings": {"recipes": {r: RECIPES[r] for r in recipes}, "targets": targets, "budgets": budgets, "seeds": seeds, "threads": torch.get_num_threads(),
                     "limit": args.limit, "limit_test": args.limit_test, "epochs_scale": args.epochs_scale,
                     "baseline": args.baseline, "baseline_epochs": args.baseline_epochs,
                     "train_images": runs[0]["train_images"], "test_images": runs[0]["test_images"]},
        **pooled_results(runs, baselines, recipes, budgets),
    }
    return common.to_jsonable(report)


# ---------------------------------------------------------------- merging reports
def merge_reports(reports: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One report from several runs of this script (e.g. seeds measured on different occasions, or new
    recipe runs against an earlier baseline): runs and baseline runs are pooled, ratios and summaries
    recomputed. Refuses reports whose recipe settings differ or that repeat a (recipe, seed)."""
    recipes: dict[str, Any] = {}
    targets: dict[str, float] = {}
    budgets: dict[str, float] = {}
    runs: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    seen: dict[tuple[str, int], str] = {}
    for name, rep in zip(names, reports):
        if rep.get("benchmark") != "fashion_mnist_speed":
            raise SystemExit(f"error: {name} is not a fashion_mnist_speed report (no \"benchmark\": \"fashion_mnist_speed\")")
        for recipe, fields in rep["settings"]["recipes"].items():
            if recipe in recipes and recipes[recipe] != fields:
                raise SystemExit(f"error: recipe {recipe!r} has different settings in {name}; merge only runs of the same recipe")
            recipes[recipe] = fields
        for recipe, target in rep["settings"]["targets"].items():
            if targets.setdefault(recipe, target) != target:
                raise SystemExit(f"error: recipe {recipe!r} has target {target} in {name} but {targets[recipe]} before; "
                                 "rerun with one target")
        for recipe, budget in (rep["settings"].get("budgets") or {}).items():
            if budgets.setdefault(recipe, budget) != budget:
                raise SystemExit(f"error: recipe {recipe!r} has budget {budget} s in {name} but {budgets[recipe]} s before; "
                                 "rerun with one budget")
        for run in rep["runs"]:
            key = (run["recipe"], run["seed"])
            if key in seen:
                raise SystemExit(f"error: {run['recipe']} seed {run['seed']} is in both {seen[key]} and {name}")
            seen[key] = name
            runs.append(dict(run, source=name))
        for b in rep.get("baseline_runs") or []:
            if all(b["seed"] != other["seed"] for other in baselines):
                baselines.append(dict(b, source=name))
    if not runs:
        raise SystemExit("error: the reports hold no recipe runs")
    budgets = {**default_budgets(recipes), **budgets}  # reports from before budgets existed: the default budget
    for run in runs:
        run.pop("vs_baseline", None)
        if baselines:
            ref = next((b for b in baselines if b["seed"] == run["seed"]), baselines[0])
            run["vs_baseline"] = dict(common.compare_to_baseline(run["curve"], ref["curve"], CHANCE), baseline_seed=ref["seed"])
    order = list(dict.fromkeys(r["recipe"] for r in runs))
    runs.sort(key=lambda r: (order.index(r["recipe"]), r["seed"]))
    first = reports[0]
    envs = [r["environment"] for r in reports]
    env = dict(first["environment"], load_average_1m=max(e["load_average_1m"] or 0 for e in envs),
               load_average_1m_end=max(e.get("load_average_1m_end") or 0 for e in envs))
    report = {
        "benchmark": "fashion_mnist_speed", "conventions": common.CONVENTIONS, "environment": env,
        "merged_from": [{"file": n, "environment": r["environment"],
                         "seeds": sorted({x["seed"] for x in r["runs"] + (r.get("baseline_runs") or [])}),
                         "recipes": list(r["settings"]["recipes"]) + (["baseline"] if r.get("baseline_runs") else [])}
                        for n, r in zip(names, reports)],
        "settings": dict(first["settings"], recipes=recipes, targets=targets, budgets=budgets,
                         seeds=sorted({r["seed"] for r in runs}), baseline=bool(baselines)),
        **pooled_results(runs, baselines, order, budgets),
    }
    return common.to_jsonable(report)


def merge_main(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="fashion_mnist_speed.py merge",
                                 description="Pool the runs of several JSON reports of this script into one report.")
    ap.add_argument("reports", nargs="+", help="JSON reports written with --json")
    ap.add_argument("--json", default=None, help="also write the merged JSON report here")
    ap.add_argument("--markdown", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    reports = []
    for name in args.reports:
        try:
            reports.append(json.loads(Path(name).read_text()))
        except FileNotFoundError:
            raise SystemExit(f"error: report {name} does not exist") from None
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: report {name} is not readable JSON ({e})") from None
    try:
        report = merge_reports(reports, args.reports)
    except (KeyError, TypeError) as e:
        raise SystemExit(f"error: a report lacks the field {e}; merge only reports written by this script") from None
    _emit(report, args)
    return report


def _emit(report: dict[str, Any], args: argparse.Namespace) -> None:
    common.emit_report(report, render_markdown(report), args.json, args.markdown)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="fast,best", help="comma-separated names from cnnlab.engine.recipes")
    ap.add_argument("--target", default="0.93", help="test accuracy to time: one value, or per recipe: fast=0.93,best=0.95")
    ap.add_argument("--budget", default=None,
                    help="training-seconds budget per recipe for the 'accuracy within budget' figure, e.g. fast=120,best=1200 "
                         "(default: those two, for the recipes run)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per recipe (seed0, seed0+1, ...)")
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True, help="also run the PyTorch-example baseline")
    ap.add_argument("--baseline-epochs", type=int, default=base.EPOCHS)
    ap.add_argument("--baseline-seeds", type=int, default=1, help="baseline runs (the first seeds); ratios use the same seed, else the first")
    ap.add_argument("--limit", type=int, default=None, help="train on this many images (quick checks)")
    ap.add_argument("--limit-test", type=int, default=None, help="test on this many images (default: --limit)")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every run's epochs, the baseline's too (quick checks)")
    ap.add_argument("--step-steps", type=int, default=20, help="steps per timed round of the step benchmark")
    ap.add_argument("--step-rounds", type=int, default=3)
    ap.add_argument("--peak-sizes", default="1024,1536,2048", help="matmul sizes of the peak measurement")
    ap.add_argument("--peak-repeat", type=int, default=3)
    ap.add_argument("--runs-dir", default=None, help="keep the run folders here (default: a temporary folder, removed)")
    ap.add_argument("--json", default=None, help="also write the JSON report here")
    ap.add_argument("--markdown", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)
    try:
        args.peak_sizes = [int(n) for n in str(args.peak_sizes).split(",")]
    except ValueError:
        ap.error(f"--peak-sizes {args.peak_sizes!r}: give comma-separated matrix sizes, e.g. 1024,2048")
    if args.limit_test is None:
        args.limit_test = args.limit
    if args.seeds < 1 or args.epochs_scale <= 0:
        ap.error("--seeds must be at least 1 and --epochs-scale positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    args = parse_args(argv)
    report = run_benchmark(args)
    _emit(report, args)
    return report


if __name__ == "__main__":
    main()
