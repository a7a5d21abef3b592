"""End to end through the command line: evaluate, predict, ensemble, features, transfer learning."""

import json

import numpy as np
import pytest
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


def test_features_then_softmax_head(capsys, tmp_path, trained_run):
    feats = tmp_path / "feats"
    code, out, _ = run_cli(capsys, "features", trained_run, "--out", feats, "--limit", "300")
    assert code == 0 and "train 300x84" in out
    code, out, _ = run_cli(capsys, "train", "classify", "--on-features", feats, "--epochs", "5", "--optimizer", "adam",
                           "--batch-size", "50", "--quiet", "--no-tensorboard", "--out", tmp_path / "head")
    assert code == 0
    summary = json.loads((tmp_path / "head" / "summary.json").read_text())
    assert summary["test_acc"] > 0.3  # features of a 2-epoch LeNet: far above chance (0.1)
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "head", "--json")
    assert json.loads(out)["acc"] == pytest.approx(summary["test_acc"])


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
