"""lr-find, log-space sampling, coarse-to-fine narrowing and random search on the engine; their commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cnnlab.engine.tuning import SearchResult, Trial, check_space, lr_find, narrow, random_search, sample
from cnnlab.errors import ConfigError
from cnnlab.tasks.classify import ClassifyConfig

TINY = dict(data="digits", img_size=8, model="convnet_bn", model_kwargs={"width": 4}, optimizer="sgd", batch_size=32,
            weight_decay=0.0, limit=256, limit_test=64, quiet=True, tensorboard=False, device="cpu")


def test_lr_find_sweeps_exponentially_and_suggests_a_rate_in_range():
    res = lr_find(ClassifyConfig(**TINY), start_lr=1e-4, end_lr=10.0, num_steps=30)
    assert 5 <= len(res.lrs) <= 30 and len(res.losses) == len(res.lrs)
    assert res.lrs[0] == pytest.approx(1e-4)
    ratios = np.diff(np.log(res.lrs))
    assert np.allclose(ratios, math.log(1e5) / 29, rtol=1e-6)  # exponential: a constant ratio per step
    assert 1e-4 <= res.suggestion <= res.min_loss_lr <= 10.0
    finite = [v for v in res.smoothed if math.isfinite(v)]
    assert len(finite) >= 5 and all(math.isfinite(v) for v in res.losses[:5])


def test_lr_find_rejects_bad_ranges():
    with pytest.raises(ConfigError, match="start"):
        lr_find(ClassifyConfig(**TINY), start_lr=1.0, end_lr=0.1)


def test_samples_are_log_uniform_within_bounds():
    rng = np.random.default_rng(0)
    space = {"lr": (1e-5, 1e-1, "log"), "momentum": (0.5, 0.9, "linear")}
    draws = [sample(space, rng) for _ in range(4000)]
    lrs = np.array([d["lr"] for d in draws])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1
    for decade in range(-5, -1):  # each of the four decades gets a quarter of the draws
        frac = np.mean((lrs >= 10.0 ** decade) & (lrs < 10.0 ** (decade + 1)))
        assert abs(frac - 0.25) < 0.03
    moms = np.array([d["momentum"] for d in draws])
    assert 0.5 <= moms.min() and moms.max() <= 0.9 and abs(moms.mean() - 0.7) < 0.01


def test_coarse_to_fine_narrows_to_the_best_trials():
    space = {"lr": (1e-5, 1.0, "log")}
    trials = [Trial(0, {"lr": lr}, score, 0.0) for lr, score in
              [(1e-5, 0.1), (1e-4, 0.2), (1e-3, 0.5), (1e-2, 0.9), (3e-2, 0.95), (1.0, 0.1), (0.3, 0.3), (3e-5, 0.1)]]
    new = narrow(space, trials, "max", keep=0.25)
    lo, hi, scale = new["lr"]
    assert scale == "log" and 1e-5 <= lo < 1e-2 and 3e-2 < hi <= 1.0
    assert math.log10(hi / lo) < 5 / 2  # the span shrank to the top two (1e-2, 3e-2) padded by 10% of 5 decades each side
    assert lo == pytest.approx(10 ** (-2 - 0.25)) and hi == pytest.approx(10 ** (math.log10(3e-2) + 0.25))
    by_lr = [Trial(0, t.params, t.params["lr"], 0.0) for t in trials]  # score = lr: minimizing keeps the smallest two
    assert narrow(space, by_lr, "min", keep=0.25)["lr"][1] < 1e-4


def test_random_search_runs_real_trainings_and_narrows(tmp_path):
    cfg = ClassifyConfig(**dict(TINY, epochs=1, optimizer="momentum"))
    res = random_search(cfg, {"lr": (1e-4, 1.0, "log")}, trials=3, rounds=2, progress=False)
    assert isinstance(res, SearchResult) and len(res.trials) == 6 and len(res.spaces) == 2
    assert res.monitor == "acc" and res.mode == "max"
    lo0, hi0, _ = res.spaces[0]["lr"]
    lo1, hi1, _ = res.spaces[1]["lr"]
    assert lo0 <= lo1 < hi1 <= hi0 and (lo1, hi1) != (lo0, hi0)
    assert all(lo1 <= t.params["lr"] <= hi1 for t in res.trials if t.round == 1)
    assert all(0.0 <= t.score <= 1.0 for t in res.trials if math.isfinite(t.score))
    assert 0.0 <= res.best().score <= 1.0


def test_search_space_errors_name_the_flag():
    cfg = ClassifyConfig(**TINY)
    with pytest.raises(ConfigError, match="--param learning_rate"):
        check_space(cfg, {"learning_rate": (1e-3, 1.0, "log")})
    with pytest.raises(ConfigError, match="must be positive"):
        check_space(cfg, {"lr": (0.0, 1.0, "log")})


def _cli(argv):
    from cnnlab.cli.main import main

    return main(argv)


def test_commands_lab_lr_find_and_search(tmp_path, capsys):
    assert _cli(["lab", "list"]) == 0
    listing = capsys.readouterr().out
    assert "relu-vs-saturating" in listing and "experiments" in listing
    assert _cli(["lab", "run", "sgd-ravine", "--quick", "--quiet", "--out", str(tmp_path / "lab")]) == 0
    assert (tmp_path / "lab" / "report.md").is_file() and "HELD" in capsys.readouterr().out
    assert _cli(["lab", "run"]) == 2 and "--all" in capsys.readouterr().err
    assert _cli(["lab", "run", "nope"]) == 2
    common = ["classify", "--data", "digits", "--img-size", "8", "--model", "convnet_bn", "--model-arg", "width=4",
              "--limit", "256", "--limit-test", "64", "--quiet", "--no-tensorboard", "--device", "cpu"]
    assert _cli(["lr-find", *common, "--steps", "20", "--start-lr", "1e-4", "--out", str(tmp_path / "lrf")]) == 0
    saved = json.loads((tmp_path / "lrf" / "lr_find.json").read_text())
    assert 1e-4 <= saved["suggestion"] <= 10 and (tmp_path / "lrf" / "lr_find.png").stat().st_size > 1000
    assert "suggested --lr" in capsys.readouterr().out
    assert _cli(["search", *common, "--epochs", "1", "--param", "lr=1e-3:1", "--trials", "2", "--rounds", "1",
                 "--out", str(tmp_path / "s")]) == 0
    found = json.loads((tmp_path / "s" / "search.json").read_text())
    assert len(found["trials"]) == 2 and 1e-3 <= found["best"]["lr"] <= 1
    assert (tmp_path / "s" / "search.png").is_file() and "| round | lr |" in (tmp_path / "s" / "search.md").read_text()
    assert _cli(["search", *common, "--param", "lr=1:0.1"]) == 2
    assert "low end" in capsys.readouterr().err
