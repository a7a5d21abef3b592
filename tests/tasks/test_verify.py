"""The verify task end to end on tiny data: run folder, plain summary keys, tau stored with the run."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.engine import checkpoint as ckpt

FAST = ["--steps-per-epoch", "4", "--identities-per-batch", "4", "--images-per-identity", "4", "--epochs", "1",
        "--quiet", "--no-tensorboard", "--threads", "1", "--model-arg", "width=4", "--embed-dim", "16"]


def test_train_verify_digits_writes_plain_metrics(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "verify", "--data", "digits", "--limit-test", "200", *FAST, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("eer", "auc", "tar_far1e-3", "tar_far1e-2", "oneshot_acc", "tau", "val_eer"):
        assert isinstance(summary[key], float), key
    assert summary["monitor"] == "eer" and summary["oneshot_way"] == 3.0
    meta = ckpt.read_json(out / "checkpoints" / "best.json")
    assert meta["test_identities"] == ["7", "8", "9"] and meta["metrics"]["tau"] == summary["tau"]
    assert (out / "plots" / "roc-test.png").is_file()


@pytest.mark.parametrize("loss", ["binary", "contrastive", "soft-margin triplet"])
def test_other_losses_train(tmp_path, loss):
    out = tmp_path / loss.replace(" ", "_")
    flags = ["--soft-margin"] if loss == "soft-margin triplet" else ["--loss", loss]
    assert main(["train", "verify", "--data", "digits", "--limit-test", "100", *flags, *FAST, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["soft_margin"] == (loss == "soft-margin triplet")
    assert 0 <= json.loads((out / "summary.json").read_text())["eer"] <= 1


def test_a_folder_of_identities_works_the_same_way(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "people"
    for i in range(6):
        (root / f"p{i}").mkdir(parents=True)
        base = rng.integers(0, 255, (16, 16, 3))
        for j in range(8):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / f"p{i}" / f"{j}.png")
    out = tmp_path / "run"
    assert main(["train", "verify", "--data", str(root), "--holdout-fraction", "0.34", "--val-fraction", "0.25",
                 *FAST, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["oneshot_way"] == 2.0


def test_bad_holdout_is_one_line(tmp_path, capsys):
    assert main(["train", "verify", "--data", "digits", "--holdout-classes", "11", *FAST, "--out", str(tmp_path / "x")]) == 2
    assert "holdout" in capsys.readouterr().err


def test_class_disjoint_validation_is_recorded_and_never_trained(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "verify", "--data", "digits", "--limit-test", "100", "--val-identities", "2", *FAST,
                 "--out", str(out)]) == 0
    meta = ckpt.read_json(out / "checkpoints" / "best.json")
    val, train = set(meta["val_identities"]), set(meta["train_identities"])
    assert len(val) == 2 and len(train) == 5 and val.isdisjoint(train) and val.isdisjoint(meta["test_identities"])
    assert isinstance(json.loads((out / "summary.json").read_text())["val_eer"], float)


def test_encoding_defaults_and_refuses_features_for_the_binary_head(tmp_path, capsys):
    from cnnlab.tasks.verify import Verify, VerifyConfig

    assert Verify.resolve(VerifyConfig()).encoding == "features"
    assert Verify.resolve(VerifyConfig(loss="binary")).encoding == "projection"
    out = tmp_path / "run"
    assert main(["train", "verify", "--data", "digits", "--limit-test", "100", "--encoding", "projection", *FAST,
                 "--out", str(out)]) == 0
    assert ckpt.read_json(out / "checkpoints" / "best.json")["encoding"] == "projection"
    assert 0 <= json.loads((out / "summary.json").read_text())["eer"] <= 1
    assert main(["train", "verify", "--data", "digits", "--encoding", "features", "--loss", "binary", *FAST,
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--encoding projection" in capsys.readouterr().err
