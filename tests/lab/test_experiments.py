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
