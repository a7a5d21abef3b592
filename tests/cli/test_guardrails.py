"""Warnings for settings that quietly give poor runs: few steps per epoch, a Fashion-MNIST recipe on a tiny
folder; and one class is refused in one line."""

from tests.cli.conftest import run_cli
from tests.cli.test_cli_signals_and_folders import make_folder

QUICK = ["--epochs", "1", "--quiet", "--no-tensorboard", "--threads", "1"]


def test_few_steps_per_epoch_warns_and_enough_does_not(capsys, tmp_path):
    base = ["train", "classify", "--data", "digits", "--limit", "200", "--limit-test", "50", "--model", "lenet5", *QUICK]
    code, out, _ = run_cli(capsys, *base, "--batch-size", "50", "--out", tmp_path / "few")
    assert code == 0
    warnings = [ln for ln in out.splitlines() if ln.startswith("warning: an epoch has only")]
    assert warnings == ["warning: an epoch has only 4 steps of --batch-size 50; consider a smaller --batch-size or more data"]
    code, out, _ = run_cli(capsys, *base, "--batch-size", "10", "--out", tmp_path / "enough")
    assert code == 0 and "warning: an epoch has only" not in out


def test_fashion_mnist_recipe_on_a_tiny_folder_warns(capsys, tmp_path):
    photos = make_folder(tmp_path / "photos", n_per_class=10)
    code, out, err = run_cli(capsys, "train", "classify", "--data", photos, "--recipe", "fast", "--img-size", "16",
                             "--batch-size", "4", "--model-arg", "width=4", *QUICK, "--out", tmp_path / "r")
    assert code == 0, err
    assert "warning: --recipe fast was tuned for Fashion-MNIST (60,000 images); this training split has" in out


def test_one_class_is_refused_in_one_line(capsys, tmp_path):
    photos = make_folder(tmp_path / "photos", n_per_class=6)
    import shutil

    shutil.rmtree(photos / "blue")
    code, _, err = run_cli(capsys, "train", "classify", "--data", photos, "--img-size", "16", *QUICK, "--out", tmp_path / "r")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "one class" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "r").exists()
