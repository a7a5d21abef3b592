"""The course's first image classifiers: k-nearest neighbours and the linear classifiers
(multiclass SVM and softmax) trained with mini-batch SGD.

Images are flattened to rows: X (N, D). k for kNN is chosen by k-fold cross-validation,
the course's recipe for any hyperparameter when data is scarce.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError, ShapeError
from cnnlab.scratch import losses


def _rows(X: np.ndarray) -> np.ndarray:
    return X.reshape(X.shape[0], -1)


def pairwise_distances(A: np.ndarray, B: np.ndarray, metric: str = "l2", max_elements: int = 2**24) -> np.ndarray:
    """Distances between every row of A (M, D) and B (N, D) -> (M, N), no Python loop per pair.

    L2 uses ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b (one matrix multiply); L1 has no such
    identity, so it broadcasts (chunk, N, D) differences, in chunks to bound memory.
    """
    A, B = _rows(A), _rows(B)
    if A.shape[1] != B.shape[1]:
        raise ShapeError(f"distances: feature sizes differ, {A.shape[1]} vs {B.shape[1]}")
    if metric == "l2":
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T  # (M, N)
        return np.sqrt(np.maximum(sq, 0.0))
    if metric == "l1":
        chunk = max(1, max_elements // max(1, B.shape[0] * B.shape[1]))
        return np.concatenate([np.abs(A[i : i + chunk, None, :] - B[None]).sum(-1) for i in range(0, len(A), chunk)])
    raise ConfigError(f"unknown distance {metric!r}; use 'l1' or 'l2'")


class KNearestNeighbor:
    """Predict the majority label of the k closest training images (ties: smallest label).

    Test images are processed ``chunk`` rows at a time so the (chunk, N_train) distance
    matrix stays small even for Fashion-MNIST's 55000 training images.
    """

    def __init__(self, metric: str = "l2", chunk: int = 256):
        self.metric, self.chunk = metric, chunk

    def train(self, X: np.ndarray, y: np.ndarray) -> "KNearestNeighbor":
        self.X_train, self.y_train = _rows(X), np.asarray(y)  # training is memorising
        return self

    @staticmethod
    def nearest(dists: np.ndarray, k: int) -> np.ndarray:
        """Indices (M, k) of the k smallest distances per row, closest first (ties: lower index)."""
        if not 1 <= k <= dists.shape[1]:
            raise ConfigError(f"k must be between 1 and the {dists.shape[1]} training examples, got {k}")
        idx = np.argpartition(dists, k - 1, axis=1)[:, :k] if k < dists.shape[1] else np.tile(np.arange(k), (len(dists), 1))
        order = np.lexsort((idx, np.take_along_axis(dists, idx, axis=1)), axis=1)  # by distance, then index
        return np.take_along_axis(idx, order, axis=1)

    def vote(self, nearest: np.ndarray) -> np.ndarray:
        """Majority label of each row of training indices (ties: smallest label)."""
        labels = self.y_train[nearest]  # (M, k)
        votes = np.zeros((len(labels), int(self.y_train.max()) + 1), dtype=np.int64)
        np.add.at(votes, (np.arange(len(labels))[:, None], labels), 1)
        return votes.argmax(axis=1)  # argmax returns the first (smallest) label on ties

    def predict_many(self, X: np.ndarray, ks: list[int]) -> dict:
        """{k: predicted labels} for several k from one pass over the distances."""
        X = _rows(X)
        preds = {k: [] for k in ks}
        for i in range(0, len(X), self.chunk):
            dists = pairwise_distances(X[i : i + self.chunk], self.X_train, self.metric)  # (chunk, N_train)
            closest = self.nearest(dists, max(ks))  # (chunk, max k): sorted, so any k is a prefix
            for k in ks:
                preds[k].append(self.vote(closest[:, :k]))
        return {k: np.concatenate(p) if p else np.zeros(0, dtype=np.int64) for k, p in preds.items()}

    def predict(self, X: np.ndarray, k: int = 1) -> np.ndarray:
        return self.predict_many(X, [k])[k]


def cross_validate_k(X: np.ndarray, y: np.ndarray, ks: list[int], num_folds: int = 5, metric: str = "l2") -> dict:
    """k-fold cross-validation of kNN: {k: [accuracy on each held-out fold]}.

    Each fold's distances are computed once and reused for every k.
    """
    if num_folds < 2 or num_folds > len(y):
        raise ConfigError(f"num_folds must be between 2 and the number of examples ({len(y)}), got {num_folds}")
    X_folds, y_folds = np.array_split(_rows(X), num_folds), np.array_split(np.asarray(y), num_folds)
    results = {k: [] for k in ks}
    for i in range(num_folds):
        knn = KNearestNeighbor(metric).train(np.concatenate(X_folds[:i] + X_folds[i + 1 :]),
                                             np.concatenate(y_folds[:i] + y_folds[i + 1 :]))
        for k, pred in knn.predict_many(X_folds[i], ks).items():
            results[k].append(float(np.mean(pred == y_folds[i])))
    return results


def best_k(results: dict) -> int:
    """The k with the highest mean cross-validation accuracy (smallest k on ties)."""
    return max(sorted(results), key=lambda k: np.mean(results[k]))


class LinearClassifier:
    """Scores x W + b trained by minibatch SGD on a data loss plus 0.5 reg ||W||^2."""

    data_loss = staticmethod(losses.softmax_loss)

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def loss(self, X: np.ndarray, y: np.ndarray, reg: float):
        """(loss, dW, db) on the batch (X, y)."""
        X = _rows(X)
        loss, dscores = self.data_loss(X @ self.W + self.b, y)  # (N, C)
        penalty, dpen = losses.l2_penalty(self.W, reg)
        return loss + penalty, X.T @ dscores + dpen, dscores.sum(axis=0)

    def train(self, X: np.ndarray, y: np.ndarray, learning_rate: float = 1e-3, reg: float = 1e-5,
              num_iters: int = 1000, batch_size: int = 200, progress=None) -> list[float]:
        """Minibatch SGD; returns the loss history (one entry per iteration)."""
        X = _rows(X)
        num_classes = int(np.max(y)) + 1
        if self.W is None:
            self.W = 1e-3 * self.rng.standard_normal((X.shape[1], num_classes)).astype(X.dtype)
            self.b = np.zeros(num_classes, dtype=X.dtype)
        history = []
        for it in range(num_iters):
            idx = self.rng.choice(len(y), min(batch_size, len(y)), replace=False)
            loss, dW, db = self.loss(X[idx], y[idx], reg)
            self.W -= learning_rate * dW
            self.b -= learning_rate * db
            history.append(float(loss))
            if progress is not None:
                progress(it + 1, num_iters, history[-1])
        return history

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(_rows(X) @ self.W + self.b, axis=1)


class LinearSVM(LinearClassifier):
    """Multiclass SVM: the hinge loss wants the correct score ahead by a margin of 1."""

    data_loss = staticmethod(losses.svm_loss)


class SoftmaxClassifier(LinearClassifier):
    """Softmax (multinomial logistic regression): cross-entropy on normalised probabilities."""

    data_loss = staticmethod(losses.softmax_loss)
