"""A corpus of user mistakes: each gives one `error: ...` line, exit code 2, no traceback,
and leaves what was already written untouched."""

import hashlib
import os

import pytest

from tests.cli.conftest import TINY, run_cli


def one_error_line(err: str, *words: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def digest(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv,words", [
    (["--model", "no_such_net"], ["no_such_net", "cnnlab models"]),
    (["--optimizer", "adamax"], ["--optimizer", "adamax"]),
    (["--lr", "-1"], ["--lr"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--augment", "wobble=3"], ["wobble"]),
    (["--freeze", "99"], ["--freeze"]),
    (["--device", "cuda:7"], ["cuda"]),
])
def test_bad_training_options(capsys, tmp_path, argv, words):
    code, _, err = run_cli(capsys, "train", "classify", *TINY, "--epochs", "1", "--out", tmp_path / "r", *argv)
    assert code == 2
    one_error_line(err, *words)


def test_missing_dataset_names_file_and_fix(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "classify", "--data", "fashion-mnist", "--data-root", tmp_path, "--quiet")
    assert code == 2
    one_error_line(err, "train-images-idx3-ubyte", "dataset-fashion-mnist")


def test_missing_image_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "classify", "--data", tmp_path / "nowhere", "--quiet")
    assert code == 2
    one_error_line(err, "nowhere")


def test_out_folder_with_files_is_not_overwritten(capsys, trained_run):
    before = digest(trained_run)
    code, _, err = run_cli(capsys, "train", "classify", *TINY, "--out", trained_run)
    assert code == 2
    one_error_line(err, "--resume")
    assert digest(trained_run) == before


def test_evaluate_errors(capsys, tmp_path, trained_run):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "missing-run")
    assert code == 2
    one_error_line(err, "missing-run")
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    for f in ("config.json",):
        (broken / f).write_bytes((trained_run / f).read_bytes())
    (broken / "checkpoints" / "best.json").write_bytes((trained_run / "checkpoints" / "best.json").read_bytes())
    (broken / "checkpoints" / "best.safetensors").write_bytes(b"truncated")
    before = digest(broken)
    code, _, err = run_cli(capsys, "evaluate", broken)
    assert code == 2
    one_error_line(err, "best.safetensors", "corrupt")
    assert digest(broken) == before


def test_predict_bad_images(capsys, tmp_path, trained_run):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (empty, text, tmp_path / "absent.png"):
        code, _, err = run_cli(capsys, "predict", trained_run, path)
        assert code == 2
        one_error_line(err, path.name)


def test_resume_without_state(capsys, tmp_path, trained_run):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "config.json").write_bytes((trained_run / "config.json").read_bytes())
    code, _, err = run_cli(capsys, "train", "classify", "--resume", run)
    assert code == 2
    one_error_line(err, "train_state")


def test_ensemble_needs_snapshots_or_runs(capsys, tmp_path):
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    code, _, err = run_cli(capsys, "ensemble", run)
    assert code == 2
    one_error_line(err, "--snapshots")


def test_features_refuses_to_overwrite(capsys, tmp_path, trained_run):
    out = tmp_path / "feats"
    out.mkdir()
    (out / "features.safetensors").write_bytes(b"keep me")
    code, _, err = run_cli(capsys, "features", trained_run, "--out", out)
    assert code == 2
    one_error_line(err, "features")
    assert (out / "features.safetensors").read_bytes() == b"keep me"


def test_subcommand_help_has_examples(capsys):
    for cmd in (["train", "classify"], ["evaluate"], ["predict"], ["ensemble"], ["features"], ["demo"]):
        with pytest.raises(SystemExit) as e:
            run_cli(capsys, *cmd, "--help")
        assert e.value.code == 0
        assert "example" in capsys.readouterr().out
