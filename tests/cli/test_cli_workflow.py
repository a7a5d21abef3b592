"""End to end through the command line: evaluate, predict, ensemble, features, transfer learning."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.cli.conftest import TINY, run_cli


def test_evaluate_reports_accuracy_and_confusion(capsys, trained_run):
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--json")
    assert code == 0
    m = json.loads(out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert m["acc"] == pytest.approx(summary["test_acc"])  # the same images, weights and normalization
    assert m["count"] == 100 and sum(map(sum, m["confusion"])) == 100
    assert m["top5"] >= m["acc"]
    for tta in ("flip", "ten-crop"):
        code, out, _ = run_cli(capsys, "evaluate", trained_run, "--tta", tta, "--json")
        assert code == 0 and 0 < json.loads(out)["acc"] <= 1
    code, out, _ = run_cli(capsys, "evaluate", trained_run)
    assert "per-class accuracy" in out and "confusion matrix" in out


def test_predict_own_images(capsys, tmp_path, trained_run):
    from sklearn.datasets import load_digits

    d = load_digits()
    img = (d.images[0] * 255 / 16).astype(np.uint8)  # a "0"
    Image.fromarray(img).resize((64, 64)).convert("RGB").save(tmp_path / "zero.png")
    code, out, _ = run_cli(capsys, "predict", trained_run, tmp_path / "zero.png", "--topk", "3", "--json")
    assert code == 0
    pred = json.loads(out)
    assert len(pred["top"]) == 3
    probs = [t["prob"] for t in pred["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_ensemble_of_snapshots_and_of_runs(capsys, tmp_path, trained_run):
    code, out, _ = run_cli(capsys, "ensemble", trained_run, "--json")
    assert code == 0
    r = json.loads(out)
    assert len(r["members"]) == 2 and 0 < r["ensemble_acc"] <= 1
    code, _, _ = run_cli(capsys, "train", "classify", *TINY, "--model", "lenet5", "--epochs", "1", "--seed", "7",
                         "--optimizer", "adam", "--out", tmp_path / "second")
    assert code == 0
    code, out, _ = run_cli(capsys, "ensemble", trained_run, tmp_path / "second")
    assert code == 0 and "ensemble of 2" in out


def _digit_png(path, index=0):
    from sklearn.datasets import load_digits

    d = load_digits()
    Image.fromarray((d.images[index] * 255 / 16).astype(np.uint8)).resize((64, 64)).save(path)
    return int(d.target[index])


def test_features_then_softmax_head_is_a_normal_run(capsys, tmp_path, trained_run):
    """--on-features trains the source network's classifier on its features; the run folder holds backbone + head,
    so evaluate, predict and ensemble work on it with images, and it has its plots and per-class table."""
    from safetensors.torch import load_file

    feats = tmp_path / "feats"
    code, out, _ = run_cli(capsys, "features", trained_run, "--out", feats, "--limit", "300")
    assert code == 0 and "train 300x84" in out
    code, out, _ = run_cli(capsys, "train", "classify", "--on-features", feats, "--epochs", "5", "--optimizer", "adam",
                           "--batch-size", "50", "--quiet", "--no-tensorboard", "--out", tmp_path / "head")
    assert code == 0
    head = tmp_path / "head"
    summary = json.loads((head / "summary.json").read_text())
    assert summary["test_acc"] > 0.3  # features of a 2-epoch LeNet: far above chance (0.1)
    meta = json.loads((head / "checkpoints" / "best.json").read_text())
    source = json.loads((trained_run / "checkpoints" / "best.json").read_text())
    assert (meta["model"], meta["in_chans"], meta["img_size"]) == ("lenet5", source["in_chans"], source["img_size"])
    before, after = load_file(trained_run / "checkpoints" / "best.safetensors"), load_file(head / "checkpoints" / "best.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("head."))  # the frozen backbone
    assert not torch.equal(before["head.weight"], after["head.weight"])  # the trained head
    for f in ("plots/curves.png", "plots/confusion.png", "report.md"):
        assert (head / f).is_file(), f
    report = (head / "report.md").read_text()
    assert "| class | test accuracy |" in report and "| 7 |" in report

    code, out, _ = run_cli(capsys, "evaluate", head, "--json")  # on its own test features
    assert code == 0 and json.loads(out)["acc"] == pytest.approx(summary["test_acc"])
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--json")
    on_images = json.loads(out)
    code, out, _ = run_cli(capsys, "ensemble", head, trained_run, "--json")  # on the images of the image run
    assert code == 0
    r = json.loads(out)
    assert r["members"][1]["acc"] == pytest.approx(on_images["acc"])
    assert r["members"][0]["acc"] == pytest.approx(summary["test_acc"], abs=0.02)  # the same test digits, as images
    right = 0
    for i in range(10):
        label = _digit_png(tmp_path / f"{i}.png", i)
        code, out, err = run_cli(capsys, "predict", head, tmp_path / f"{i}.png", "--json")
        assert code == 0, err
        right += json.loads(out)["top"][0]["class"] == str(label)
    assert right >= 3  # images through backbone + head: far above chance (1 of 10)


def test_transfer_learning_with_weights_and_freeze(capsys, tmp_path, trained_run):
    code, out, _ = run_cli(capsys, "train", "classify", *TINY, "--model", "lenet5", "--epochs", "1",
                           "--weights", trained_run / "checkpoints" / "best.safetensors", "--freeze", "2",
                           "--out", tmp_path / "ft")
    assert code == 0 and "loaded" in out
    from safetensors.torch import load_file

    before = load_file(trained_run / "checkpoints" / "best.safetensors")
    after = load_file(tmp_path / "ft" / "checkpoints" / "last.safetensors")
    assert (before["features.0.weight"] == after["features.0.weight"]).all()  # frozen stage 1
    assert not (before["head.weight"] == after["head.weight"]).all()  # trained head


def test_weights_run_folder_gives_the_model_and_adapts_rgb_to_grey(capsys, tmp_path):
    """--weights RUN_DIR without --model takes the run's model and options; an RGB run's first conv is summed over
    R, G, B for grey data; grey weights for RGB data are refused in one line that says --channels 1."""
    from safetensors.torch import load_file

    from tests.cli.test_cli_signals_and_folders import make_folder

    photos = make_folder(tmp_path / "photos", n_per_class=8)
    small = ["--epochs", "1", "--batch-size", "8", "--img-size", "16", "--quiet", "--no-tensorboard", "--threads", "1"]
    code, _, err = run_cli(capsys, "train", "classify", "--data", photos, "--model", "convnet_bn", "--model-arg", "width=4",
                           *small, "--out", tmp_path / "rgb")
    assert code == 0, err
    code, out, err = run_cli(capsys, "train", "classify", *TINY, "--epochs", "1", "--img-size", "16",
                             "--weights", tmp_path / "rgb", "--freeze", "1", "--out", tmp_path / "grey")
    assert code == 0, err
    assert "RGB first conv summed over R, G, B for grey input" in out
    meta = json.loads((tmp_path / "grey" / "checkpoints" / "best.json").read_text())
    assert meta["model"] == "convnet_bn" and meta["model_kwargs"]["width"] == 4 and meta["in_chans"] == 1
    rgb = load_file(tmp_path / "rgb" / "checkpoints" / "best.safetensors")["features.0.0.weight"]  # (4, 3, 3, 3)
    grey = load_file(tmp_path / "grey" / "checkpoints" / "best.safetensors")["features.0.0.weight"]  # frozen stage
    assert torch.allclose(grey, rgb.sum(1, keepdim=True))
    code, _, err = run_cli(capsys, "train", "classify", "--data", photos, *small, "--weights", tmp_path / "grey",
                           "--out", tmp_path / "back")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith("pass --channels 1"), err
    assert not (tmp_path / "back").exists()  # refused before any folder is made
