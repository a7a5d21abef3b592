"""A tiny end-to-end run of both benchmark scripts on real Fashion-MNIST: the documented fields exist."""

from __future__ import annotations

import json

import pytest

import fashion_mnist
import fashion_mnist_speed as speed
from cnnlab.engine.recipes import resolved_recipes

RECIPES = resolved_recipes()  # what the benchmark runs on this CPU (precision "auto" resolved)

from .conftest import needs_fashion_mnist

QUICK = ["--peak-sizes", "64,128", "--peak-repeat", "1", "--step-steps", "2", "--step-rounds", "1"]
RUN_FIELDS = {"kind", "recipe", "seed", "model", "epochs", "batch_size", "precision", "peak_gflops", "peak_gflops_fp32",
              "mfu_fp32_peak", "macs_per_image", "flops_per_image",
              "train_seconds", "images_per_s", "achieved_gflops", "mfu", "step", "step_mfu", "target", "time_to_target_s",
              "reached_target", "final_acc", "curve", "vs_baseline"}
SUMMARY_FIELDS = {"recipe", "precision", "n_seeds", "target", "final_acc", "time_to_target_s", "reached_target", "images_per_s",
                  "achieved_gflops", "mfu", "step_mfu", "peak_gflops", "vs_baseline"}
VS_FIELDS = {"speedup_to_baseline_acc", "recipe_reaches_baseline_final_acc", "equal_time_s", "recipe_acc_at_equal_time",
             "baseline_acc_at_equal_time"}


def test_recipe_config_reads_the_recipe_and_scales_epochs(tmp_path):
    args = speed.parse_args(["--limit", "300", "--threads", "1", "--epochs-scale", "0.5"])
    cfg = speed.recipe_config("fast", 4, args, tmp_path / "run")
    for key, value in RECIPES["fast"].items():
        if key != "epochs":
            assert getattr(cfg, key) == value
    assert cfg.epochs == max(1, round(RECIPES["fast"]["epochs"] * 0.5))
    assert (cfg.seed, cfg.limit, cfg.limit_test, cfg.threads, cfg.recipe) == (4, 300, 300, 1, "fast")
    assert cfg.val_fraction == 0 and cfg.track_test  # all 60k train, last epoch kept; the test curve chooses nothing


@needs_fashion_mnist
def test_tiny_harness_run_writes_the_documented_report(tmp_path, capsys):
    json_path, md_path = tmp_path / "r.json", tmp_path / "r.md"
    report = speed.main(["--recipes", "fast", "--target", "fast=0.5", "--seeds", "1", "--limit", "300", "--epochs-scale", "0.01",
                         "--baseline-epochs", "1", "--threads", "2", "--json", str(json_path), "--markdown", str(md_path), *QUICK])
    out = capsys.readouterr()
    assert json.loads(out.out) == report == json.loads(json_path.read_text())  # stdout is exactly the JSON
    assert set(report) >= {"conventions", "environment", "settings", "runs", "summaries", "baseline_runs", "baseline_summary"}
    (run,) = report["runs"]
    assert RUN_FIELDS <= set(run) and VS_FIELDS <= set(run["vs_baseline"])
    assert run["recipe"] == "fast" and run["epochs"] == 1 and len(run["curve"]) == 1
    assert run["peak_gflops"] > 0 and run["flops_per_image"] == 6 * run["macs_per_image"] > 0
    assert run["progressive_resize"] == "none" and run["trained_flops_per_image"] == run["flops_per_image"]
    assert run["mfu"] == pytest.approx(run["achieved_gflops"] / run["peak_gflops"], rel=1e-4)
    assert run["step_mfu"] == pytest.approx(run["step"]["achieved_gflops"] / run["peak_gflops"], rel=1e-4)
    assert run["images_per_s"] == pytest.approx(300 // RECIPES["fast"]["batch_size"] * RECIPES["fast"]["batch_size"]
                                                 / run["train_seconds"], rel=1e-3)  # drop_last batches
    assert run["reached_target"] == (run["curve"][0][1] >= 0.5)
    (summary,) = report["summaries"]
    assert SUMMARY_FIELDS <= set(summary) and summary["n_seeds"] == 1 and summary["final_acc"]["n"] == 1
    (b,) = report["baseline_runs"]
    assert b["parameters"] == 1199882 and b["epochs"] == 1 and 0 <= b["final_acc"] <= 1 and b["mfu"] > 0
    table = md_path.read_text()
    precision = RECIPES["fast"].get("precision", "fp32")
    assert run["precision"] == precision and run["peak_gflops_fp32"] > 0
    assert run["mfu_fp32_peak"] == pytest.approx(run["achieved_gflops"] / run["peak_gflops_fp32"], rel=1e-4)
    if precision == "fp32":
        assert run["peak_gflops"] == run["peak_gflops_fp32"]
    assert table in out.err and f"| fast | {precision} | 1 | 1 |" in table and "baseline (PyTorch MNIST example)" in table
    assert "step MFU" in table and "peak fp32 matmul" in table
    # without a baseline the table says so with dashes
    report = dict(report, baseline_summary=None, summaries=[{k: v for k, v in summary.items() if k != "vs_baseline"}])
    assert "baseline (PyTorch" not in speed.render_markdown(report)


@needs_fashion_mnist
def test_progressive_resizing_counts_each_epoch_at_its_size(tmp_path, capsys, monkeypatch):
    """A recipe with progressive resizing: the end-to-end MFU counts the FLOPs of the smaller images it trained on,
    the step MFU those of the full-size batch it times."""
    from cnnlab.models.summary import count_macs
    from cnnlab.models.registry import create_model

    recipe = dict(RECIPES["fast"], epochs=2, progressive_resize="16:0.5")
    monkeypatch.setitem(speed.RECIPES, "fast", recipe)
    report = speed.main(["--recipes", "fast", "--target", "fast=0.5", "--seeds", "1", "--limit", "300", "--no-baseline",
                         "--threads", "1", *QUICK])
    capsys.readouterr()
    (run,) = report["runs"]
    model = create_model(recipe["model"], num_classes=10, in_chans=1, **recipe["model_kwargs"])
    macs16, macs28 = count_macs(model, (1, 16, 16)), count_macs(model, (1, 28, 28))
    assert run["progressive_resize"] == "16:0.5" and run["flops_per_image"] == 6 * macs28
    assert run["trained_flops_per_image"] == 6 * round((macs16 + macs28) / 2)  # epoch 1 at 16 px, epoch 2 at 28 px
    assert run["mfu"] == pytest.approx(run["images_per_s"] * run["trained_flops_per_image"] / 1e9 / run["peak_gflops"],
                                       rel=1e-4)
    assert run["step_mfu"] == pytest.approx(run["step"]["achieved_gflops"] / run["peak_gflops"], rel=1e-4)


@needs_fashion_mnist
def test_simple_benchmark_prints_json(capsys):
    report = fashion_mnist.main(["--model", "lenet5", "--epochs", "1", "--limit", "200", "--peak-sizes", "64"])
    assert json.loads(capsys.readouterr().out) == report
    assert report["model"] == "lenet5" and report["epochs"] == 1 and report["status"] == "finished"
    assert 0 <= report["test_acc"] <= 1 and report["wall_seconds"] >= report["train_seconds"] > 0
    assert report["images_per_s"] > 0 and report["peak_gflops"] > 0 and report["mfu"] > 0


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(SystemExit, match="unknown recipe 'slow'"):
        speed.run_benchmark(speed.parse_args(["--recipes", "slow"]))
    with pytest.raises(SystemExit, match="fraction"):
        speed.run_benchmark(speed.parse_args(["--recipes", "fast", "--target", "93"]))
