"""Shared measurements of the Fashion-MNIST speed benchmarks: the machine's peak, FLOP accounting,
the training-step loop, the rules that read accuracy curves, mean and spread, Markdown output.

Conventions (written into every JSON report as ``CONVENTIONS``):

- peak: GFLOP/s of square ``torch.mm`` (2 n^3 flops) on the threads in use, best of several
  timed runs after a warm-up, over n in 1024..2048, measured in the process that measures the run,
  before and after it (the higher counts); in fp32, and in bf16 too for a recipe that trains in bf16
  (``--precision bf16``), whose MFU is then against the bf16 peak (with the fp32 ratio alongside).
- FLOPs: forward = 2 x MACs, the multiply-adds of conv and linear layers at the training input size
  (``cnnlab.models.summary.count_macs``; biases, batch norm, pooling, activations, loss and the
  optimizer are not counted); backward = 2 x forward (gradients of inputs and of weights); so one
  training image costs 3 x 2 x MACs = 6 x MACs. Achieved GFLOP/s = that x images/s; MFU = achieved / peak.
- curve: one (seconds, test accuracy) point per epoch, seconds = cumulative wall time of the training
  epochs (data loading and augmentation included, evaluation excluded).
- time to accuracy: the seconds of the first epoch whose accuracy reaches the target (>=); accuracy
  is only known where it was evaluated, so no interpolation; None when never reached.
- accuracy at time t: linear interpolation between the per-epoch points, starting from
  (0 s, chance accuracy); after the last point, the final point's accuracy.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

Curve = list[tuple[float, float]]  # (cumulative training seconds, test accuracy) per epoch

CONVENTIONS = {
    "peak_gflops": "square torch.mm (2 n^3 flops), best of several runs after warm-up over n = 1024..2048, "
                   "same process and threads, measured before and after each run; the higher counts. In the dtype the "
                   "run computes in: fp32, or bf16 for a --precision bf16 recipe (peak_gflops_fp32 is always fp32)",
    "flops_per_image": "training = forward + backward = 3 x (2 x MACs); MACs = conv + linear multiply-adds at the "
                       "training input size (cnnlab.models.summary.count_macs)",
    "mfu": "achieved GFLOP/s (flops_per_image x images/s) / peak_gflops (the peak of the run's precision); "
           "mfu_fp32_peak: the same over the fp32 peak",
    "step_mfu": "MFU of a timed loop of forward + backward + optimizer step on one fixed in-memory batch "
                "(no data loading), fastest of several rounds",
    "train_seconds": "cumulative wall seconds of the training epochs (data loading and augmentation included, "
                     "evaluation excluded)",
    "time_to_target_s": "train_seconds at the first epoch whose test accuracy >= target; null if never reached",
    "accuracy_at_time": "linear interpolation between per-epoch (train_seconds, test accuracy) points from "
                        "(0 s, chance); the final accuracy after the last epoch",
    "acc_at_budget": "test accuracy of the last epoch that ended within the recipe's time budget (train_seconds "
                     "<= budget_s; fast 120 s, best 1200 s unless --budget says otherwise): the model a user who "
                     "stops at the budget has; null if no epoch ended in time",
    "speedup_to_baseline_acc": "baseline's time to its own final accuracy / recipe's time to that accuracy; "
                               "null when the recipe never reaches it",
    "acc_at_equal_time": "both curves read at T = min(baseline total, recipe total) train_seconds",
    "spread": "mean, sample std (0 for one value), min and max over seeds; runs that never reached a target "
              "are left out of its time statistics and counted in 'reached'",
}


# ---------------------------------------------------------------- timing and peak
def best_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    """Fastest of ``repeat`` timed calls after ``warmup`` untimed ones: the least disturbed by other work."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak_gflops(sizes: Sequence[int] = (1024, 1536, 2048), repeat: int = 3,
                       dtype: torch.dtype = torch.float32) -> float:
    """The machine's practical peak: best GFLOP/s of n x n @ n x n ``torch.mm`` in ``dtype`` over ``sizes``."""
    best = 0.0
    with torch.no_grad():
        for n in sizes:
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            t = best_time(lambda: torch.mm(a, b), repeat)
            best = max(best, 2 * n**3 / t / 1e9)
    return best


# ---------------------------------------------------------------- FLOP accounting
def forward_macs(model: torch.nn.Module, input_size: Sequence[int]) -> int:
    """Conv + linear multiply-adds of one forward pass of one (C, H, W) example."""
    from cnnlab.models.summary import count_macs

    return int(count_macs(model, tuple(input_size)))


PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def peaks(precision: str, sizes: Sequence[int], repeat: int) -> dict[str, float]:
    """{"fp32": peak} and, for a bf16 run, "bf16" too: the matmul peaks a run's MFU is read against."""
    out = {"fp32": matmul_peak_gflops(sizes, repeat)}
    if precision != "fp32":
        out[precision] = matmul_peak_gflops(sizes, repeat, PRECISION_DTYPES[precision])
    return out


def epoch_sizes(progressive_resize: str, epochs: int, img_size: Sequence[int]) -> list[tuple[int, int]]:
    """(H, W) of the training images in every epoch: smaller early on under ``--progressive-resize``."""
    from cnnlab.data.progressive import parse_progressive, scaled_size

    h, w = img_size
    resize = parse_progressive(progressive_resize)
    if resize is None:
        return [(h, w)] * epochs
    return [scaled_size(h, w, s) for s in resize.sizes(epochs, min(h, w))]


def training_flops(macs: int) -> int:
    """FLOPs of one training image: forward (2 x MACs) + backward (2 x forward) = 6 x MACs."""
    return 3 * (2 * macs)


def training_flops_per_image(model: torch.nn.Module, input_size: Sequence[int]) -> int:
    return training_flops(forward_macs(model, input_size))


def utilization(images_per_s: float, flops_per_image: int, peak_gflops: float) -> dict[str, float]:
    achieved = images_per_s * flops_per_image / 1e9
    return {"achieved_gflops": achieved, "mfu": achieved / peak_gflops if peak_gflops > 0 else float("nan")}


def measure_step(step: Callable[[], Any], batch_size: int, steps: int = 20, rounds: int = 3, warmup: int = 3) -> dict[str, float]:
    """Images/s of a whole training step (``step()`` does forward + backward + optimizer step on a fixed
    batch): ``rounds`` timed loops of ``steps`` steps after ``warmup`` steps; the fastest loop counts."""
    for _ in range(warmup):
        step()
    best = min(_timed_loop(step, steps) for _ in range(rounds))
    return {"images_per_s": batch_size * steps / best, "step_ms": 1e3 * best / steps,
            "batch_size": batch_size, "steps": steps, "rounds": rounds}


def _timed_loop(step: Callable[[], Any], steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- curves
def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run folder's metrics.csv with numbers parsed (empty cells -> None)."""
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(f)]


def curve_from_rows(rows: Sequence[dict[str, Any]], acc_key: str = "val_acc") -> Curve:
    """Per-epoch (cumulative epoch_seconds, accuracy): wall training time with evaluation excluded.

    metrics.csv's own ``train_seconds`` times only the model's step (the loader's batch assembly and
    augmentation run outside it), so the wall clock of the epochs is summed here instead.
    """
    curve, total = [], 0.0
    for row in rows:
        total += float(row["epoch_seconds"])
        curve.append((total, float(row[acc_key])))
    return curve


def time_to_accuracy(curve: Curve, target: float) -> float | None:
    """Seconds of the first evaluation whose accuracy is >= ``target``; None when none is."""
    for seconds, acc in curve:
        if acc >= target:
            return seconds
    return None


def accuracy_within(curve: Curve, budget_s: float) -> float | None:
    """Accuracy of the last evaluation at or before ``budget_s`` seconds (no interpolation: that model
    exists); None when the first epoch ended later."""
    acc = None
    for seconds, a in curve:
        if seconds <= budget_s:
            acc = a
    return acc


def parse_budgets(spec: str, recipes: Sequence[str]) -> dict[str, float]:
    """``"fast=120,best=1200"``: training-seconds budget per recipe (recipes not named keep none)."""
    budgets = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in recipes:
            raise ValueError(f"--budget {spec!r}: give recipe=seconds pairs for the recipes {', '.join(recipes)}")
        try:
            budgets[name] = float(value)
        except ValueError:
            raise ValueError(f"--budget {spec!r}: {value.strip()!r} is not a number of seconds") from None
        if budgets[name] <= 0:
            raise ValueError(f"--budget {spec!r}: the budget of {name} must be positive")
    return budgets


def accuracy_at(curve: Curve, t: float, start_acc: float = 0.1) -> float:
    """Accuracy at ``t`` seconds: linear between epoch points from (0, ``start_acc``); final after the end."""
    if not curve:
        raise ValueError("empty curve")
    prev_t, prev_acc = 0.0, start_acc
    for seconds, acc in curve:
        if t <= seconds:
            if seconds <= prev_t:
                return acc
            return prev_acc + (acc - prev_acc) * (t - prev_t) / (seconds - prev_t)
        prev_t, prev_acc = seconds, acc
    return curve[-1][1]


def compare_to_baseline(recipe: Curve, baseline: Curve, chance: float = 0.1) -> dict[str, Any]:
    """The two ratios of a recipe to the baseline (rules in CONVENTIONS)."""
    base_final = baseline[-1][1]
    base_time = time_to_accuracy(baseline, base_final)
    recipe_time = time_to_accuracy(recipe, base_final)
    equal_t = min(baseline[-1][0], recipe[-1][0])
    recipe_acc, base_acc = accuracy_at(recipe, equal_t, chance), accuracy_at(baseline, equal_t, chance)
    return {
        "baseline_final_acc": base_final,
        "baseline_time_to_its_final_acc_s": base_time,
        "recipe_time_to_baseline_final_acc_s": recipe_time,
        "recipe_reaches_baseline_final_acc": recipe_time is not None,
        "speedup_to_baseline_acc": base_time / recipe_time if recipe_time else None,
        "equal_time_s": equal_t,
        "recipe_acc_at_equal_time": recipe_acc,
        "baseline_acc_at_equal_time": base_acc,
        "acc_gain_at_equal_time": recipe_acc - base_acc,
        "error_ratio_at_equal_time": (1 - base_acc) / (1 - recipe_acc) if recipe_acc < 1 else None,
    }


# ---------------------------------------------------------------- statistics and parsing
def mean_spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """Mean, sample std (0 for one value), min, max and count of the values that are not None."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def parse_targets(spec: str, recipes: Sequence[str]) -> dict[str, float]:
    """``"0.93"`` for every recipe, or ``"fast=0.93,best=0.95"`` (recipes not named keep no target)."""
    spec = spec.strip()
    if "=" not in spec:
        value = _accuracy(spec)
        return {r: value for r in recipes}
    targets = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in recipes:
            raise ValueError(f"--target {spec!r}: {name!r} is not one of the recipes {', '.join(recipes)}")
        targets[name] = _accuracy(value)
    return targets


def _accuracy(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"target accuracy {text!r} must be a fraction in (0, 1], e.g. 0.93")
    return value


def environment() -> dict[str, Any]:
    """What the figures depend on: versions, threads, CPU, and the load other work puts on the machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


# ---------------------------------------------------------------- output
def fmt(stat: dict[str, Any] | float | None, digits: int = 3, pct: bool = False) -> str:
    """``mean ± std`` of a mean_spread dict (or one number) to ``digits`` significant digits; '-' for None."""
    if stat is None:
        return "-"
    scale = 100.0 if pct else 1.0
    if isinstance(stat, dict):
        text = _sig(stat["mean"] * scale, digits)
        return text + (f" ± {_sig(stat['std'] * scale, max(1, digits - 1))}" if stat["n"] > 1 else "")
    return _sig(stat * scale, digits)


def _sig(x: float, digits: int) -> str:
    """Significant digits without exponents: 2206.1 -> '2206', 0.01234 -> '0.0123'."""
    return f"{x:.0f}" if abs(x) >= 10 ** (digits - 1) else f"{float(f'{x:.{digits}g}'):g}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit_report(report: dict[str, Any], table: str, json_path: str | None = None, markdown_path: str | None = None) -> None:
    """The benchmark scripts' output: the JSON report on stdout, the Markdown table on stderr, and each in its file if asked."""
    text = json.dumps(report, indent=2)
    print(text)
    print(table, file=sys.stderr)
    if json_path:
        Path(json_path).write_text(text + "\n")
    if markdown_path:
        Path(markdown_path).write_text(table)


def to_jsonable(obj: Any) -> Any:
    """Floats rounded to 6 significant digits, NaN/inf as None: stable, readable JSON."""
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj
