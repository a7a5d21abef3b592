"""benchmarks/inference.py: every runtime computes the eager network's outputs."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_every_runtime_matches_eager(tmp_path):
    import inference

    from cnnlab.models import create_model

    model = create_model("resnet9", num_classes=10, in_chans=1, width=4).eval()
    fns = inference.runtimes(model, (1, 28, 28), tmp_path, threads=1)
    assert list(fns) == ["eager", "torch.compile", "TorchScript (frozen)", "onnxruntime"]
    x = torch.randn(3, 1, 28, 28)
    ref = fns["eager"](x)
    for name, fn in fns.items():
        assert torch.allclose(fn(x).float(), ref, atol=1e-4), name
    assert inference.timed(lambda: fns["eager"](x), seconds=0.05, rounds=2) > 0
