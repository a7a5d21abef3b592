"""A real SIGTERM to a training process, and training on a folder of image files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.conftest import run_cli

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "cnnlab", "train", "classify", "--data", "digits", "--limit", "300", "--limit-test", "60",
           "--model", "lenet5", "--epochs", "200", "--batch-size", "10", "--quiet", "--no-tensorboard", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "last.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, text
    assert "Traceback" not in text and f"--resume {out}" in text
    state = json.loads((out / "checkpoints" / "last.json").read_text())
    done = state["epoch"]
    assert 1 <= done < 200
    resumed = subprocess.run([sys.executable, "-m", "cnnlab", "train", "classify", "--resume", str(out), "--epochs", str(done + 1),
                              "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((out / "summary.json").read_text())["epochs"] == done + 1


def make_folder(root: Path, n_per_class: int = 12) -> Path:
    """Two classes of RGB images that differ in colour; a few odd files among them."""
    rng = np.random.default_rng(0)
    for c, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        d = root / c
        d.mkdir(parents=True)
        for i in range(n_per_class):
            arr = np.clip(rng.normal(colour, 40, size=(20 + i, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_train_on_image_folder_with_bad_files(capsys, tmp_path):
    data = make_folder(tmp_path / "photos")
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (data / "blue" / "notes.txt").write_text("ignored: not an image extension")
    args = ["train", "classify", "--data", data, "--model", "convnet_bn", "--model-arg", "width=8", "--img-size", "16",
            "--epochs", "6", "--batch-size", "8", "--optimizer", "adam", "--quiet", "--no-tensorboard"]
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "a")
    assert code == 2 and "broken.jpg" in err and "--skip-bad" in err
    assert not (tmp_path / "a" / "checkpoints" / "last.safetensors").exists()
    code, out, _ = run_cli(capsys, *args, "--skip-bad", "--out", tmp_path / "b")
    assert code == 0 and "skipped 1 bad files" in out
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["classes"] == ["blue", "red"] and summary["eval_split"] == "val"
    assert summary["val_acc"] >= 0.8  # colours are easy
    code, out, _ = run_cli(capsys, "predict", tmp_path / "b", data / "red" / "3.png", "--json")
    assert code == 0 and json.loads(out)["top"][0]["class"] == "red"


def test_sigterm_during_the_final_evaluation_says_what_and_exits_143(capsys, tmp_path, monkeypatch):
    """A real SIGTERM arrives while the finished run is evaluated on its test split: one line saying so, that the
    checkpoints are intact and how to evaluate later; exit 143; `cnnlab evaluate` then works on the folder."""
    from cnnlab.engine import pipeline
    from cnnlab.tasks.classify import Classify

    from tests.cli.conftest import TINY

    final = {"on": False}
    real_finish, real_step = pipeline.finish_run, Classify.validation_step

    def finish(*a, **k):
        final["on"] = True
        return real_finish(*a, **k)

    def step(self, model, batch):
        if final["on"]:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self, model, batch)

    monkeypatch.setattr(pipeline, "finish_run", finish)
    monkeypatch.setattr(Classify, "validation_step", step)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    code, stdout, err = run_cli(capsys, "train", "classify", *TINY, "--model", "lenet5", "--epochs", "1", "--out", out)
    assert code == 143, stdout + err
    lines = [ln for ln in stdout.splitlines() if "final evaluation" in ln]
    assert lines == [f"SIGTERM during the final evaluation on the test split: training finished and its checkpoints are "
                     f"intact; evaluate later with `cnnlab evaluate {out}`"]
    assert "Traceback" not in stdout + err
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are put back
    monkeypatch.setattr(Classify, "validation_step", real_step)
    code, stdout, _ = run_cli(capsys, "evaluate", out, "--json")
    assert code == 0 and json.loads(stdout)["count"] == 100
