"""Two processes under torchrun (gloo on CPU): both replicas must end with identical weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_two_process_ddp_replicas_identical(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[2]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # Weights moved from their initialization, and rank 0 alone wrote one run folder.
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 6 and summary["test_acc"] > 0.6  # chance is 0.1
    assert proc.stdout.count("run folder:") == 2  # printed once at start, once at the end, by rank 0 only
