"""`cnnlab demo` end to end, on the embedded digits fallback (an empty --data-root)."""

import json

import pytest

from tests.cli.conftest import run_cli


@pytest.mark.slow
def test_demo_falls_back_to_digits_and_writes_a_report(capsys, tmp_path):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(capsys, "demo", "--data-root", tmp_path / "no-fashion-mnist-here", "--epochs", "3", "--quiet",
                              "--out", out)
    assert code == 0
    assert "embedded fallback" in stdout and f"report folder: {out}" in stdout
    acc = float(stdout.strip().splitlines()[-1].split()[-1])
    summary = json.loads((out / "summary.json").read_text())
    assert acc == pytest.approx(summary["test_acc"], abs=1e-4) and acc > 0.8  # digits, 3 epochs of the fast recipe
    report = (out / "report.md").read_text()
    assert "test accuracy" in report and "plots/confusion.png" in report
    for png in ("curves", "confusion", "predictions", "lr"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
