import json
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ShapeError
from cnnlab.nn.fft_conv import FFTConv2d, _fast_len, fft_conv2d


@pytest.mark.parametrize(
    "k,padding,size",
    [((1, 1), 0, (9, 9)), ((3, 3), 1, (16, 16)), ((5, 5), 0, (13, 17)), ((4, 4), 2, (10, 11)),
     ((7, 3), (3, 1), (12, 9)), ((11, 11), 5, (23, 19)), ((13, 13), 0, (13, 13)), ((2, 5), 0, (7, 31))],
)  # fmt: skip
def test_matches_conv2d(k, padding, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    w = torch.randn(4, 3, *k)
    b = torch.randn(4)
    ref = F.conv2d(x, w, b, padding=padding)
    out = fft_conv2d(x, w, b, padding=padding)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-4


def test_same_padding_no_bias_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 10, 10, requires_grad=True)
    w = torch.randn(3, 2, 5, 5, requires_grad=True)
    out = fft_conv2d(x, w, padding="same")
    ref = F.conv2d(x, w, padding="same")
    assert (out - ref).abs().max() < 1e-4
    gx, gw = torch.autograd.grad(out.square().sum(), (x, w))
    rx, rw = torch.autograd.grad(ref.square().sum(), (x, w))
    torch.testing.assert_close(gx, rx, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(gw, rw, atol=1e-3, rtol=1e-4)


def test_module_is_a_drop_in_conv():
    torch.manual_seed(0)
    conv = FFTConv2d(3, 8, 7, padding=3)
    ref = torch.nn.Conv2d(3, 8, 7, padding=3)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 20, 20)
    assert (conv(x) - ref(x)).abs().max() < 1e-4


def test_errors_and_fast_lengths():
    with pytest.raises(ShapeError, match="larger than the padded input"):
        fft_conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 5, 5))
    with pytest.raises(ShapeError, match="3 channels but the weight expects 2"):
        fft_conv2d(torch.randn(1, 3, 8, 8), torch.randn(1, 2, 3, 3))
    with pytest.raises(ShapeError, match="odd kernel"):
        fft_conv2d(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4), padding="same")
    assert [_fast_len(n) for n in (7, 11, 13, 17, 64, 97, 121)] == [8, 12, 16, 18, 64, 100, 128]


def test_benchmark_script_prints_consistent_json(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fft_conv.py", "--kernels", "3", "9", "--size", "24", "--channels", "4",
                                      "--batch", "1", "--repeat", "2", "--matmul-n", "256"])  # fmt: skip
    runpy.run_path("benchmarks/fft_conv.py", run_name="__main__")
    res = json.loads(capsys.readouterr().out)
    assert [r["kernel"] for r in res["kernels"]] == [3, 9]
    for r in res["kernels"]:
        assert r["direct_ms"] > 0 and r["fft_ms"] > 0
        assert r["fft_speedup"] == pytest.approx(r["direct_ms"] / r["fft_ms"], rel=0.01)
        assert r["max_abs_diff"] < 1e-3
    wins = [r["fft_speedup"] > 1 for r in res["kernels"]]
    expected = {(False, False): None, (True, False): None, (False, True): 9, (True, True): 3}[tuple(wins)]
    assert res["fft_wins_from_kernel"] == expected  # from where the FFT wins at every larger kernel
    assert res["matmul_peak_gflops"] > 0
