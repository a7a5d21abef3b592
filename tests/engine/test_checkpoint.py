import json
import os

import pytest
import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.errors import CheckpointError


def test_flatten_roundtrip_of_optimizer_state():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        opt.step()
    skeleton, tensors = ckpt.flatten_state(opt.state_dict(), "o")
    json.dumps(skeleton)  # the skeleton is pure JSON
    back = ckpt.unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    ref = opt.state_dict()
    assert back["param_groups"][0]["betas"] == (0.8, 0.95)
    assert set(back["state"]) == set(ref["state"])  # int keys survive JSON
    for k, st in ref["state"].items():
        for name, v in st.items():
            assert torch.equal(back["state"][k][name], v)


def test_save_and_load_state_files(tmp_path):
    state = {"epoch": 3, "rng": torch.get_rng_state(), "nested": [torch.arange(3), {"x": 1.5, "t": (1, 2)}], "none": None}
    ckpt.save_state(tmp_path / "train_state", state)
    assert (tmp_path / "train_state.safetensors").is_file() and (tmp_path / "train_state.json").is_file()
    back = ckpt.load_state(tmp_path / "train_state")
    assert back["epoch"] == 3 and back["none"] is None and back["nested"][1]["t"] == (1, 2)
    assert torch.equal(back["rng"], state["rng"]) and torch.equal(back["nested"][0], torch.arange(3))


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.safetensors"
    ckpt.atomic_save_tensors(target, {"w": torch.ones(2)})
    before = target.read_bytes()

    class Boom(dict):
        def items(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ckpt.atomic_save_tensors(target, Boom())
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary left behind


def test_corrupt_files_give_one_line_errors(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="w.safetensors"):
        ckpt.load_tensors(tmp_path / "w.safetensors")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="m.json"):
        ckpt.read_json(tmp_path / "m.json")
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.find_checkpoint(tmp_path / "nope")


def test_model_checkpoint_loads_with_create_model(tmp_path):
    from cnnlab.models import create_model

    m = create_model("lenet5", num_classes=4, in_chans=1, img_size=28)
    path = tmp_path / "checkpoints" / "best.safetensors"
    ckpt.save_model_checkpoint(path, ckpt.model_state(m), {"model": "lenet5", "num_classes": 4, "in_chans": 1, "img_size": [28, 28], "classes": list("abcd"),
                                                          "model_kwargs": {"img_size": 28}})
    model, meta = ckpt.load_run(tmp_path)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), m.eval()(x))
    assert meta["num_classes"] == 4
    os.remove(path.with_suffix(".json"))
    with pytest.raises(CheckpointError):
        ckpt.load_run(tmp_path)
