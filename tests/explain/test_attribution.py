"""Saliency, SmoothGrad, guided backprop, Grad-CAM and occlusion against known answers."""

import numpy as np
import torch
from torch import nn

from cnnlab.explain import gradcam, guided, occlusion, saliency
from cnnlab.explain.common import Subject
from tests.explain.conftest import blob_images


def test_saliency_of_a_linear_model_is_abs_weights(linear_subject):
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    w = linear_subject.model.head.weight.detach()  # (K, 3*6*6)
    for c in range(4):
        expected = w[c].view(3, 6, 6).abs().amax(0).numpy()  # max over channels of |W_c|
        np.testing.assert_allclose(saliency.saliency(linear_subject, x, c), expected, rtol=1e-6, atol=1e-7)


def test_saliency_follows_normalization():
    """With normalization (x - m) / s the pixel gradient is W / s: the map of the network on pixels, not on its input."""
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("linear", num_classes=2, in_chans=1, img_size=4)
    s = Subject(model, ["a", "b"], (4, 4), 1, normalize=lambda x: (x - 0.5) / 0.25)
    got = saliency.saliency(s, torch.rand(1, 1, 4, 4), 1)
    np.testing.assert_allclose(got, model.head.weight[1].detach().view(4, 4).abs().numpy() / 0.25, rtol=1e-5)


def test_smoothgrad_of_a_linear_model_is_its_saliency_and_is_deterministic(linear_subject):
    x = torch.rand(1, 3, 6, 6)
    plain = saliency.saliency(linear_subject, x, 2)
    sg = saliency.smoothgrad(linear_subject, x, 2, n=5, seed=3)
    np.testing.assert_allclose(sg, plain, rtol=1e-5)  # the gradient of a linear model does not depend on x
    np.testing.assert_array_equal(sg, saliency.smoothgrad(linear_subject, x, 2, n=5, seed=3))


def test_guided_backprop_passes_only_positive_gradients_through_relus():
    torch.manual_seed(0)
    # the input goes through a ReLU first, so its guided gradient is what that ReLU lets through
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(inplace=True), nn.Flatten(),
                          nn.Linear(4 * 25, 3))
    s = Subject(model, ["a", "b", "c"], (5, 5), 1)
    x = torch.randn(1, 1, 5, 5) * 4
    plain = saliency.input_gradient(s, x, 0)
    m, g = guided.guided_backprop(s, x, 0)
    assert g.shape == (1, 5, 5) and m.shape == (5, 5)
    assert (g >= 0).all(), "guided backprop let a negative gradient through a ReLU"
    assert (plain < 0).any(), "the plain gradient should have negative entries (else this test cannot fail)"
    assert (g[x[0].numpy() <= 0] == 0).all()  # nothing flows where the first ReLU was off
    assert isinstance(model[0], nn.ReLU) and isinstance(model[2], nn.ReLU6)  # the subject's model is untouched


def test_guided_relu6_blocks_saturated_units():
    x = torch.tensor([-1.0, 3.0, 7.0], requires_grad=True)
    guided.GuidedReLU(6.0)(x).mul(torch.tensor([1.0, 1.0, 1.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]
    x.grad = None
    (guided.GuidedReLU(6.0)(x) * torch.tensor([1.0, -2.0, 1.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]  # negative signal from above is dropped


def test_gradcam_peaks_on_the_square(blob_subject):
    x, _, corners = blob_images(8, seed=5)
    for i in range(1, 8, 2):  # the images with a square
        cam = gradcam.grad_cam(blob_subject, x[i:i + 1], 1, "features.3")
        assert cam.shape == (16, 16) and cam.max() == 1.0
        r, c = np.unravel_index(cam.argmax(), cam.shape)
        r0, c0 = corners[i].tolist()
        assert r0 - 1 <= r <= r0 + 4 and c0 - 1 <= c <= c0 + 4, f"Grad-CAM peak {(r, c)} is off the square at {(r0, c0)}"
        np.testing.assert_array_equal(cam, gradcam.grad_cam(blob_subject, x[i:i + 1], 1, "features.3"))


def test_gradcam_default_layer_is_the_last_map(blob_subject):
    from cnnlab.explain.common import last_spatial_layer

    assert last_spatial_layer(blob_subject) == "features"


def test_occluding_the_only_informative_region_drops_the_score(blob_subject):
    x, _, corners = blob_images(4, seed=7)
    xi = x[1:2]  # has a square
    r0, c0 = corners[1].tolist()
    p0 = float(blob_subject.probs(xi)[0, 1])
    prob, importance = occlusion.occlusion(blob_subject, xi, 1, size=6, stride=1, fill=0.35)
    assert prob.shape == importance.shape == (16, 16)
    over = prob[r0 + 1:r0 + 3, c0 + 1:c0 + 3].mean()  # squares covering the bright square
    assert p0 > 0.9 and over < 0.5 * p0, f"occluding the square left p={over:.3f} (unoccluded {p0:.3f})"
    far = [(y, x_) for y in range(16) for x_ in range(16) if abs(y - r0 - 2) > 8 or abs(x_ - c0 - 2) > 8]
    assert np.mean([prob[p] for p in far]) > 0.9 * p0  # elsewhere the score stays
    np.testing.assert_array_equal(prob, occlusion.occlusion(blob_subject, xi, 1, size=6, stride=1, fill=0.35)[0])


def test_attribution_maps_have_the_input_shape_and_repeat(blob_subject):
    x, _, _ = blob_images(2, seed=9)
    xi = x[1:2]
    for fn in (lambda: saliency.saliency(blob_subject, xi, 1), lambda: guided.guided_backprop(blob_subject, xi, 1)[0],
               lambda: saliency.smoothgrad(blob_subject, xi, 1, n=3), lambda: gradcam.grad_cam(blob_subject, xi, 1)):
        a, b = fn(), fn()
        assert a.shape == (16, 16) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
