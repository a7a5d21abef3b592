"""Checkpoint generations are one unit; a run folder has one writer; run files follow the umask."""

import os
import stat

import pytest
import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.pipeline import train
from cnnlab.engine.run import read_config
from cnnlab.errors import CheckpointError
from cnnlab.tasks.classify import ClassifyConfig


def small_cfg(out, **kw):
    base = dict(data="digits", model="lenet5", epochs=3, batch_size=100, limit=300, limit_test=100, quiet=True,
                tensorboard=False, threads=1, out=str(out), seed=3, deterministic=True, ema=0.5, snapshots=True)
    base.update(kw)
    return ClassifyConfig(**base)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even except Exception handlers)."""


def _weights(run_dir):
    return ckpt.load_tensors(run_dir / "checkpoints" / "last.safetensors")


def test_kill_before_every_commit_then_resume_ends_bit_identical(tmp_path, monkeypatch):
    """A run killed just before its k-th os.replace, for every k, resumes to the uninterrupted run's weights."""
    _, full, _ = train(small_cfg(tmp_path / "full"))
    assert full.status == "finished"
    reference = _weights(tmp_path / "full")
    real_replace = os.replace
    count = {"n": 0}

    def counting(*a, **k):
        count["n"] += 1
        return real_replace(*a, **k)

    monkeypatch.setattr(os, "replace", counting)
    train(small_cfg(tmp_path / "count"))
    total = count["n"]
    assert total >= 10
    resumed_runs = 0
    for k in range(1, total + 1, 2 if total > 30 else 1):
        out = tmp_path / f"kill{k}"
        calls = {"n": 0}

        def dying(*a, **kw):
            calls["n"] += 1
            if calls["n"] == k:
                raise Killed
            return real_replace(*a, **kw)

        monkeypatch.setattr(os, "replace", dying)
        with pytest.raises(Killed):
            train(small_cfg(out))
        monkeypatch.setattr(os, "replace", real_replace)
        if not (out / "checkpoints" / "last.safetensors").is_file():
            continue  # killed before the first checkpoint: nothing to resume, the folder can be reused
        cfg = read_config(out)
        _, result, _ = train(cfg, resume=out)
        assert result.status == "finished", k
        resumed = _weights(out)
        resumed_runs += 1
        assert all(torch.equal(reference[n], resumed[n]) for n in reference), f"diverged after a kill before commit {k}"
        assert not list((out / ".ckpt").glob("*.tmp")), "stale generations are cleaned up"
    assert resumed_runs >= total // 3  # most kills land after a first checkpoint: the test exercises resume


def test_mixed_checkpoint_set_is_refused(tmp_path):
    run_dir, _, _ = train(small_cfg(tmp_path / "r", epochs=2, stop_after=1))
    meta = ckpt.read_json(run_dir / "checkpoints" / "last.json")
    meta["step"] += 1
    ckpt.atomic_write_json(run_dir / "checkpoints" / "last.json", meta)
    cfg = read_config(run_dir)
    with pytest.raises(CheckpointError, match="inconsistent"):
        train(cfg, resume=run_dir)


def test_a_second_writer_gets_one_line(tmp_path):
    run_dir, _, _ = train(small_cfg(tmp_path / "r", epochs=2, stop_after=1))
    lock = ckpt.RunLock(run_dir).acquire()
    try:
        with pytest.raises(CheckpointError, match="in use by another cnnlab process"):
            train(read_config(run_dir), resume=run_dir)
    finally:
        lock.release()
    _, result, _ = train(read_config(run_dir), resume=run_dir)  # free again
    assert result.status == "finished"


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run_dir, _, _ = train(small_cfg(tmp_path / "r", epochs=1, ema=0.0, snapshots=False))
    finally:
        os.umask(old)
    for name in ("config.json", "metrics.csv", "summary.json", "checkpoints/best.safetensors", "checkpoints/last.json"):
        mode = stat.S_IMODE(os.stat(run_dir / name).st_mode)
        assert mode & 0o044 == 0o044, (name, oct(mode))  # group and others may read
