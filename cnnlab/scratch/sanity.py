"""The course's "babysitting the learning process" checks, as functions.

Before a long training run: (1) with no regularization the initial softmax loss should be
about ln(C) (uniform scores), (2) adding regularization should raise the loss, and (3) the
model should overfit a tiny training subset to ~100% accuracy. If any fails, the model or
its gradients are wrong, and a longer run will not fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnlab.scratch.solver import Solver


@dataclass
class SanityResult:
    name: str
    value: float
    expected: str
    ok: bool


def _loss_with_reg(model, X: np.ndarray, y: np.ndarray, reg: float) -> float:
    old = getattr(model, "reg", 0.0)
    model.reg = reg
    try:
        return float(model.loss(X, y)[0])
    finally:
        model.reg = old


def check_initial_loss(model, X: np.ndarray, y: np.ndarray, rel_tol: float = 0.1) -> SanityResult:
    """Softmax loss at initialisation without regularization should be close to ln(C)."""
    num_classes = model.loss(X[:1]).shape[1]
    loss = _loss_with_reg(model, X, y, 0.0)
    expected = math.log(num_classes)
    return SanityResult("initial loss ~ ln(C)", loss, f"{expected:.4f} +- {rel_tol:.0%}",
                        abs(loss - expected) <= rel_tol * expected)


def check_regularization_raises_loss(model, X: np.ndarray, y: np.ndarray, reg: float = 1.0) -> SanityResult:
    """The same weights with a regularization penalty added must have a larger loss."""
    base, with_reg = _loss_with_reg(model, X, y, 0.0), _loss_with_reg(model, X, y, reg)
    return SanityResult(f"loss rises with reg={reg:g}", with_reg, f"> {base:.4f}", with_reg > base)


def check_overfit_small(model, X: np.ndarray, y: np.ndarray, num_examples: int = 50, num_epochs: int = 40,
                        update_rule: str = "adam", optim_config: dict | None = None, min_acc: float = 0.99,
                        seed: int = 0) -> SanityResult:
    """Train on ``num_examples`` examples without regularization; accuracy on them should reach ~100%."""
    Xs, ys = X[:num_examples], y[:num_examples]
    old = getattr(model, "reg", 0.0)
    model.reg = 0.0
    try:
        solver = Solver(model, {"X_train": Xs, "y_train": ys, "X_val": Xs, "y_val": ys}, update_rule=update_rule,
                        optim_config=optim_config or {"learning_rate": 1e-2}, batch_size=min(25, len(ys)),
                        num_epochs=num_epochs, num_train_samples=None, seed=seed)
        solver.train()
        acc = solver.check_accuracy(Xs, ys)
    finally:
        model.reg = old
    return SanityResult(f"overfits {len(ys)} examples", acc, f">= {min_acc:.0%}", acc >= min_acc)
