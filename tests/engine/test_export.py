"""`cnnlab export`: the files run in a process that cannot import cnnlab, and match the network."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.engine.evaluate import load_task

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

QUICK = ["--quiet", "--no-tensorboard", "--threads", "1"]

# Runs in a fresh interpreter where importing cnnlab fails: what it loads must stand on its own.
RUNNER = textwrap.dedent("""
    import importlib.abc, sys
    class NoCnnlab(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "cnnlab" or name.startswith("cnnlab."):
                raise ImportError("cnnlab must not be needed here")
    sys.meta_path.insert(0, NoCnnlab())
    import json
    import numpy as np
    fmt, path, inputs, out = sys.argv[1:5]
    arrays = dict(np.load(inputs))
    names = json.load(open(path + ".json"))["inputs"]
    args = [arrays[i["name"]] for i in names]
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs = session.run(None, {i["name"]: a for i, a in zip(names, args)})
    else:
        import torch
        tensors = [torch.from_numpy(a) for a in args]
        module = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
        with torch.no_grad():
            res = module(*tensors)
        res = res if isinstance(res, (tuple, list)) else [res]
        outs = [r.numpy() for r in res]
    assert not any(m == "cnnlab" or m.startswith("cnnlab.") for m in sys.modules)
    np.savez(out, *outs)
""")


def run_outside(tmp_path, fmt, path, inputs: dict) -> list[np.ndarray]:
    np.savez(tmp_path / "inputs.npz", **{k: v.numpy() for k, v in inputs.items()})
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    res = subprocess.run([sys.executable, str(script), fmt, str(path), str(tmp_path / "inputs.npz"),
                          str(tmp_path / "outs.npz")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = np.load(tmp_path / "outs.npz")
    return [got[f"arr_{i}"] for i in range(len(got.files))]


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert main(["train", "classify", "--data", "digits", "--limit", "200", "--limit-test", "50", "--model", "lenet5",
                 "--epochs", "1", "--batch-size", "50", *QUICK, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_classifier_round_trip_outside_cnnlab(lenet_run, tmp_path, capsys, fmt, suffix):
    target = tmp_path / f"lenet{suffix}"
    assert main(["export", str(lenet_run), "--format", fmt, "--out", str(target)]) == 0
    assert "wrote" in capsys.readouterr().out and target.is_file()
    doc = json.loads((tmp_path / f"lenet{suffix}.json").read_text())
    task, model, meta, _ = load_task(lenet_run)
    assert doc["format"] == fmt and doc["task"] == "classify" and doc["classes"] == meta["classes"]
    h, w = meta["img_size"]
    assert doc["inputs"] == [{"name": "images", "shape": ["batch", 1, h, w], "dtype": "float32"}]
    norm = doc["preprocessing"]["normalization"]
    assert norm["mode"] == "channel" and len(norm["mean"]) == 1 and len(norm["std"]) == 1
    # the JSON's preprocessing reproduces the task's: a user can prepare an image from it alone
    pixels = torch.randint(0, 256, (1, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    by_json = (pixels.float() / 255 - norm["mean"][0]) / norm["std"][0]
    assert torch.allclose(by_json, task.normalization()(pixels.float() / 255), atol=1e-6)
    x = torch.randn(5, 1, h, w, generator=torch.Generator().manual_seed(0))  # another batch size than the export's
    (got,) = run_outside(tmp_path, fmt, target, {"images": x})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (5, 10) and np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()


def test_segmenter_round_trip_outside_cnnlab(tmp_path):
    from cnnlab.data.scenes import make_scenes

    root = make_scenes("segment", 16, tmp_path / "s", n_val=4, n_test=4, size=32, objects="shapes", min_size=10,
                       max_size=16)
    run = tmp_path / "unet"
    assert main(["train", "segment", "--data", str(root / "voc"), "--model", "unet", "--backbone", "none", "--epochs", "1",
                 "--batch-size", "8", "--warmup-epochs", "0", *QUICK, "--out", str(run)]) == 0
    _, model, meta, _ = load_task(run)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x).numpy()
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        target = tmp_path / f"unet{suffix}"
        assert main(["export", str(run), "--format", fmt, "--out", str(target)]) == 0
        (got,) = run_outside(tmp_path, fmt, target, {"images": x})
        assert got.shape == want.shape == (2, len(meta["classes"]), 32, 32) and np.abs(got - want).max() <= 1e-4
    assert json.loads((tmp_path / "unet.onnx.json").read_text())["task"] == "segment"


def test_char_lm_exports_carry_the_state(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 60)
    run = tmp_path / "lm"
    assert main(["train", "charlm", "--data", str(text), "--epochs", "1", "--hidden", "24", "--layers", "2",
                 "--batch-size", "4", "--bptt", "16", *QUICK, "--out", str(run)]) == 0
    _, model, meta, _ = load_task(run)
    tokens = torch.randint(0, len(meta["vocab"]), (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, _ = model(tokens)
    zeros = torch.zeros(2, 2, 24)
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        target = tmp_path / f"lm{suffix}"
        assert main(["export", str(run), "--format", fmt, "--out", str(target)]) == 0
        doc = json.loads((tmp_path / f"lm{suffix}.json").read_text())
        assert doc["vocab"] == meta["vocab"] and [i["name"] for i in doc["inputs"]] == ["tokens", "h", "c"]
        # two chunks, the state of the first fed to the second, equal one pass over the whole sequence
        logits1, h, c = run_outside(tmp_path, fmt, target, {"tokens": tokens[:, :4], "h": zeros, "c": zeros})
        logits2, _, _ = run_outside(tmp_path, fmt, target, {"tokens": tokens[:, 4:], "h": torch.from_numpy(h),
                                                            "c": torch.from_numpy(c)})
        got = np.concatenate([logits1, logits2], axis=1)
        assert got.shape == tuple(want.shape) and np.abs(got - want.numpy()).max() <= 1e-4
    # torch.export fixes the length: one character per call, the state carried by the caller
    target = tmp_path / "lm.pt2"
    assert main(["export", str(run), "--format", "exported-program", "--out", str(target)]) == 0
    assert json.loads((tmp_path / "lm.pt2.json").read_text())["inputs"][0]["shape"] == ["batch", 1]
    h = c = zeros
    steps = []
    for t in range(tokens.shape[1]):
        logits, h, c = run_outside(tmp_path, "exported-program", target, {"tokens": tokens[:, t:t + 1], "h": torch.as_tensor(h),
                                                                          "c": torch.as_tensor(c)})
        steps.append(logits)
        if t == 2:
            break
    assert np.abs(np.concatenate(steps, axis=1) - want[:, :3].numpy()).max() <= 1e-4


def test_mistakes_get_one_line_and_keep_existing_files(lenet_run, tmp_path, capsys, monkeypatch):
    assert main(["export", str(lenet_run), "--format", "onnx", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["export", str(lenet_run), "--format", "onnx", "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(lenet_run), "--format", "onnx", "--out", str(tmp_path / "m.json")]) == 2
    assert "cannot end in .json" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing-run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["export", "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "give a run folder" in capsys.readouterr().err
    # an export that fails (here: the exported file disagrees with the network) leaves the old file as it was
    import cnnlab.engine.export as ex

    old = tmp_path / "m.pt"
    old.write_bytes(b"an earlier export")
    real = ex.run_exported
    monkeypatch.setattr(ex, "run_exported", lambda *a: [t + 1 for t in real(*a)])
    assert main(["export", str(lenet_run), "--format", "torchscript", "--out", str(old)]) == 2
    assert "differs from the network" in capsys.readouterr().err
    assert old.read_bytes() == b"an earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.slow
def test_pretrained_mobilenet_onnx_says_espresso(tmp_path, capsys):
    from skimage import data as skdata

    from cnnlab.models.pretrained import imagenet_preprocess

    target = tmp_path / "mnv2.onnx"
    assert main(["export", "--model", "mobilenet_v2", "--weights", "imagenet", "--format", "onnx", "--out", str(target)]) == 0
    doc = json.loads((tmp_path / "mnv2.onnx.json").read_text())
    assert len(doc["classes"]) == 1000 and doc["preprocessing"]["normalization"]["mean"] == [0.485, 0.456, 0.406]
    x = imagenet_preprocess(torch.from_numpy(skdata.coffee()).permute(2, 0, 1).contiguous())[None]
    (logits,) = run_outside(tmp_path, "onnx", target, {"images": x})
    assert doc["classes"][int(logits[0].argmax())] == "espresso"


def test_layers_with_a_custom_training_kernel_export_their_inference_path(tmp_path):
    """ResNet-9's SmallMapConv runs a custom autograd Function when training; the export traces plain conv2d."""
    from cnnlab.engine.export import _Flat, export
    from cnnlab.models import create_model

    model = create_model("resnet9", num_classes=10, in_chans=1, width=4).eval()
    info = {"task": "classify", "model": "resnet9", "inputs": [{"name": "images", "shape": ["batch", 1, 28, 28]}]}
    for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx")):
        doc = export(_Flat(model), (torch.randn(2, 1, 28, 28),), dict(info), fmt, tmp_path / f"r9{suffix}")
        assert doc["check"]["max_rel_diff"] <= 1e-4 and doc["outputs"] == [{"name": "output", "shape": ["batch", 10]}]
    assert all(p.requires_grad for p in model.parameters())  # the caller's model is left as it was


def test_library_export(lenet_run, tmp_path):
    import cnnlab

    path = cnnlab.export(lenet_run, "torchscript", tmp_path / "m")  # the suffix is added
    assert path == tmp_path / "m.pt" and path.is_file() and (tmp_path / "m.pt.json").is_file()
