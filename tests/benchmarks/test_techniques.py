"""The technique benchmark on tiny settings: every variant is applied and reported, errors are one line."""

from __future__ import annotations

import json

import pytest

import techniques

from .conftest import needs_fashion_mnist

QUICK = ["--peak-sizes", "64", "--peak-repeat", "1", "--step-steps", "1", "--step-rounds", "1"]


def test_step_part_reports_each_variant(capsys):
    report = techniques.main(["--part", "step", "--threads", "1", "--no-compile", *QUICK])
    assert json.loads(capsys.readouterr().out) == report
    rows = {r["variant"]: r for r in report["rows"]}
    assert "torch.compile" not in rows  # --no-compile leaves it out
    assert rows["recipe"]["speed_vs_recipe"] == 1.0
    assert rows["batch 64"]["batch_size"] == 64 and rows["batch 256"]["batch_size"] == 256
    assert rows["1 thread"]["threads"] == 1
    for r in rows.values():
        if "error" not in r:
            assert r["images_per_s"] > 0 and r["mfu"] == pytest.approx(r["achieved_gflops"] / r["peak_gflops"], rel=1e-4)
    assert "| contiguous (NCHW) |" in techniques.render_markdown(report)


@needs_fashion_mnist
def test_train_part_changes_one_setting(capsys):
    report = techniques.main(["--part", "train", "--threads", "1", "--only", "recipe,no flip TTA", "--limit", "256",
                              "--epochs-scale", "0.01"])
    capsys.readouterr()
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"recipe", "no flip TTA"}
    assert rows["no flip TTA"]["change"] == {"eval_tta": "none"}
    for r in rows.values():
        (run,) = r["runs"]
        assert run["epochs"] == 1 and run["status"] == "finished" and 0 <= run["final_acc"] <= 1
    assert rows["recipe"]["acc_change_vs_recipe"] == 0.0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        techniques.parse_args(["--recipe", "slow"])
    with pytest.raises(SystemExit):
        techniques.parse_args(["--only", "no such thing"])


def test_variants_that_change_nothing_are_left_out_and_changes_can_read_the_recipe():
    recipe = {"precision": "bf16", "augment": "hflip,crop=2"}
    assert techniques.is_noop(recipe, {"precision": "bf16"}) and not techniques.is_noop(recipe, {"precision": "fp32"})
    assert techniques.is_noop({}, {"precision": "fp32"})  # the TrainConfig default
    assert not techniques.is_noop(recipe, {})  # the recipe row itself
    erase = dict(techniques.TRAIN_VARIANTS)["+ random erasing 0.5"]
    assert techniques.resolve_change(recipe, erase) == {"augment": "hflip,crop=2,erase=0.5"}
    assert techniques.resolve_change({"augment": "none"}, erase) == {"augment": "erase=0.5"}
