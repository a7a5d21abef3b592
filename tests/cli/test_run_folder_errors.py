"""Damaged run folders and bad settings: one `error:` line naming the file (and field), exit 2, nothing changed."""

import json
import shutil

import pytest
import torch

from tests.cli.conftest import TINY, run_cli
from tests.cli.test_cli_errors import digest, one_error_line


@pytest.fixture
def damaged(tmp_path, trained_run):
    """A copy of the shared trained run that a test may break."""
    path = tmp_path / "copy"
    shutil.copytree(trained_run, path, symlinks=True)
    return path


def _edit_json(path, change):
    d = json.loads(path.read_text())
    path.write_text(json.dumps(change(d)))


@pytest.mark.parametrize("damage,words", [
    (lambda r: (r / "config.json").write_text("[1, 2]"), ["config.json", "JSON object"]),
    (lambda r: _edit_json(r / "config.json", lambda d: dict(d, epochs="ten")), ["config.json", "--epochs"]),
    (lambda r: _edit_json(r / "config.json", lambda d: dict(d, lr=float("inf"))), ["config.json", "--lr"]),
    (lambda r: _edit_json(r / "checkpoints" / "best.json", lambda d: {k: v for k, v in d.items() if k != "classes"}),
     ["best.json", "classes"]),
    (lambda r: (r / "checkpoints" / "best.json").write_text('"a string"'), ["best.json"]),
])
def test_damaged_run_folders_for_evaluate_and_predict(capsys, damaged, damage, words):
    damage(damaged)
    before = digest(damaged)
    for argv in (["evaluate", damaged], ["predict", damaged, damaged / "plots" / "curves.png"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, argv
        one_error_line(err, *words)
    assert digest(damaged) == before


def test_a_checkpoint_with_edited_shapes(capsys, damaged):
    from safetensors.torch import load_file, save_file

    path = damaged / "checkpoints" / "best.safetensors"
    t = load_file(str(path))
    key = next(iter(t))
    t[key] = torch.zeros(3, 3)
    save_file(t, str(path))
    code, _, err = run_cli(capsys, "evaluate", damaged)
    assert code == 2
    one_error_line(err, "best.safetensors", key)


@pytest.mark.parametrize("damage,words", [
    (lambda r: _edit_json(r / "checkpoints" / "train_state.json", lambda d: {"__dict__": []}), ["train_state.json"]),
    (lambda r: (r / "metrics.csv").write_text("garbage\n\x00\x01,,\n"), ["metrics.csv"]),
])
def test_damaged_training_state_refuses_resume(capsys, tmp_path, damage, words):
    out = tmp_path / "r"
    code, _, _ = run_cli(capsys, "train", "classify", *TINY, "--model", "lenet5", "--epochs", "2", "--stop-after", "1",
                         "--out", out)
    assert code == 130
    damage(out)
    before = digest(out)
    code, _, err = run_cli(capsys, "train", "classify", "--resume", out)
    assert code == 2
    one_error_line(err, *words)
    assert digest(out) == before


@pytest.mark.parametrize("argv,words", [
    (["--lr", "inf"], ["--lr", "finite"]), (["--weight-decay", "nan"], ["--weight-decay", "finite"]),
    (["--schedule", "exp", "--gamma", "-0.5"], ["--gamma"]), (["--schedule", "step", "--step-size", "0"], ["--step-size"]),
    (["--threads", "-1"], ["--threads"]), (["--optimizer", "nesterov", "--momentum", "0"], ["--momentum"]),
    (["--model-arg", "num_classes=5"], ["num_classes"]), (["--model-arg", "width=-4", "--model", "resnet9"], ["width"]),
    (["--warmup-epochs", "nan"], ["--warmup-epochs"]), (["--init-std", "nan"], ["--init-std"]),
    (["--schedule", "inv", "--decay-k", "-2"], ["--decay-k"]),
])
def test_every_bad_number_gets_its_rule(capsys, tmp_path, argv, words):
    code, _, err = run_cli(capsys, "train", "classify", *TINY, "--epochs", "1", "--out", tmp_path / "r", *argv)
    assert code == 2
    one_error_line(err, *words)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_out_that_is_a_file_or_under_a_file(capsys, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        code, _, err = run_cli(capsys, "train", "classify", *TINY, "--epochs", "1", "--out", out)
        assert code == 2
        one_error_line(err, "--out")
    assert f.read_text() == "keep me"


def test_a_model_that_cannot_take_the_data_leaves_no_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "classify", *TINY, "--epochs", "1", "--model", "linear",
                           "--model-arg", "img_size=9", "--out", tmp_path / "r")
    assert code == 2
    one_error_line(err, "cannot take this data")
    assert not (tmp_path / "r").exists()
