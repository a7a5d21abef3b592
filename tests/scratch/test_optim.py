import math

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.scratch import optim

A = np.random.default_rng(3).standard_normal((6, 4))
B = np.random.default_rng(4).standard_normal(6)


def _f(w: torch.Tensor) -> torch.Tensor:
    """A non-quadratic test problem: least squares plus a quartic and a sine term."""
    r = torch.tensor(A) @ w - torch.tensor(B)
    return 0.5 * (r * r).sum() + 0.1 * (w**4).sum() + torch.sin(w).sum()


def _grad(w: np.ndarray) -> np.ndarray:
    tw = torch.tensor(w, requires_grad=True)
    _f(tw).backward()
    return tw.grad.numpy()


def _ours(rule: str, config: dict, steps: int, w0: np.ndarray):
    w, cfg, traj = w0.copy(), dict(config), []
    for _ in range(steps):
        w, cfg = optim.UPDATE_RULES[rule](w, _grad(w), cfg)
        traj.append(w.copy())
    return np.array(traj)


def _torch(make_opt, steps: int, w0: np.ndarray, scheduler=None):
    w = torch.tensor(w0.copy(), requires_grad=True)
    opt = make_opt([w])
    sched = scheduler(opt) if scheduler else None
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        _f(w).backward()
        opt.step()
        if sched:
            sched.step()
        traj.append(w.detach().numpy().copy())
    return np.array(traj)


CASES = [
    ("sgd", {"learning_rate": 0.02}, lambda p: torch.optim.SGD(p, lr=0.02)),
    ("sgd_momentum", {"learning_rate": 0.01, "momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    ("nesterov", {"learning_rate": 0.01, "momentum": 0.9},
     lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True)),
    # torch AdaGrad: eps default 1e-10 and an initial accumulator; pass the course's values
    ("adagrad", {"learning_rate": 0.1, "epsilon": 1e-8},
     lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-8, initial_accumulator_value=0.0, lr_decay=0.0)),
    ("rmsprop", {"learning_rate": 0.01, "decay_rate": 0.9, "epsilon": 1e-8},
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    ("adam", {"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
     lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
]


@pytest.mark.parametrize("rule,config,make_opt", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_torch_optim(rule, config, make_opt):
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    ours, theirs = _ours(rule, config, 60, w0), _torch(make_opt, 60, w0)
    assert np.abs(ours - w0).max() > 0.1  # the problem really moves the weights
    assert np.allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_nesterov_transform_form_equals_the_look_ahead_form():
    # Look-ahead form (Sutskever et al. 2013): v = mu v - lr grad(x + mu v); x += v.
    # The course stores phi = x + mu v instead; both describe the same iterates.
    mu, lr, w0 = 0.9, 0.01, np.array([1.0, -2.0, 0.5, 3.0])
    x, v = w0.copy(), np.zeros(4)
    ours = _ours("nesterov", {"learning_rate": lr, "momentum": mu}, 40, w0)
    for step in range(40):
        v = mu * v - lr * _grad(x + mu * v)
        x = x + v
        assert np.allclose(ours[step], x + mu * v, rtol=1e-9, atol=1e-12)


def test_momentum_differs_from_torch_once_the_learning_rate_decays():
    # documented difference: torch's buffer b is scaled by the current lr at each step,
    # the course's velocity keeps the lr it was built with
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    theirs = _torch(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), 20, w0,
                    scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1))
    w, cfg, ours = w0.copy(), {"learning_rate": 0.01, "momentum": 0.9}, []
    for step in range(20):
        cfg["learning_rate"] = optim.step_decay(0.01, step, 10, 0.1)
        w, cfg = optim.sgd_momentum(w, _grad(w), cfg)
        ours.append(w.copy())
    assert np.allclose(ours[:10], theirs[:10], atol=1e-9)
    assert np.abs(np.array(ours[10:]) - theirs[10:]).max() > 1e-3


def test_adam_first_step_is_lr_times_sign_thanks_to_bias_correction():
    w, _ = optim.adam(np.zeros(3), np.array([0.5, -2.0, 1e-3]), {"learning_rate": 0.1})
    assert np.allclose(w, [-0.1, 0.1, -0.1], atol=1e-5)


def test_decay_schedules_match_torch_schedulers():
    p = [torch.zeros(1, requires_grad=True)]
    for make, ours in [
        (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), lambda e: optim.step_decay(0.1, e, 3, 0.5)),
        (lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=math.exp(-0.2)), lambda e: optim.exponential_decay(0.1, e, 0.2)),
        (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + 0.5 * e)), lambda e: optim.inverse_time_decay(0.1, e, 0.5)),
    ]:
        opt = torch.optim.SGD(p, lr=0.1)
        sched = make(opt)
        for epoch in range(10):
            assert math.isclose(opt.param_groups[0]["lr"], ours(epoch), rel_tol=1e-12)
            opt.step()
            sched.step()


def test_unknown_update_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown update rule"):
        optim.get_update_rule("lbfgs")
