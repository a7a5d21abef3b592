"""Class visualization, DeepDream and fooling images on the tiny trained model."""

import numpy as np
import torch

from cnnlab.explain import classviz, deepdream, fool
from tests.explain.conftest import blob_images


def test_fgsm_flips_a_trained_models_prediction(blob_subject):
    x, _, _ = blob_images(4, seed=11)
    xi = x[1:2]  # a square: predicted "square"
    assert int(blob_subject.probs(xi)[0].argmax()) == 1
    r = fool.fgsm_smallest(blob_subject, xi, eps_max=0.5)
    assert r.success and r.predicted == 0 and r.label == 1
    assert abs(r.linf - r.steps / 255) < 1e-6  # the smallest eps on the 1/255 grid ...
    smaller = (xi + (r.steps - 1) / 255 * torch.autograd.functional.jacobian(
        lambda z: torch.nn.functional.cross_entropy(blob_subject(z), torch.tensor([1])), xi).sign()).clamp(0, 1)
    assert int(blob_subject.probs(smaller)[0].argmax()) == 1  # ... one step less does not flip it
    assert int(blob_subject.probs(torch.from_numpy(r.image)[None])[0].argmax()) == 0


def test_iterative_targeted_reaches_the_target(blob_subject):
    x, _, _ = blob_images(4, seed=12)
    r = fool.iterative_targeted(blob_subject, x[1:2], target=0)  # "square" -> "empty"
    assert r.success and r.label == 1 and r.predicted == 0 and r.confidence > 0.5
    assert r.linf <= r.steps / 255 + 1e-6
    assert r.image.shape == (1, 16, 16) and 0 <= r.image.min() and r.image.max() <= 1


def test_class_visualization_raises_the_class_and_repeats(blob_subject):
    a = classviz.class_visualization(blob_subject, 0, steps=30, jitter=2, seed=0)  # "empty" from grey noise
    b = classviz.class_visualization(blob_subject, 0, steps=30, jitter=2, seed=0)
    start = float(blob_subject.probs(torch.full((1, 1, 16, 16), 0.5))[0, 0])
    assert a.image.shape == (1, 16, 16) and a.prob > 0.9 > start
    assert a.scores[-1] > a.scores[0]
    np.testing.assert_array_equal(a.image, b.image)


def test_gaussian_blur_keeps_a_constant_image_and_its_mass():
    x = torch.full((1, 3, 9, 9), 0.7)
    torch.testing.assert_close(classviz.gaussian_blur(x, 1.0), x)
    d = torch.zeros(1, 1, 15, 15)
    d[0, 0, 7, 7] = 1
    assert abs(float(classviz.gaussian_blur(d, 1.0).sum()) - 1) < 1e-5


def test_deep_dream_grows_the_layer_and_repeats(blob_subject):
    x, _, _ = blob_images(2, seed=13)
    xi = x[1:2]
    from cnnlab.explain.common import activation

    out = deepdream.deep_dream(blob_subject, xi, "features.2", octaves=2, steps=5, jitter=1)
    assert out.shape == (1, 16, 16)
    before = activation(blob_subject, xi, "features.2").pow(2).mean()
    after = activation(blob_subject, torch.from_numpy(out)[None], "features.2").pow(2).mean()
    assert after > before
    np.testing.assert_array_equal(out, deepdream.deep_dream(blob_subject, xi, "features.2", octaves=2, steps=5, jitter=1))
