"""Receptive fields and patches, neighbours, embeddings, filters and activations."""

import numpy as np
from torch import nn

from cnnlab.explain import activations, filters, neighbours, patches, tsne
from cnnlab.explain.common import Subject
from tests.explain.conftest import blob_images


def test_layer_geometry_matches_hand_computed_receptive_field():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2 * 8 * 8, 2))
    s = Subject(model, ["a", "b"], (16, 16), 1)
    g = patches.layer_geometry(s, "0")
    assert (g.rf, g.jump, g.start) == (3, 1, 0.0)
    g = patches.layer_geometry(s, "2")  # 3 -> pool 2 -> 3: 1 + 2 + 1 + 2*2 = 8 px, units 2 px apart
    assert (g.rf, g.jump, g.start) == (8, 2, 0.5)


def test_max_activating_patches_crop_the_square(blob_subject):
    x, y, corners = blob_images(20, seed=21)
    result = patches.max_activating_patches(blob_subject, x, "features.3", units=2, k=3)
    assert len(result) == 2
    for r in result:
        assert r.rf == 5 and len(r.patches) == 3 and all(p.shape == (1, 5, 5) for p in r.patches)
        assert r.scores == sorted(r.scores, reverse=True)
    # the strongest unit's top patches come from images with a square, and contain bright pixels
    best = max(result, key=lambda r: r.scores[0])
    assert all(y[i] == 1 for i in best.images)
    assert all(p.max() == 1.0 for p in best.patches)


def test_nearest_neighbours_known_answer():
    base = np.array([[0.0, 0], [10, 0], [0.5, 0], [9, 1]])
    idx = neighbours.nearest(base[:2], base, 2)
    assert idx.tolist() == [[2, 3], [3, 2]]  # own row skipped


def test_feature_neighbours_find_the_same_class(blob_subject):
    x, y, _ = blob_images(40, seed=22)
    r = neighbours.neighbours(blob_subject, x, queries=6, k=3)
    assert r["features"].shape == r["pixels"].shape == (6, 3)
    labels = y.numpy()
    assert (labels[r["features"]] == labels[:6, None]).mean() >= 0.9


def test_embeddings_are_2d_and_deterministic():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1, (15, 8)), rng.normal(6, 1, (15, 8))])
    for method in ("tsne", "pca"):
        a, b = tsne.embed(feats, method, seed=0), tsne.embed(feats, method, seed=0)
        assert a.shape == (30, 2)
        np.testing.assert_allclose(a, b)
        # the two clusters stay apart: every point is nearer its own cluster's centre
        c0, c1 = a[:15].mean(0), a[15:].mean(0)
        d0, d1 = np.linalg.norm(a - c0, axis=1), np.linalg.norm(a - c1, axis=1)
        assert (d0[:15] < d1[:15]).all() and (d1[15:] < d0[15:]).all()


def test_filters_and_activations_shapes(blob_subject, tmp_path):
    w = filters.first_layer_filters(blob_subject.model)
    np.testing.assert_array_equal(w, blob_subject.model.features[0].weight.detach().numpy())
    assert filters.filters_figure(w, tmp_path / "f.png").exists()
    x, _, _ = blob_images(2, seed=3)
    a = activations.layer_activations(blob_subject, x[1:2], "features.1")
    assert a.shape == (8, 16, 16) and (a >= 0).all()  # after a ReLU
    np.testing.assert_array_equal(a, activations.layer_activations(blob_subject, x[1:2], "features.1"))
