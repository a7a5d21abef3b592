"""The SmallMapConv2d benchmark on tiny settings: every ResNet-9 conv is timed and the swap is exact."""

from __future__ import annotations

import json

import pytest

import small_map_conv


def test_reports_every_resnet9_conv_with_a_matching_swapped_gradient(capsys):
    report = small_map_conv.main(["--width", "2", "--batch", "4", "--rounds", "1", "--reps", "1", "--dtype", "fp32",
                                  "--threads", "1", "--peak-sizes", "64"])
    out = capsys.readouterr()
    assert json.loads(out.out) == report and "swapped weight grad ms" in out.err
    names = [r["name"] for r in report["layers"]]
    assert names == ["prep", "layer1 conv", "layer1 residual", "layer2 conv", "layer3 conv", "layer3 residual"]
    maps = {r["name"]: r["map"] for r in report["layers"]}
    assert maps["prep"] == 28 and maps["layer3 residual"] == 3
    for r in report["layers"]:
        assert r["swap_rel_error"] < 1e-5 and all(v > 0 for v in r["ms"].values())
        assert r["swapped_in_training"] == (r["map"] ** 2 <= 16)
    assert report["peak_gflops"] > 0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        small_map_conv.main(["--width", "0"])
    with pytest.raises(SystemExit):
        small_map_conv.main(["--peak-sizes", "big"])
