"""The benchmark rules on hand-made numbers: curves, ratios, spread, FLOP accounting, peak."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import common


def test_time_to_accuracy_is_the_first_crossing():
    curve = [(10.0, 0.80), (20.0, 0.93), (30.0, 0.91), (40.0, 0.95)]
    assert common.time_to_accuracy(curve, 0.93) == 20.0  # reaching it exactly counts
    assert common.time_to_accuracy(curve, 0.94) == 40.0  # the dip at 30 s does not matter
    assert common.time_to_accuracy(curve, 0.50) == 10.0
    assert common.time_to_accuracy(curve, 0.96) is None


def test_curve_from_rows_sums_epoch_wall_time():
    rows = [{"epoch_seconds": 3.0, "train_seconds": 2.0, "val_acc": 0.7},
            {"epoch_seconds": 4.5, "train_seconds": 5.0, "val_acc": 0.8}]
    assert common.curve_from_rows(rows) == [(3.0, 0.7), (7.5, 0.8)]


def test_read_metrics_csv_parses_numbers_and_empty_cells(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,val_acc,val_top5,epoch_seconds\n1,0.75,,2.5\n2,0.8125,0.99,2.0\n")
    rows = common.read_metrics_csv(path)
    assert rows == [{"epoch": 1.0, "val_acc": 0.75, "val_top5": None, "epoch_seconds": 2.5},
                    {"epoch": 2.0, "val_acc": 0.8125, "val_top5": 0.99, "epoch_seconds": 2.0}]
    assert common.curve_from_rows(rows) == [(2.5, 0.75), (4.5, 0.8125)]


def test_accuracy_at_interpolates_between_epochs():
    curve = [(10.0, 0.60), (20.0, 0.80)]
    assert common.accuracy_at(curve, 0.0) == pytest.approx(0.1)  # chance at 0 s
    assert common.accuracy_at(curve, 5.0) == pytest.approx(0.35)  # halfway from (0, 0.1) to (10, 0.6)
    assert common.accuracy_at(curve, 10.0) == pytest.approx(0.60)
    assert common.accuracy_at(curve, 15.0) == pytest.approx(0.70)
    assert common.accuracy_at(curve, 99.0) == pytest.approx(0.80)  # finished sooner: its final accuracy
    assert common.accuracy_at(curve, 5.0, start_acc=0.0) == pytest.approx(0.30)
    with pytest.raises(ValueError):
        common.accuracy_at([], 1.0)


def test_compare_to_baseline_ratios():
    baseline = [(10.0, 0.80), (20.0, 0.85), (30.0, 0.85)]  # reaches its final 0.85 at 20 s
    recipe = [(5.0, 0.84), (8.0, 0.86), (12.0, 0.88)]
    r = common.compare_to_baseline(recipe, baseline)
    assert r["baseline_final_acc"] == 0.85
    assert r["baseline_time_to_its_final_acc_s"] == 20.0
    assert r["recipe_time_to_baseline_final_acc_s"] == 8.0
    assert r["speedup_to_baseline_acc"] == pytest.approx(2.5)
    assert r["recipe_reaches_baseline_final_acc"] is True
    # the recipe finished first (12 s): its final accuracy against the baseline's at 12 s
    assert r["equal_time_s"] == 12.0
    assert r["recipe_acc_at_equal_time"] == pytest.approx(0.88)
    assert r["baseline_acc_at_equal_time"] == pytest.approx(0.81)
    assert r["acc_gain_at_equal_time"] == pytest.approx(0.07)
    assert r["error_ratio_at_equal_time"] == pytest.approx(0.19 / 0.12)


def test_compare_when_recipe_never_reaches_and_runs_longer():
    baseline = [(10.0, 0.90), (20.0, 0.92)]
    recipe = [(15.0, 0.70), (40.0, 0.91)]  # never 0.92; longer than the baseline
    r = common.compare_to_baseline(recipe, baseline)
    assert r["recipe_time_to_baseline_final_acc_s"] is None
    assert r["speedup_to_baseline_acc"] is None
    assert r["recipe_reaches_baseline_final_acc"] is False
    assert r["equal_time_s"] == 20.0  # the baseline's total
    assert r["recipe_acc_at_equal_time"] == pytest.approx(0.70 + 0.21 * 5 / 25)
    assert r["baseline_acc_at_equal_time"] == pytest.approx(0.92)


def test_mean_spread():
    s = common.mean_spread([1.0, None, 3.0, 2.0])
    assert s == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert common.mean_spread([0.5]) == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "n": 1}
    assert common.mean_spread([None, None]) is None


def test_parse_targets():
    assert common.parse_targets("0.93", ["fast", "best"]) == {"fast": 0.93, "best": 0.93}
    assert common.parse_targets("fast=0.92, best=0.95", ["fast", "best"]) == {"fast": 0.92, "best": 0.95}
    assert common.parse_targets("best=0.95", ["fast", "best"]) == {"best": 0.95}
    with pytest.raises(ValueError, match="slow"):
        common.parse_targets("slow=0.9", ["fast"])
    with pytest.raises(ValueError, match="fraction"):
        common.parse_targets("93", ["fast"])


def test_flop_accounting_of_a_linear_layer_and_a_conv():
    assert common.forward_macs(nn.Linear(20, 7), (20,)) == 20 * 7  # biases not counted
    assert common.training_flops_per_image(nn.Linear(20, 7), (20,)) == 3 * 2 * 140
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(36, 2))
    assert common.forward_macs(conv, (1, 5, 5)) == 4 * 3 * 3 * 9 + 36 * 2  # 36 positions x 9 taps, then the linear
    assert common.training_flops(100) == 600


def test_utilization_arithmetic():
    u = common.utilization(images_per_s=1000.0, flops_per_image=2_000_000, peak_gflops=8.0)
    assert u["achieved_gflops"] == pytest.approx(2.0)
    assert u["mfu"] == pytest.approx(0.25)


def test_matmul_peak_is_positive():
    peak = common.matmul_peak_gflops(sizes=(64, 128), repeat=2)
    assert math.isfinite(peak) and peak > 0


def test_measure_step_counts_steps():
    calls = []
    r = common.measure_step(lambda: calls.append(1), batch_size=8, steps=5, rounds=2, warmup=3)
    assert len(calls) == 3 + 5 * 2
    assert r["images_per_s"] > 0 and r["batch_size"] == 8 and r["steps"] == 5
    assert r["step_ms"] == pytest.approx(1e3 * 8 / r["images_per_s"])  # ms per step of 8 images


def test_output_helpers():
    assert common.to_jsonable({"a": float("nan"), "b": [1.23456789, (2, float("inf"))]}) == {"a": None, "b": [1.23457, [2, None]]}
    table = common.markdown_table(["x", "y"], [[1, "a"], [2, "b"]])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | a |", "| 2 | b |"]
    assert common.fmt(None) == "-"
    assert common.fmt({"mean": 0.9, "std": 0.01, "n": 3}, 3, pct=True) == "90 ± 1"
    assert common.fmt({"mean": 0.9, "std": 0.0, "n": 1}, 3, pct=True) == "90"
    env = common.environment()
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1


def test_peaks_measure_the_runs_precision_too():
    fp32 = common.peaks("fp32", sizes=(64,), repeat=1)
    assert set(fp32) == {"fp32"} and fp32["fp32"] > 0
    both = common.peaks("bf16", sizes=(64,), repeat=1)
    assert set(both) == {"fp32", "bf16"} and all(math.isfinite(v) and v > 0 for v in both.values())


def test_epoch_sizes_follow_the_progressive_schedule():
    assert common.epoch_sizes("none", 3, (28, 28)) == [(28, 28)] * 3
    assert common.epoch_sizes("16:0.5", 4, (28, 28)) == [(16, 16), (22, 22), (28, 28), (28, 28)]
    assert common.epoch_sizes("10:1", 2, (20, 40)) == [(10, 20), (15, 30)]  # the shorter side, aspect kept
