import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from cnnlab.errors import ConfigError
from cnnlab.scratch.classifiers import (KNearestNeighbor, LinearSVM, SoftmaxClassifier, best_k, cross_validate_k,
                                        pairwise_distances)
from cnnlab.scratch.data import load_digits_data
from cnnlab.scratch.recipes import train_scratch
from cnnlab.scratch.search import random_search, sample_params
from tests.scratch.helpers import close, t


@pytest.mark.parametrize("metric,p", [("l1", 1.0), ("l2", 2.0)])
def test_pairwise_distances_match_torch_cdist(metric, p, rng):
    A, B = rng.standard_normal((7, 2, 3, 2)), rng.standard_normal((11, 12))
    ours = pairwise_distances(A, B, metric, max_elements=100)  # tiny chunks exercise the L1 loop
    assert close(ours, torch.cdist(t(A.reshape(7, -1), False), t(B, False), p=p))


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_knn_predictions_match_scikit_learn(metric, rng):
    X, y = rng.standard_normal((120, 6)), rng.integers(0, 4, 120)
    Xt = rng.standard_normal((40, 6))
    for k in (1, 5):
        ours = KNearestNeighbor(metric, chunk=16).train(X, y).predict(Xt, k)
        ref = KNeighborsClassifier(k, algorithm="brute", p=1 if metric == "l1" else 2).fit(X, y).predict(Xt)
        assert np.array_equal(ours, ref)


def test_knn_vote_ties_go_to_the_smallest_label():
    knn = KNearestNeighbor().train(np.array([[0.0], [1.0], [-1.0], [5.0]]), np.array([2, 1, 2, 1]))
    assert knn.predict(np.array([[0.4]]), k=2)[0] == 1  # nearest two: labels 2 (d .4) and 1 (d .6) -> tie -> 1
    with pytest.raises(ConfigError, match="k must be"):
        knn.predict(np.zeros((1, 1)), k=5)


def test_cross_validation_picks_a_sensible_k():
    d = load_digits_data()
    results = cross_validate_k(d["X_train"][:500], d["y_train"][:500], [1, 3, 50], num_folds=5)
    assert all(len(v) == 5 for v in results.values())
    assert best_k(results) in (1, 3) and np.mean(results[50]) < np.mean(results[1])
    assert best_k({1: [0.5], 3: [0.9], 5: [0.9]}) == 3  # smallest k among ties


@pytest.mark.parametrize("cls,torch_loss", [
    (SoftmaxClassifier, lambda s, y: torch.nn.functional.cross_entropy(s, y)),
    (LinearSVM, lambda s, y: torch.nn.functional.multi_margin_loss(s, y) * s.shape[1]),
])
def test_linear_classifier_loss_and_gradients_match_torch(cls, torch_loss, rng):
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    clf = cls()
    clf.W, clf.b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    loss, dW, db = clf.loss(X, y, reg=0.1)
    tW, tb = t(clf.W), t(clf.b)
    tloss = torch_loss(t(X, False) @ tW + tb, torch.tensor(y)) + 0.05 * (tW * tW).sum()
    tloss.backward()
    assert close(loss, tloss) and close(dW, tW.grad) and close(db, tb.grad)


def test_softmax_classifier_reaches_93_percent_on_digits():
    result = train_scratch("softmax", load_digits_data())
    assert result.test_acc >= 0.93
    assert result.curve[-1] < result.curve[0]


def test_linear_svm_and_knn_on_digits():
    d = load_digits_data()
    assert train_scratch("svm", d).test_acc >= 0.93
    knn = train_scratch("knn", d)
    assert knn.test_acc >= 0.97 and knn.info["k"] in (1, 3, 5)


def test_random_search_samples_log_uniformly_and_returns_the_best_first():
    rng = np.random.default_rng(0)
    draws = np.array([sample_params({"lr": (1e-6, 1e-2, "log")}, rng)["lr"] for _ in range(4000)])
    assert draws.min() >= 1e-6 and draws.max() <= 1e-2
    decades = np.histogram(np.log10(draws), bins=4, range=(-6, -2))[0]
    assert decades.min() > 900  # ~1000 per decade: uniform in log space, not in value
    space = {"lr": (1e-5, 1e-1, "log"), "hidden": (10, 20, "int"), "drop": (0.0, 0.5, "linear")}
    trials = random_search(lambda p: -abs(np.log10(p["lr"]) + 3), space, num_trials=30, seed=1)
    scores = [s for _, s in trials]
    assert scores == sorted(scores, reverse=True) and len(trials) == 30
    assert abs(np.log10(trials[0][0]["lr"]) + 3) < 0.3
    assert all(10 <= p["hidden"] <= 20 and isinstance(p["hidden"], int) for p, _ in trials)


def test_random_search_rejects_bad_spaces():
    with pytest.raises(ConfigError, match="positive"):
        sample_params({"lr": (0.0, 1.0, "log")}, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="scale"):
        sample_params({"lr": (0.1, 1.0, "cubic")}, np.random.default_rng(0))
