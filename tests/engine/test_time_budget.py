"""--time-budget: the schedule follows the training clock and training stops when the budget is spent."""

import types

import pytest
import torch

from cnnlab.engine import trainer as trainer_mod
from cnnlab.engine.optim import build_scheduler
from cnnlab.tasks.classify import ClassifyConfig

from cnnlab.engine.trainer import Trainer
from cnnlab.tasks.classify import Classify
from tests.engine.test_trainer import META, _Loader


def test_the_schedule_follows_the_clock_not_the_steps():
    cfg = ClassifyConfig(schedule="cosine", epochs=4, time_budget=100.0).resolved()
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    clock = {"t": 0.0}
    sched = build_scheduler(opt, cfg, steps_per_epoch=10, elapsed=lambda: clock["t"])
    lrs = []
    for t in (25.0, 50.0, 100.0, 150.0):  # one step each: the step count (1..4 of 40) says almost nothing
        clock["t"] = t
        opt.step(), sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.5 * (1 + 2 ** -0.5), 0.5, 0.0, 0.0])


def test_without_a_budget_the_schedule_is_per_step():
    cfg = ClassifyConfig(schedule="cosine", epochs=4).resolved()
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10, elapsed=lambda: 1e9)
    for _ in range(20):
        opt.step(), sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


class _FakeClock:
    """perf_counter that advances one second per call: each training step costs about 2 s of 'training time'."""

    def __init__(self):
        self.t = 0.0

    def perf_counter(self):
        self.t += 1.0
        return self.t


def test_training_stops_mid_epoch_when_the_budget_is_spent(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod, "time", types.SimpleNamespace(perf_counter=_FakeClock().perf_counter))
    torch.manual_seed(0)
    cfg = ClassifyConfig(epochs=50, time_budget=15.0, schedule="cosine", lr=0.05, quiet=True,
                         tensorboard=False).resolved()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 3))
    t = Trainer(cfg, model, Classify(cfg, META), _Loader(), _Loader(2), tmp_path, {"model": "x"}, torch.device("cpu"))
    result = t.fit()
    assert result.status == "finished"
    assert t.train_seconds >= 15.0 and t.train_seconds < 15.0 + 3.0  # stopped within one step of the budget
    assert t.epoch < 50 and t.global_step < 6 * 50  # far fewer steps than 50 epochs
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine reached its end
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == t.epoch  # the shortened last epoch was evaluated and logged
    # a finished budget is not trained further by another fit()
    steps = t.global_step
    t.fit()
    assert t.global_step == steps


def test_time_budget_must_be_positive():
    from cnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="--time-budget"):
        ClassifyConfig(time_budget=0.0).validate()
