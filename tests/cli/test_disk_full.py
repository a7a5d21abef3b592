"""A full disk at each write of a training (config, first checkpoint, a later checkpoint): one `error:` line naming
the path, a non-zero exit, no traceback, and the previous checkpoint generation intact and resumable."""

import errno
import json
import os

import pytest

from cnnlab.engine import checkpoint as ckpt
from tests.cli.conftest import TINY, run_cli

ARGS = ["train", "classify", *TINY, "--model", "lenet5", "--epochs", "3", "--optimizer", "adam"]


class _FullFile:
    """A file opened on a full disk: every write fails with ENOSPC."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False


def fill_disk(monkeypatch, full):
    """From now on, writing a file whose (temporary) path satisfies ``full(path)`` fails with ENOSPC: the JSON
    writer (os.fdopen(...).write) and the safetensors writer (save_file) both."""
    real_fdopen, real_save = os.fdopen, ckpt.save_file

    def fdopen(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return f
        return _FullFile(f) if full(path) else f

    def save_file(tensors, filename, *a, **k):
        if full(str(filename)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, filename, *a, **k)

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(ckpt, "save_file", save_file)


def one_error_line(code, err, *names):
    assert code != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "No space left on device" in lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])


def test_disk_full_when_writing_the_config(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fill_disk(monkeypatch, lambda p: ".config.json." in p)
    code, _, err = run_cli(capsys, *ARGS, "--out", out)
    one_error_line(code, err, out / "config.json")
    monkeypatch.undo()  # space freed: the same --out starts afresh
    code, _, err = run_cli(capsys, *ARGS, "--epochs", "1", "--out", out)
    assert code == 0, err


def test_disk_full_at_the_first_checkpoint(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fill_disk(monkeypatch, lambda p: ".safetensors." in p and "gen-e0001" in p)
    code, _, err = run_cli(capsys, *ARGS, "--out", out)
    one_error_line(code, err, out, "safetensors")
    assert not (out / "checkpoints").exists() and not list((out / ".ckpt").glob("*"))  # no half generation
    monkeypatch.undo()
    code, _, err = run_cli(capsys, *ARGS, "--epochs", "1", "--out", out)  # a folder without checkpoints is reusable
    assert code == 0, err


@pytest.mark.parametrize("which", ["train_state.safetensors", "last.json"])
def test_disk_full_at_a_later_checkpoint_keeps_the_previous_generation(capsys, tmp_path, monkeypatch, which):
    out = tmp_path / "run"
    kept = {}

    def full(path):
        if "gen-e0002" not in path or f".{which}." not in path:
            return False
        if not kept:  # what the previous generation holds when the disk fills up
            kept.update({p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()})
        return True

    fill_disk(monkeypatch, full)
    code, _, err = run_cli(capsys, *ARGS, "--out", out)
    one_error_line(code, err, out, which)
    assert kept and {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()} == kept  # byte-identical
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert not list((out / ".ckpt").glob("*.tmp"))
    monkeypatch.undo()
    code, outp, err = run_cli(capsys, "train", "classify", "--resume", out)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
