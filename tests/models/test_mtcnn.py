"""MTCNN: our networks take the published weights; our pipeline equals facenet-pytorch's on real photos."""

import numpy as np
import pytest
import torch

from cnnlab.models.face import MTCNN, ONet, PNet, RNet, align_face, load_mtcnn_nets, similarity_transform
from cnnlab.models.face.align import TEMPLATE_112
from cnnlab.models.face.detect import nms_min, pyramid_scales
from cnnlab.models.face.mtcnn import weights_folder


def _photos():
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    grace = np.array(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return {"grace_hopper": grace, "astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea()}


@pytest.fixture(scope="module")
def detector():
    return MTCNN(load_mtcnn_nets())


@pytest.fixture(scope="module")
def photos():
    return _photos()


def test_network_shapes():
    prob, reg = PNet()(torch.zeros(2, 3, 12, 12))
    assert prob.shape == (2, 1, 1) and reg.shape == (2, 4, 1, 1)
    prob, reg = PNet()(torch.zeros(1, 3, 100, 60))  # a map: one window per stride-2 step
    assert prob.shape == (1, 45, 25)
    p, r = RNet()(torch.zeros(3, 3, 24, 24))
    assert p.shape == (3,) and r.shape == (3, 4)
    p, r, m = ONet()(torch.zeros(3, 3, 48, 48))
    assert p.shape == (3,) and r.shape == (3, 4) and m.shape == (3, 10)


def test_weights_load_into_our_modules():
    folder = weights_folder()
    for net, name in zip(load_mtcnn_nets(folder), ("pnet", "rnet", "onet")):
        state = torch.load(folder / f"{name}.pt", weights_only=True)
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k])


def test_pyramid_scales_hand_computed():
    # min side 100, min face 20: m = 0.6, side 60 -> 42.54 -> 30.16 -> 21.39 -> 15.16 -> 10.75 (< 12 stops)
    scales = pyramid_scales(100, 200, 20, 0.709)
    assert len(scales) == 5
    assert scales[0] == pytest.approx(0.6) and scales[4] == pytest.approx(0.6 * 0.709 ** 4)


def test_nms_min_hand_computed():
    boxes = torch.tensor([[0.0, 0, 9, 9], [2, 2, 6, 6], [20, 20, 29, 29], [5, 0, 14, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # box 1 lies inside box 0: overlap / smaller area = 1 > 0.7 -> removed; box 3 overlaps box 0 by 50 / 100 -> kept
    assert nms_min(boxes, scores, 0.7).tolist() == [0, 2, 3]


def test_similarity_transform_recovers_a_known_one():
    angle, scale, shift = 0.3, 1.7, torch.tensor([5.0, -3.0], dtype=torch.float64)
    rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float64)
    src = TEMPLATE_112
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    assert torch.allclose(m[:, :2], scale * rot, atol=1e-9) and torch.allclose(m[:, 2], shift, atol=1e-9)


def test_align_face_puts_landmarks_on_the_template(detector, photos):
    image = torch.from_numpy(photos["astronaut"]).permute(2, 0, 1).contiguous()
    face = detector.detect(image)[0]
    crop = align_face(image, face.landmarks, size=112)
    assert crop.shape == (3, 112, 112) and crop.dtype == torch.uint8
    again = detector.detect(torch.nn.functional.interpolate(crop[None].float(), scale_factor=2.0, mode="bilinear")[0])
    assert len(again) == 1  # the aligned crop is still a face, eyes where the template puts them
    pts = torch.tensor(again[0].landmarks, dtype=torch.float64) / 2
    m = similarity_transform(torch.tensor(face.landmarks), TEMPLATE_112)
    mapped = torch.tensor(face.landmarks, dtype=torch.float64) @ m[:, :2].T + m[:, 2]  # where the warp put them
    assert (pts - mapped).abs().max() < 4.0


def test_detections_on_real_photos(detector, photos):
    for name, want in (("grace_hopper", 1), ("astronaut", 1), ("chelsea", 0)):
        faces = detector.detect(torch.from_numpy(photos[name]).permute(2, 0, 1).contiguous())
        assert len(faces) == want, name
        for f in faces:
            assert len(f.landmarks) == 5 and f.score > 0.99


def _facenet_mtcnn():
    try:
        from facenet_pytorch import MTCNN as Reference
    except ImportError as e:  # its package __init__ imports `requests` (for other models' downloads)
        pytest.skip(f"facenet_pytorch does not import here ({e}); pip install requests")
    return Reference(device="cpu")


def test_equals_facenet_pytorch(detector, photos):
    from PIL import Image

    reference = _facenet_mtcnn()
    for name in ("grace_hopper", "astronaut", "chelsea"):
        ours = detector.detect(torch.from_numpy(photos[name]).permute(2, 0, 1).contiguous())
        boxes, probs, points = reference.detect(Image.fromarray(photos[name]), landmarks=True)
        if boxes is None:
            assert ours == []
            continue
        assert len(ours) == len(boxes) == 1
        assert np.abs(np.array(ours[0].box) - boxes[0]).max() < 1.0
        assert np.abs(np.array(ours[0].landmarks) - points[0]).max() < 1.0
        assert ours[0].score == pytest.approx(float(probs[0]), abs=1e-4)
