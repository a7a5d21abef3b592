"""The experiment registry: every claim of the course the lab can test, by name.

    @register_experiment(name="relu-vs-tanh", claim="ReLU converges several times faster than tanh",
                         section="CS231n lecture 6, activation functions", budget_s=90)
    def relu_vs_tanh(ctx: Context) -> Outcome: ...

An experiment is one function of a ``Context`` (seeds, quick mode, output folder, the training
helper) that returns an ``Outcome`` (numbers, figures, a verdict). The runner (``runner.py``)
writes its report.md and results.json.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from cnnlab.errors import ConfigError

# one module per experiment (or a few claims that share everything)
EXPERIMENT_MODULES = (
    "activations", "dying_relu", "init", "batchnorm", "residual", "regularization", "optim2d", "optim_training",
    "lbfgs", "search_exp", "ensembles", "transfer", "architecture", "losses", "rnn",
)


@dataclass(frozen=True)
class Experiment:
    name: str
    claim: str
    section: str  # where the course makes the claim
    budget_s: int  # the full run's budget on 2 cores, one seed
    fn: Callable
    trains: bool = True  # False: forward/backward statistics only, no training

    @property
    def budget(self) -> str:
        return f"~{self.budget_s} s" if self.budget_s < 120 else f"~{self.budget_s / 60:.0f} min"


_REGISTRY: dict[str, Experiment] = {}


def register_experiment(*, name: str, claim: str, section: str, budget_s: int, trains: bool = True) -> Callable:
    """Decorator: register ``fn(ctx) -> Outcome`` as the experiment ``name``."""

    def wrap(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        _REGISTRY[name] = Experiment(name, claim, section, budget_s, fn, trains)
        return fn

    return wrap


def _import_all() -> None:
    for m in EXPERIMENT_MODULES:
        importlib.import_module(f"cnnlab.lab.{m}")


def list_experiments() -> list[Experiment]:
    """Every experiment, shortest budget first."""
    _import_all()
    return sorted(_REGISTRY.values(), key=lambda e: (e.budget_s, e.name))


def get_experiment(name: str) -> Experiment:
    _import_all()
    if name not in _REGISTRY:
        close = [n for n in sorted(_REGISTRY) if n.split("-")[0] in name or name.split("-")[0] in n][:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ConfigError(f"unknown experiment {name!r}{hint}; run `cnnlab lab list` to see them")
    return _REGISTRY[name]
