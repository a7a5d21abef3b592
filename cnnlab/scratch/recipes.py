"""One training recipe per scratch model: the hyperparameters behind `cnnlab scratch train`.

``train_scratch(name, data)`` trains the model on a dataset dict from cnnlab.scratch.data
and returns a ScratchResult with train/val/test accuracy and the curve to plot (loss per
iteration; for kNN, cross-validation accuracy per k). The values were tuned on the digits
validation split; the tests hold the softmax classifier to >= 93% and the conv net to
>= 97% test accuracy on digits with exactly these recipes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.scratch.classifiers import KNearestNeighbor, LinearSVM, SoftmaxClassifier, best_k, cross_validate_k
from cnnlab.scratch.nets import ThreeLayerConvNet, TwoLayerNet
from cnnlab.scratch.solver import Solver

MODELS = ("knn", "svm", "softmax", "twolayer", "convnet")
KNN_KS = [1, 3, 5, 8, 10, 15, 20]
KNN_CV_MAX = 5000  # cross-validate k on at most this many training images (distances are O(N^2))
LINEAR = {"svm": dict(learning_rate=0.1, reg=1e-4, num_iters=1500, batch_size=200),
          "softmax": dict(learning_rate=0.3, reg=1e-4, num_iters=1500, batch_size=200)}
NETS = {"twolayer": dict(epochs=30, update_rule="adam", learning_rate=1e-3, lr_decay=1.0, batch_size=50),
        "convnet": dict(epochs=20, update_rule="adam", learning_rate=2e-3, lr_decay=0.9, batch_size=50)}
FASHION_EPOCHS = {"twolayer": 10, "convnet": 5}  # 28x28 images, 44x more of them: fewer passes


@dataclass
class ScratchResult:
    model_name: str
    train_acc: float
    val_acc: float
    test_acc: float
    curve: list[float]  # loss per iteration, or mean CV accuracy per k for kNN
    curve_x: list[float]
    curve_label: str
    epochs_train_acc: list[float] = field(default_factory=list)
    epochs_val_acc: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    model: object = None


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y)) if len(y) else 0.0


def _knn(data: dict) -> ScratchResult:
    n_cv = min(len(data["y_train"]), KNN_CV_MAX)
    ks = [k for k in KNN_KS if k <= n_cv * 4 // 5] or [1]
    cv = cross_validate_k(data["X_train"][:n_cv], data["y_train"][:n_cv], ks, num_folds=min(5, n_cv))
    k = best_k(cv)
    knn = KNearestNeighbor().train(data["X_train"], data["y_train"])
    train_n = min(len(data["y_train"]), 1000)  # kNN's own training accuracy at k=1 is trivially 100%
    acc = [_acc(knn.predict(data[f"X_{s}"][:m], k), data[f"y_{s}"][:m])
           for s, m in (("train", train_n), ("val", None), ("test", None))]
    return ScratchResult("knn", *acc, curve=[float(np.mean(cv[k])) for k in ks], curve_x=list(ks),
                         curve_label="cross-validation accuracy", info={"k": k, "cv_examples": n_cv}, model=knn)


def _linear(name: str, data: dict, epochs: int | None, seed: int, progress) -> ScratchResult:
    cfg = dict(LINEAR[name])
    if epochs is not None:  # an "epoch" here = one pass of minibatches over the training set
        cfg["num_iters"] = max(1, epochs * len(data["y_train"]) // cfg["batch_size"])
    clf = (LinearSVM if name == "svm" else SoftmaxClassifier)(seed=seed)
    history = clf.train(data["X_train"], data["y_train"], progress=progress, **cfg)
    acc = [_acc(clf.predict(data[f"X_{s}"]), data[f"y_{s}"]) for s in ("train", "val", "test")]
    return ScratchResult(name, *acc, curve=history, curve_x=list(range(1, len(history) + 1)),
                         curve_label="training loss", info=cfg, model=clf)


def _net(name: str, data: dict, epochs: int | None, seed: int, progress) -> ScratchResult:
    cfg = dict(NETS[name])
    if data.get("name") == "fashion-mnist":
        cfg["epochs"] = FASHION_EPOCHS[name]
    cfg["epochs"] = epochs or cfg["epochs"]
    num_classes = int(max(data["y_train"].max(), data["y_val"].max(), data["y_test"].max())) + 1
    shape = data["X_train"].shape[1:]  # (C, H, W)
    if name == "twolayer":
        model = TwoLayerNet(int(np.prod(shape)), 100, num_classes, reg=1e-3, seed=seed)
    else:
        model = ThreeLayerConvNet(shape, 32, 3, 128, num_classes, reg=1e-3, seed=seed)
    solver = Solver(model, data, update_rule=cfg["update_rule"], optim_config={"learning_rate": cfg["learning_rate"]},
                    lr_decay=cfg["lr_decay"], batch_size=cfg["batch_size"], num_epochs=cfg["epochs"], seed=seed,
                    progress=progress)
    solver.train()  # leaves the best-validation parameters in the model
    acc = [solver.check_accuracy(data[f"X_{s}"], data[f"y_{s}"]) for s in ("train", "val", "test")]
    return ScratchResult(name, *acc, curve=solver.loss_history, curve_x=list(range(1, len(solver.loss_history) + 1)),
                         curve_label="training loss", epochs_train_acc=solver.train_acc_history,
                         epochs_val_acc=solver.val_acc_history, info=cfg, model=model)


def train_scratch(name: str, data: dict, epochs: int | None = None, seed: int = 0,
                  progress: Callable[[int, int, float], None] | None = None) -> ScratchResult:
    """Train scratch model ``name`` (knn, svm, softmax, twolayer, convnet) with its recipe."""
    if name not in MODELS:
        raise ConfigError(f"unknown scratch model {name!r}; choose one of {', '.join(MODELS)}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if name == "knn":
        return _knn(data)
    if name in LINEAR:
        return _linear(name, data, epochs, seed, progress)
    return _net(name, data, epochs, seed, progress)
