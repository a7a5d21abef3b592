"""The segmentation benchmark: its quick mode trains and measures models end to end; the report's fields."""

from __future__ import annotations

import json

import pytest

import segmentation as bench

FIELDS = {"name", "flags", "model", "backbone", "parameters", "epochs", "miou", "pixel_acc", "train_seconds",
          "infer_ms_per_image", "activations_mb_per_image", "infer_peak_mb_per_image", "train_peak_rss_mb"}


def test_every_course_variant_is_in_the_table():
    names = set(bench.VARIANTS)
    assert {"sliding_window", "full_res", "fcn8s", "unet", "unet_scratch"} <= names
    assert {f"encdec_{u}" for u in ("nearest", "bed_of_nails", "max_unpool", "transposed", "bilinear")} <= names
    assert set(bench.QUICK_MODELS) <= names
    with pytest.raises(SystemExit):
        bench.parse_args(["--epochs", "0"])
    table = bench.markdown([{"name": "fcn8s", "error": "boom"}])
    assert "failed: boom" in table and table.count("\n") == 2


@pytest.mark.slow
def test_quick_mode_trains_and_measures(tmp_path, capsys):
    report = bench.main(["--quick", "--threads", "1", "--work", str(tmp_path), "--models", "encdec_max_unpool", "unet",
                         "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert json.loads(out.out) == report == json.loads((tmp_path / "r.json").read_text())
    assert [r["name"] for r in report["results"]] == ["encdec_max_unpool", "unet"]
    for r in report["results"]:
        assert FIELDS <= set(r), r
        assert 0 <= r["miou"] <= 1 and r["infer_ms_per_image"] > 0 and r["activations_mb_per_image"] > 0
    assert report["results"][0]["upsample"] == "max_unpool" and report["results"][1]["backbone"] == "mobilenet_v2"
    assert "| unet |" in out.err
