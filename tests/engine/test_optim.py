import math

import pytest
import torch

from cnnlab.tasks.classify import ClassifyConfig as TrainConfig
from cnnlab.engine.optim import EMA, build_optimizer, lr_multiplier, param_groups, weight_penalty
from cnnlab.errors import ConfigError


def cfg(**kw):
    return TrainConfig(**kw).resolved()


def test_schedules_follow_their_formulas():
    spe = 10
    f = lr_multiplier(cfg(schedule="step", step_size=2, gamma=0.1, epochs=6), spe)
    assert f(0) == 1 and f(19) == 1 and f(20) == pytest.approx(0.1) and f(45) == pytest.approx(0.01)
    f = lr_multiplier(cfg(schedule="exp", gamma=0.5, epochs=6), spe)
    assert f(30) == pytest.approx(0.125)
    f = lr_multiplier(cfg(schedule="inv", decay_k=0.5, epochs=6), spe)
    assert f(40) == pytest.approx(1 / 3)
    f = lr_multiplier(cfg(schedule="cosine", epochs=4), spe)
    assert f(0) == 1 and f(20) == pytest.approx(0.5) and f(40) == pytest.approx(0.0)
    f = lr_multiplier(cfg(schedule="cosine", epochs=4, warmup_epochs=1), spe)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(25) == pytest.approx(0.5)
    f = lr_multiplier(cfg(schedule="onecycle", epochs=4), spe)
    assert f(0) == pytest.approx(1 / 25) and f(10) == pytest.approx(1.0) and f(40) == pytest.approx(1e-4)
    assert max(f(s) for s in range(41)) == pytest.approx(1.0)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("momentum", torch.optim.SGD), ("nesterov", torch.optim.SGD),
                                      ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop),
                                      ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_each_optimizer_is_torchs_with_the_course_settings(name, cls):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = build_optimizer(model, cfg(optimizer=name, weight_decay=1e-3))
    assert type(opt) is cls
    assert opt.param_groups[0]["weight_decay"] == 1e-3 and opt.param_groups[1]["weight_decay"] == 0.0
    if name == "nesterov":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0


def test_norm_and_bias_exempt_from_decay_unless_asked():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    groups = param_groups(model, 0.1)
    assert [p.ndim for p in groups[0]["params"]] == [4]
    assert len(groups[1]["params"]) == 3  # conv bias, bn weight, bn bias
    assert len(param_groups(model, 0.1, decay_norm_and_bias=True)) == 1


def test_lbfgs_minimizes_a_quadratic_in_few_steps():
    w = torch.nn.Linear(2, 1, bias=False)
    opt = build_optimizer(w, cfg(optimizer="lbfgs", weight_decay=0))
    target = torch.tensor([[3.0, -2.0]])

    def closure():
        opt.zero_grad()
        loss = ((w.weight - target) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(w.weight, target, atol=1e-4)
    with pytest.raises(ConfigError, match="weight-decay"):
        build_optimizer(w, cfg(optimizer="lbfgs", weight_decay=1e-4))


def test_l1_penalty_and_ema():
    m = torch.nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    assert weight_penalty(m, 0.1).item() == pytest.approx(0.35)
    assert weight_penalty(m, 0.0) is None
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.add_(2.0)
    ema.update(m)
    assert torch.allclose(ema.shadow["weight"], m.weight - 1.0)


@pytest.mark.parametrize("kw,flag", [(dict(optimizer="adamax"), "--optimizer"), (dict(epochs=0), "--epochs"),
                                     (dict(lr=-1.0), "--lr"), (dict(schedule="poly"), "--schedule"),
                                     (dict(ema=1.5), "--ema"), (dict(label_smoothing=1.0), "--label-smoothing"),
                                     (dict(warmup_epochs=5, epochs=3), "--warmup-epochs"),
                                     (dict(precision="fp16"), "--precision")])
def test_impossible_settings_name_the_flag(kw, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainConfig(**kw).resolved()


def test_default_learning_rate_depends_on_optimizer():
    assert cfg(optimizer="adam").lr == 2e-3 and cfg(optimizer="nesterov").lr == 0.05
    assert math.isclose(cfg(optimizer="sgd", lr=0.3).lr, 0.3)
