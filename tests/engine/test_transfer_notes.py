"""What `--weights` prints: the "new classifier head" note only where the model's classifier is used."""

from types import SimpleNamespace

from safetensors.torch import save_file

from cnnlab.engine.transfer import init_and_load
from cnnlab.models import create_model


def _cfg(path):
    return SimpleNamespace(init="default", init_std=None, weights=str(path), model="convnet_bn")


def test_head_note_only_when_the_classifier_is_used(tmp_path, capsys):
    source = create_model("convnet_bn", num_classes=5, in_chans=1, width=4)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))

    classifier = create_model("convnet_bn", num_classes=3, in_chans=1, width=4)
    init_and_load(classifier, _cfg(path))
    assert "new classifier head" in capsys.readouterr().out

    backbone = create_model("convnet_bn", num_classes=3, in_chans=1, width=4)
    init_and_load(backbone, _cfg(path), head_used=False)  # a detector's / captioner's backbone
    out = capsys.readouterr().out
    assert out.startswith("loaded ") and "classifier head" not in out
    # the shared layers did load in both cases
    first = next(k for k, v in source.state_dict().items() if v.ndim == 4)
    assert (backbone.state_dict()[first] == source.state_dict()[first]).all()
