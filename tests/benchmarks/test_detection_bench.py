"""The detection benchmark on tiny settings: every model is timed against the peer, the conv windows are exact."""

from __future__ import annotations

import json

import pytest

import detection


def test_times_yolo_ssd_and_the_peer_at_one_size(capsys):
    report = detection.main(["--sizes", "64", "--threads", "1", "--batch", "2", "--steps", "1", "--rounds", "1",
                             "--reps", "1", "--peak-sizes", "128"])
    out = capsys.readouterr()
    assert json.loads(out.out) == report and "infer ms/img" in out.err
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {"yolo", "ssd", "peer"} and rows["peer"]["train_speed_vs_peer"] == 1
    for r in rows.values():
        assert r["size"] == 64 and r["train_images_per_s"] > 0 and r["infer_ms_per_image"] > 0 and r["forward_gmacs"] > 0
    sw = report["sliding_window"]
    assert sw["windows"] == 26 * 26 and sw["max_abs_difference"] < 1e-4 and sw["speedup"] > 1


def test_bad_arguments():
    with pytest.raises(SystemExit):
        detection.main(["--sizes", "16"])
