"""Pooling reports of several benchmark invocations: ratios and summaries are recomputed, mismatches refused."""

from __future__ import annotations

import json

import pytest

import common
import fashion_mnist_speed as speed

FAST = {"model": "convnet_bn", "epochs": 2}


def run(recipe: str, seed: int, curve: list[list[float]], target: float = 0.9) -> dict:
    reached = next((t for t, a in curve if a >= target), None)
    stats = {"train_seconds": curve[-1][0], "images_per_s": 1000.0 + seed, "achieved_gflops": 50.0, "mfu": 0.5,
             "step_mfu": 0.6, "peak_gflops": 100.0}
    return {"kind": "run", "recipe": recipe, "seed": seed, "model": "convnet_bn", "model_kwargs": {}, "epochs": len(curve),
            "batch_size": 128, "flops_per_image": 6, "target": target, "time_to_target_s": reached,
            "reached_target": reached is not None, "final_acc": curve[-1][1], "final_curve_acc": curve[-1][1],
            "curve": curve, "step": {"images_per_s": 2000.0}, **stats,
            "vs_baseline": {"stale": True}}


def report(runs: list[dict], baselines: list[dict] | None = None, recipes: dict | None = None, load: float = 0.1) -> dict:
    return {"benchmark": "fashion_mnist_speed", "environment": {"torch": "x", "cpu": "y", "torch_threads": 2,
                                                                "load_average_1m": load, "load_average_1m_end": load},
            "settings": {"recipes": recipes or {"fast": FAST}, "targets": {r["recipe"]: r["target"] for r in runs},
                         "seeds": sorted({r["seed"] for r in runs}), "train_images": 60000, "test_images": 10000},
            "runs": runs, "baseline_runs": baselines or []}


BASELINE = {"seed": 0, "epochs": 2, "flops_per_image": 6, "final_acc": 0.9, "time_to_final_acc_s": 200.0,
            "train_seconds": 200.0, "images_per_s": 500.0, "achieved_gflops": 10.0, "mfu": 0.1, "step_mfu": 0.1,
            "peak_gflops": 100.0, "curve": [[100.0, 0.85], [200.0, 0.9]]}


def test_merge_pools_seeds_and_recomputes_the_baseline_ratios(tmp_path, capsys):
    a = report([run("fast", 0, [[10.0, 0.88], [20.0, 0.91]])], [BASELINE], load=0.2)
    b = report([run("fast", 1, [[12.0, 0.89], [24.0, 0.95]]), run("fast", 2, [[11.0, 0.86], [22.0, 0.89]])], load=0.7)
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    merged = speed.main(["merge", str(pa), str(pb), "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md")])
    out = capsys.readouterr()
    assert json.loads(out.out) == merged == json.loads((tmp_path / "m.json").read_text())
    assert [r["seed"] for r in merged["runs"]] == [0, 1, 2] and merged["settings"]["seeds"] == [0, 1, 2]
    (summary,) = merged["summaries"]
    assert summary["n_seeds"] == 3 and summary["reached_target"] == 2
    assert summary["final_acc"]["mean"] == pytest.approx((0.91 + 0.95 + 0.89) / 3)
    # every run is compared with the one baseline (seed 0): reaching 0.9 took it 200 s
    speedups = [r["vs_baseline"]["speedup_to_baseline_acc"] for r in merged["runs"]]
    assert speedups == [pytest.approx(200 / 20), pytest.approx(200 / 24), None]
    assert all("stale" not in r["vs_baseline"] for r in merged["runs"])
    assert merged["baseline_summary"]["n_seeds"] == 1
    assert merged["environment"]["load_average_1m"] == 0.7  # the worst of the pooled runs
    table = (tmp_path / "m.md").read_text()
    assert "| fast | fp32 | 3 | 2 |" in table and "Pooled from a.json (fast, baseline; seeds 0); b.json (fast; seeds 1, 2)" in table


def test_merge_refuses_mismatched_or_repeated_runs():
    one = report([run("fast", 0, [[10.0, 0.9]])])
    with pytest.raises(SystemExit, match="fast seed 0 is in both a and b"):
        speed.merge_reports([one, one], ["a", "b"])
    other = report([run("fast", 1, [[10.0, 0.9]])], recipes={"fast": dict(FAST, epochs=3)})
    with pytest.raises(SystemExit, match="recipe 'fast' has different settings in b"):
        speed.merge_reports([one, other], ["a", "b"])
    with pytest.raises(SystemExit, match="not a fashion_mnist_speed report"):
        speed.merge_reports([one, {"benchmark": "other"}], ["a", "b"])


def test_merge_command_line_errors_name_the_file(tmp_path):
    with pytest.raises(SystemExit, match="report .*missing.json does not exist"):
        speed.main(["merge", str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="bad.json is not readable JSON"):
        speed.main(["merge", str(bad)])
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"benchmark": "fashion_mnist_speed"}))
    with pytest.raises(SystemExit, match="lacks the field 'settings'"):
        speed.main(["merge", str(partial)])


def test_merge_names_the_seeds_each_file_actually_holds(tmp_path):
    # a baseline-only report asked for seeds 0-2, but the baseline runs one seed
    only_baseline = report([], [BASELINE])
    only_baseline["settings"].update(seeds=[0, 1, 2], recipes={})
    fast = report([run("fast", 1, [[12.0, 0.89], [24.0, 0.95]])])
    merged = speed.merge_reports([fast, only_baseline], ["f.json", "b.json"])
    assert [m["seeds"] for m in merged["merged_from"]] == [[1], [0]]
    assert "b.json (baseline; seeds 0)" in speed.render_markdown(merged)


def test_accuracy_within_budget_is_the_last_epoch_that_ended_in_time(tmp_path):
    a = report([run("fast", 0, [[10.0, 0.88], [20.0, 0.91]]), run("fast", 1, [[12.0, 0.89], [14.0, 0.92]])])
    a["settings"]["budgets"] = {"fast": 15.0}
    b = report([run("fast", 2, [[16.0, 0.80], [30.0, 0.95]])])  # no budgets: a report from before them
    merged = speed.merge_reports([a, b], ["a.json", "b.json"])
    assert merged["settings"]["budgets"] == {"fast": 15.0}
    assert [r["acc_at_budget"] for r in merged["runs"]] == [0.88, 0.92, None]
    (summary,) = merged["summaries"]
    assert summary["budget_s"] == 15.0 and summary["target_within_budget"] == 1  # only seed 1 reached 0.9 by 15 s
    assert summary["acc_at_budget"]["n"] == 2 and summary["acc_at_budget"]["mean"] == pytest.approx(0.90)
    assert "90 ± 2.83 in 15 s (1/3)" in speed.render_markdown(merged)
    # without a budget in either report, the default one of the recipe applies
    default = speed.merge_reports([report([run("fast", 0, [[100.0, 0.9], [130.0, 0.93]])])], ["c.json"])
    assert default["runs"][0]["acc_at_budget"] == 0.9 and default["summaries"][0]["budget_s"] == speed.BUDGETS["fast"]
    other = report([run("fast", 3, [[10.0, 0.9]])])
    other["settings"]["budgets"] = {"fast": 20.0}
    with pytest.raises(SystemExit, match="budget 20.0 s in d.json"):
        speed.merge_reports([a, other], ["a.json", "d.json"])


def test_parse_budgets():
    assert common.parse_budgets("fast=120, best=1200", ["fast", "best"]) == {"fast": 120.0, "best": 1200.0}
    for bad, msg in [("fast=abc", "not a number"), ("fast=0", "must be positive"), ("slow=3", "recipe=seconds"),
                     ("120", "recipe=seconds")]:
        with pytest.raises(ValueError, match=msg):
            common.parse_budgets(bad, ["fast", "best"])
