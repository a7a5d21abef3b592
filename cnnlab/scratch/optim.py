"""First-order update rules as the course writes them, and learning-rate decay schedules.

Each rule is ``next_w, config = rule(w, dw, config)``: ``config`` carries the
hyperparameters and the rule's state (velocity, caches, step count) from one call to the
next, so the Solver can keep one config per parameter.

Relation to torch.optim (tests check the trajectories agree):
* momentum: the course keeps v = mu v - lr dw, w += v; torch keeps b = mu b + dw,
  w -= lr b. With a constant learning rate v = -lr b, so the iterates are identical; under
  learning-rate decay they differ (torch rescales the whole buffer by the current lr).
* Nesterov: the course's variable-transform form (update the look-ahead point
  w + mu v directly) equals torch's nesterov=True step w -= lr (dw + mu b) exactly.
* AdaGrad, RMSProp, Adam: same formulas as torch (eps added after the square root,
  accumulators starting at zero, Adam's bias correction); torch's defaults differ
  (AdaGrad eps 1e-10, RMSProp alpha 0.99), so pass the same values to compare.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.errors import ConfigError


def sgd(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Vanilla gradient descent: w -= lr dw."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Momentum: a velocity integrates the gradient, v = mu v - lr dw; w += v."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def nesterov(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Nesterov momentum in the course's variable-transform form.

    The stored w is the look-ahead point, so dw is already the look-ahead gradient:
    v_prev = v; v = mu v - lr dw; w += -mu v_prev + (1 + mu) v.
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    mu = config["momentum"]
    v_prev = config.get("velocity", np.zeros_like(w))
    v = mu * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w - mu * v_prev + (1 + mu) * v, config


def adagrad(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """AdaGrad: per-parameter steps lr / sqrt(sum of squared gradients); they only shrink."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("epsilon", 1e-8)
    cache = config.get("cache", np.zeros_like(w)) + dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config


def rmsprop(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """RMSProp: AdaGrad with a leaky (moving-average) cache, so steps do not decay to zero."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    rho = config["decay_rate"]
    cache = rho * config.get("cache", np.zeros_like(w)) + (1 - rho) * dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config


def adam(w: np.ndarray, dw: np.ndarray, config: dict | None = None):
    """Adam: momentum (first moment) + RMSProp (second moment), both bias-corrected."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    b1, b2 = config["beta1"], config["beta2"]
    t = config.get("t", 0) + 1
    m = b1 * config.get("m", np.zeros_like(w)) + (1 - b1) * dw
    v = b2 * config.get("v", np.zeros_like(w)) + (1 - b2) * dw * dw
    config.update(t=t, m=m, v=v)
    m_hat = m / (1 - b1**t)  # early steps: the zero-initialised moments are biased toward 0
    v_hat = v / (1 - b2**t)
    return w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"]), config


UPDATE_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "nesterov": nesterov,
                "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


def get_update_rule(name: str):
    if name not in UPDATE_RULES:
        raise ConfigError(f"unknown update rule {name!r}; choose one of {', '.join(UPDATE_RULES)}")
    return UPDATE_RULES[name]


# ---------------------------------------------------------------- learning-rate decay
def step_decay(lr0: float, epoch: int, step_size: int, gamma: float = 0.1) -> float:
    """Multiply the rate by gamma every step_size epochs (torch's StepLR)."""
    return lr0 * gamma ** (epoch // step_size)


def exponential_decay(lr0: float, t: float, k: float) -> float:
    """lr0 exp(-k t) (torch's ExponentialLR with gamma = exp(-k))."""
    return lr0 * math.exp(-k * t)


def inverse_time_decay(lr0: float, t: float, k: float) -> float:
    """1/t decay: lr0 / (1 + k t)."""
    return lr0 / (1.0 + k * t)
