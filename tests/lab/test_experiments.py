"""Every registered experiment, in --quick mode, writes report.md and results.json with finite numbers."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.errors import ConfigError
from cnnlab.lab import get_experiment, list_experiments, run_experiment

NAMES = [e.name for e in list_experiments()]
CHUNKS = [NAMES[i::5] for i in range(5)]  # five tests of ~6 quick experiments each (~12 s apiece)


def test_registry_covers_the_course_claims():
    exps = list_experiments()
    assert len(exps) >= 25
    assert len({e.name for e in exps}) == len(exps)
    for e in exps:
        assert e.claim and e.section and e.budget_s > 0
        assert e.budget_s <= 300, f"{e.name}: the full budget should fit 5 minutes on 2 cores"
    for needed in ("relu-vs-saturating", "dying-relu", "init-collapse", "batchnorm-deep", "degradation",
                   "shortcut-gradients", "dropout", "augmentation", "sgd-ravine", "saddle-point", "adagrad-decay",
                   "lr-decay", "lbfgs", "random-vs-grid", "ensembles", "transfer-learning", "knn-features",
                   "bottleneck-1x1", "three-3x3-vs-7x7", "googlenet-aux", "lrn", "xent-vs-mse", "rnn-gradient-flow"):
        assert get_experiment(needed).name == needed


@pytest.mark.parametrize("names", CHUNKS, ids=[f"chunk{i}" for i in range(len(CHUNKS))])
def test_quick_experiments_write_reports_with_finite_numbers(names, tmp_path):
    for name in names:
        out = tmp_path / name
        r = run_experiment(name, out=out, quick=True, progress=False)
        saved = json.loads((out / "results.json").read_text())
        assert saved["experiment"] == name and saved["quick"] is True
        assert saved["numbers"], name
        bad = {k: v for k, v in saved["numbers"].items() if v is None or not math.isfinite(v)}
        assert not bad, f"{name}: non-finite numbers {bad}"
        assert isinstance(saved["held"], bool) and saved["verdict"]
        report = (out / "report.md").read_text()
        assert name in report and r["verdict"] in report and "cnnlab lab run " + name in report
        assert ("HELD" in report) and r["figures"]
        for fig in r["figures"]:
            assert (out / fig).stat().st_size > 1000, f"{name}: empty figure {fig}"
        if get_experiment(name).trains:
            assert saved["training_runs"] > 0 and all(c.startswith("cnnlab train ") for c in saved["run_commands"])


def test_unknown_experiment_names_the_fix():
    with pytest.raises(ConfigError, match="cnnlab lab list"):
        get_experiment("relu-vs-everything")


def test_two_seeds_average_two_runs(tmp_path):
    r = run_experiment("lbfgs", out=tmp_path, quick=True, seeds=2, progress=False)
    assert r["training_runs"] == 4 and r["seeds"] == 2  # full batch and mini-batch, twice each


def test_gallery_copies_figures_and_lists_what_is_not_run(tmp_path):
    from cnnlab.lab.gallery import write_gallery

    run_experiment("bottleneck-1x1", out=tmp_path / "res" / "bottleneck-1x1", progress=False)  # full budget: no training
    run_experiment("sgd-ravine", out=tmp_path / "res" / "sgd-ravine", quick=True, progress=False)  # quick: not shown
    page = tmp_path / "docs" / "lab.md"
    missing = write_gallery(tmp_path / "res", page, tmp_path / "docs" / "images", ["# intro"], ["notes here"])
    text = page.read_text()
    assert (tmp_path / "docs" / "images" / "lab_bottleneck-1x1.png").stat().st_size > 1000
    assert "![bottleneck-1x1](images/lab_bottleneck-1x1.png)" in text and "9.7x fewer" in text
    assert "sgd-ravine" in missing and "bottleneck-1x1" not in missing and len(missing) == len(NAMES) - 1
    assert text.index("# intro") < text.index("| experiment |") < text.index("notes here") < text.index("## bottleneck-1x1")
    assert "1 of " in text and "Not yet run" in text


def test_run_commands_reproduce_with_cnnlab_train(tmp_path):
    from cnnlab.cli.main import build_parser
    from cnnlab.cli.train import config_from_args

    r = run_experiment("lbfgs", out=tmp_path, quick=True, progress=False)
    line = r["run_commands"][0]
    assert "--data digits" in line and "--optimizer lbfgs" in line and "--model linear" in line
    args = build_parser().parse_args(line.split("#")[0].split()[1:])
    cfg = config_from_args(args, "classify")
    assert (cfg.data, cfg.img_size, cfg.optimizer, cfg.lr, cfg.limit) == ("digits", 8, "lbfgs", 1.0, 256)
    assert any("MiniBatchLBFGS" in c for c in r["run_commands"])
