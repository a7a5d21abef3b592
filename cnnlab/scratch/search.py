"""Random hyperparameter search, sampling scale parameters uniformly in log space.

The course's advice (Bergstra & Bengio 2012): random search beats grid search because it
tries more distinct values of the parameters that matter, and learning rates and
regularization strengths should be sampled as 10 ** uniform(log10 low, log10 high).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cnnlab.errors import ConfigError


def sample_params(space: dict, rng: np.random.Generator) -> dict:
    """One draw from ``space``: name -> (low, high, 'log' | 'linear' | 'int')."""
    params = {}
    for name, (low, high, scale) in space.items():
        if not low <= high:
            raise ConfigError(f"search space {name!r}: low {low} must not exceed high {high}")
        if scale == "log":
            if low <= 0:
                raise ConfigError(f"search space {name!r}: a log-scale range must be positive, got low={low}")
            params[name] = float(10 ** rng.uniform(np.log10(low), np.log10(high)))
        elif scale == "linear":
            params[name] = float(rng.uniform(low, high))
        elif scale == "int":
            params[name] = int(rng.integers(low, high + 1))
        else:
            raise ConfigError(f"search space {name!r}: scale must be 'log', 'linear' or 'int', got {scale!r}")
    return params


def random_search(objective: Callable[[dict], float], space: dict, num_trials: int = 10,
                  seed: int = 0) -> list[tuple[dict, float]]:
    """Evaluate ``objective`` (e.g. validation accuracy, higher is better) at random draws.

    Returns every (params, score), best first.
    """
    if num_trials < 1:
        raise ConfigError(f"num_trials must be >= 1, got {num_trials}")
    rng = np.random.default_rng(seed)
    trials = [(p, float(objective(p))) for p in (sample_params(space, rng) for _ in range(num_trials))]
    return sorted(trials, key=lambda t: -t[1])
