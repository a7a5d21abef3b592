"""ROC / AUC / EER / TAR@FAR / one-shot accuracy against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

from cnnlab.metrics.verification import (auc, equal_error_rate, one_shot_accuracy, pair_trials, roc_curve,
                                         tar_at_far, verification_metrics)


def test_roc_curve_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=400), 1)  # many ties
    labels = rng.random(400) < 0.3
    fpr, tpr, thr = roc_curve(torch.from_numpy(scores), torch.from_numpy(labels))
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(fpr.numpy(), sk_fpr) and np.allclose(tpr.numpy(), sk_tpr)
    assert np.allclose(thr.numpy()[1:], sk_thr[1:])
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_eer_and_tar_hand_computed():
    # scores of 2 positives (0.9, 0.4) and 2 negatives (0.6, 0.1):
    # thresholds inf: (fpr 0, tpr 0); .9: (0, .5); .6: (.5, .5); .4: (.5, 1); .1: (1, 1)
    fpr, tpr, thr = roc_curve(torch.tensor([0.9, 0.4, 0.6, 0.1]), torch.tensor([True, True, False, False]))
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    eer, t = equal_error_rate(fpr, tpr, thr)
    assert eer == pytest.approx(0.5) and t == pytest.approx(0.6)  # FAR = FRR = 0.5 at threshold 0.6
    assert tar_at_far(fpr, tpr, 0.0) == 0.5 and tar_at_far(fpr, tpr, 0.5) == 1.0
    assert auc(fpr, tpr) == pytest.approx(0.75)


def test_eer_interpolates():
    # positives 3, 2 ; negatives 2.5, 0: fpr/tpr: (0,0) (0,.5) (.5,.5) (.5,1) (1,1): crossing between .5/.5 points
    fpr, tpr, thr = roc_curve(torch.tensor([3.0, 2.0, 2.5, 0.0]), torch.tensor([True, True, False, False]))
    eer, _ = equal_error_rate(fpr, tpr, thr)
    assert eer == pytest.approx(0.5)
    # a perfect separation: EER 0
    fpr, tpr, thr = roc_curve(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([True, True, False, False]))
    assert equal_error_rate(fpr, tpr, thr)[0] == 0.0


def test_pair_trials_and_one_shot_hand_computed():
    # 1-d points: identity 0 at 0, 0.1 ; identity 1 at 1, 1.1 ; identity 2 at 5 and 0.05 (an outlier near id 0)
    x = torch.tensor([[0.0], [0.1], [1.0], [1.1], [5.0], [0.05]])
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    d = torch.cdist(x, x)
    dist, same = pair_trials(d, ids)
    assert len(dist) == 15 and int(same.sum()) == 3
    acc = one_shot_accuracy(d, ids, rounds=2000, seed=0)
    # oracle: the 8 equally likely galleries (one image per identity), 3 queries each, nearest wins
    import itertools

    hits = 0
    for g in itertools.product([0, 1], [2, 3], [4, 5]):
        for q in set(range(6)) - set(g):
            hits += int(ids[list(g)[int(d[q, list(g)].argmin())]] == ids[q])
    assert acc == pytest.approx(hits / 24, abs=0.03)
    m = verification_metrics(d, ids)
    assert m["oneshot_way"] == 3 and m["pairs"] == 15 and 0 <= m["eer"] <= 1


def test_separable_encodings_score_perfectly():
    x = torch.cat([torch.randn(20, 4) * 0.01 + c for c in (0.0, 5.0, 10.0)])
    ids = torch.arange(60) // 20
    m = verification_metrics(torch.cdist(x, x).pow(2), ids)
    assert m["eer"] == 0 and m["auc"] == 1 and m["tar_far1e-3"] == 1 and m["oneshot_acc"] == 1
