"""load_weights: cnnlab safetensors and torch state dicts, head reset, and one-line errors for bad files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import ModelError
from cnnlab.models import create_model
from cnnlab.models.weights import load_weights


class NotATensor:
    """Any class pickled into a checkpoint: weights_only loading must refuse it."""


def fresh(name: str = "resnet20", num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=num_classes).eval()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_safetensors_round_trip(tmp_path):
    source = fresh(seed=1)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = fresh(seed=2)
    assert not same_outputs(source, target)
    report = load_weights(target, path)
    assert report == {"loaded": len(source.state_dict()), "head_reset": False, "input_adapted": False, "path": str(path)}
    assert same_outputs(source, target)


def test_torch_file_with_wrapper_and_ddp_prefix(tmp_path):
    source = fresh(seed=1)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    target = create_model("resnet20", num_classes=10, weights=path).eval()
    assert same_outputs(source, target)


def test_head_reset_for_another_class_count(tmp_path):
    source = fresh(num_classes=10, seed=1)
    path = tmp_path / "ten.pth"
    torch.save(source.state_dict(), path)
    target = fresh(num_classes=4, seed=2)
    head_before = target.fc.weight.clone()
    report = load_weights(target, path)
    assert report["head_reset"] is True
    assert report["loaded"] == len(source.state_dict()) - 2  # all but fc.weight and fc.bias
    assert torch.equal(target.fc.weight, head_before)  # the fresh head is kept
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target.forward_features(x), source.forward_features(x))
    with pytest.raises(ModelError, match=r"classifier tensor 'fc.bias' is \(10,\) but the model expects \(4,\)"):
        load_weights(fresh(num_classes=4), path, reset_head_on_mismatch=False)


def test_head_reset_on_a_sequential_classifier(tmp_path):
    """AlexNet's head is classifier.6: only it may differ."""
    source = create_model("alexnet_tv", num_classes=10)
    path = tmp_path / "alex.pth"
    torch.save(source.state_dict(), path)
    assert load_weights(create_model("alexnet_tv", num_classes=3), path)["head_reset"] is True


def test_missing_file():
    with pytest.raises(ModelError, match="nowhere.pth not found"):
        load_weights(fresh(), "/nonexistent/nowhere.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file(tmp_path, suffix: str):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00\x01 this is not a weights file" * 10)
    with pytest.raises(ModelError, match=f"broken{suffix} is not a readable"):
        load_weights(fresh(), path)


def test_truncated_torch_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(fresh().state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cut.pth is not a readable torch state dict"):
        load_weights(fresh(), path)


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": NotATensor()}, path)
    with pytest.raises(ModelError, match="evil.pth is not a readable torch state dict"):
        load_weights(fresh(), path)


def test_non_tensor_entries(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"conv1.weight": [1, 2, 3]}, path)
    with pytest.raises(ModelError, match="entry 'conv1.weight' is not a tensor"):
        load_weights(fresh(), path)


def test_weights_of_another_model(tmp_path):
    path = tmp_path / "lenet.pth"
    torch.save(create_model("lenet5", num_classes=10).state_dict(), path)
    with pytest.raises(ModelError, match=r"unexpected\); is it for another model"):
        load_weights(fresh(), path)


def test_missing_tensor(tmp_path):
    state = fresh().state_dict()
    del state["layer2.0.bn1.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"lacks tensor 'layer2.0.bn1.running_var' \(32,\)"):
        load_weights(fresh(), path)


def test_misshaped_tensor_outside_the_head(tmp_path):
    path = tmp_path / "grey.pth"
    torch.save(create_model("resnet20", num_classes=10, in_chans=1).state_dict(), path)
    with pytest.raises(ModelError, match=r"'conv1.weight' has shape \(16, 1, 3, 3\) but the model expects \(16, 3, 3, 3\)"):
        load_weights(fresh(), path)


def test_missing_batch_norm_counters_are_tolerated(tmp_path):
    """Old checkpoints lack num_batches_tracked; it does not affect the forward pass."""
    source = fresh(seed=1)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    target = fresh(seed=2)
    load_weights(target, path)
    assert same_outputs(source, target)


@pytest.mark.parametrize("in_chans", [1, 2, 4, 6])
def test_rgb_weights_adapt_to_other_input_channels(tmp_path, in_chans: int):
    """timm's adapt_input_conv: grey sums the RGB kernel (a grey image, R = G = B, responds as before); other
    counts tile R, G, B, R, ... and scale by 3 / in_chans (exactly the RGB response when in_chans is 3k)."""
    source = fresh(seed=1)
    path = tmp_path / "rgb.pth"
    torch.save(source.state_dict(), path)
    target = create_model("resnet20", num_classes=10, in_chans=in_chans).eval()
    report = load_weights(target, path)
    assert report["input_adapted"] is True and report["head_reset"] is False
    w = source.conv1.weight  # (16, 3, 3, 3)
    expected = w.sum(1, keepdim=True) if in_chans == 1 else torch.cat([w] * 2, 1)[:, :in_chans] * (3 / in_chans)
    assert torch.allclose(target.conv1.weight, expected)
    assert torch.equal(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    grey = torch.rand(2, 1, 32, 32)
    if in_chans % 3 == 0 or in_chans == 1:
        with torch.no_grad():
            assert torch.allclose(target(grey.expand(-1, in_chans, -1, -1)), source(grey.expand(-1, 3, -1, -1)), atol=1e-5)


def test_weights_for_fewer_channels_are_not_adapted_to_rgb(tmp_path):
    path = tmp_path / "grey.pth"
    torch.save(create_model("resnet20", num_classes=10, in_chans=2).state_dict(), path)
    with pytest.raises(ModelError, match=r"'conv1.weight' has shape \(16, 2, 3, 3\)"):
        load_weights(fresh(), path)
