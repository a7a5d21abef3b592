"""The lab: every measurable claim of the course as a one-command experiment with a plot and a number.

    cnnlab lab list
    cnnlab lab run relu-vs-saturating --seeds 3
    cnnlab lab run --all --quick

Each experiment (one module per claim, or per few claims sharing everything) trains through the
engine's own Trainer (``core.Context.train``) or, for claims about forward/backward statistics,
measures the models and ops that exist; it returns numbers, figures and a verdict that says
whether the claim held on this run and by how much.
"""

from cnnlab.lab.core import Context, Outcome
from cnnlab.lab.registry import Experiment, get_experiment, list_experiments, register_experiment
from cnnlab.lab.runner import run_experiment

__all__ = ["Context", "Outcome", "Experiment", "register_experiment", "get_experiment", "list_experiments",
           "run_experiment"]
