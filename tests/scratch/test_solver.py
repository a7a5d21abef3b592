import math

import numpy as np
import pytest

from cnnlab.errors import ConfigError, TrainingError
from cnnlab.scratch.nets import TwoLayerNet
from cnnlab.scratch.sanity import check_initial_loss, check_overfit_small, check_regularization_raises_loss
from cnnlab.scratch.solver import Solver


def _blobs(n: int, seed: int = 0, classes: int = 3, dim: int = 5):
    """Gaussian blobs around fixed class centres: easy but not trivial."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim)) * 2
    y = rng.integers(0, classes, n)
    return centres[y] + rng.standard_normal((n, dim)), y


def _data():
    X, y = _blobs(300)
    Xv, yv = _blobs(100, seed=1)
    return {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}


def test_solver_trains_records_histories_and_keeps_best_params():
    data = _data()
    model = TwoLayerNet(5, 20, 3, seed=0)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=50,
                    num_epochs=5, lr_decay=0.5)
    solver.train()
    assert len(solver.loss_history) == 5 * 6 and len(solver.val_acc_history) == 5 == len(solver.train_acc_history)
    assert np.mean(solver.loss_history[-6:]) < 0.5 * solver.loss_history[0]
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.8
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == solver.best_val_acc  # best params restored
    assert math.isclose(solver.configs["W1"]["learning_rate"], 1e-2 * 0.5**5)  # decayed once per epoch


def test_solver_progress_callback_and_errors():
    data = _data()
    calls = []
    Solver(TwoLayerNet(5, 4, 3), data, batch_size=100, num_epochs=2, progress=lambda i, n, loss: calls.append((i, n))).train()
    assert calls == [(i, 6) for i in range(1, 7)]
    with pytest.raises(ConfigError, match="missing X_val"):
        Solver(TwoLayerNet(5, 4, 3), {"X_train": 0, "y_train": 0, "y_val": 0})


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_solver_stops_on_a_diverging_loss():
    with pytest.raises(TrainingError, match="learning rate"):
        Solver(TwoLayerNet(5, 4, 3, weight_scale=1.0), _data(), optim_config={"learning_rate": 1e200}, num_epochs=3).train()


def test_babysitting_checks_pass_on_a_correct_model():
    X, y = _blobs(200)
    model = TwoLayerNet(5, 50, 3, weight_scale=1e-3, seed=0)  # tiny weights: uniform scores
    initial = check_initial_loss(model, X, y)
    assert initial.ok and abs(initial.value - math.log(3)) < 1e-3
    assert check_regularization_raises_loss(model, X, y, reg=1.0).ok
    overfit = check_overfit_small(TwoLayerNet(5, 50, 3, seed=0), X, y, num_examples=20)
    assert overfit.ok and overfit.value == 1.0


def test_babysitting_checks_fail_on_broken_setups():
    X, y = _blobs(200)
    assert not check_initial_loss(TwoLayerNet(5, 50, 3, weight_scale=10.0), X, y).ok  # huge init: loss >> ln C
    assert not check_regularization_raises_loss(TwoLayerNet(5, 50, 3), X, y, reg=-1.0).ok
    frozen = check_overfit_small(TwoLayerNet(5, 50, 3), X, y, num_examples=20, optim_config={"learning_rate": 0.0})
    assert not frozen.ok
