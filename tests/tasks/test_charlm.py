"""The charlm task end to end on a tiny text, the sample command, and its errors."""

import json
import math

import pytest
import torch

from cnnlab.cli.main import main

TEXT = ("ROMEO: But soft, what light through yonder window breaks?\nJULIET: O Romeo, Romeo, wherefore art thou Romeo?\n") * 40


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("charlm")
    data = root / "play.txt"
    data.write_text(TEXT)
    out = root / "run"
    assert main(["train", "charlm", "--data", str(data), "--epochs", "3", "--hidden", "48", "--layers", "1",
                 "--bptt", "32", "--batch-size", "8", "--lr", "0.01", "--out", str(out), "--quiet", "--no-tensorboard",
                 "--threads", "1"]) == 0
    return data, out


def test_training_learns_and_reports_nats_bits_perplexity(run):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"train_clipped", "train_grad_norm", "val_bpc", "val_perplexity"} <= set(header)
    assert summary["val_loss"] < math.log(len(set(TEXT)))  # better than uniform over the characters
    assert summary["bpc"] == pytest.approx(summary["loss"] / math.log(2))
    assert summary["perplexity"] == pytest.approx(math.exp(summary["loss"]))
    assert (out / "sample.txt").read_text()
    assert "nats/char" in (out / "report.md").read_text()


def test_sample_command_is_reproducible(run, capsys):
    _, out = run
    assert main(["sample", str(out), "--prompt", "ROMEO:", "--chars", "60", "--seed", "3"]) == 0
    a = capsys.readouterr().out
    assert main(["sample", str(out), "--prompt", "ROMEO:", "--chars", "60", "--seed", "3"]) == 0
    b = capsys.readouterr().out
    assert a == b and a.startswith("ROMEO:") and len(a.rstrip("\n")) >= 60
    assert main(["sample", str(out), "--prompt", "Zq~", "--chars", "5", "--temperature", "0"]) == 0
    assert "never occurred in training" in capsys.readouterr().out


def test_user_mistakes_get_one_line(tmp_path, run, capsys):
    _, out = run
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "b.txt"
    binary.write_bytes(bytes(range(256)))
    for args, words in ((["train", "charlm", "--data", str(empty)], "empty"),
                        (["train", "charlm", "--data", str(binary)], "binary"),
                        (["train", "charlm", "--data", str(tmp_path / "nope.txt")], "no such file"),
                        (["sample", str(out), "--temperature", "-1"], "--temperature"),
                        (["sample", str(tmp_path)], "")):
        assert main(args) != 0
        err = capsys.readouterr().err
        assert err.startswith("error:") and words in err and "Traceback" not in err


def test_gradient_clipping_is_logged_and_applied():
    """Clipping rescales the gradient to the given norm, and the trainer logs how often it happened."""
    p = torch.nn.Parameter(torch.ones(4))
    (p * 10).sum().backward()
    norm = torch.nn.utils.clip_grad_norm_([p], 1.0)
    assert norm.item() == pytest.approx(20.0) and p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_clipped_fraction_in_a_run(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    out = tmp_path / "r"
    assert main(["train", "charlm", "--data", str(data), "--epochs", "1", "--hidden", "16", "--layers", "1",
                 "--bptt", "16", "--batch-size", "4", "--grad-clip", "1e-6", "--out", str(out), "--quiet",
                 "--no-tensorboard", "--threads", "1"]) == 0
    import csv

    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert float(row["train_clipped"]) == 1.0  # every step's gradient is larger than 1e-6


def test_evaluate_gives_the_runs_own_validation_loss(run, capsys):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{summary['loss']:.4f}" in printed


def test_explain_cells_writes_heatmaps(run, tmp_path, capsys):
    data, out = run
    text = tmp_path / "q.txt"
    text.write_text('He said "hello (there)" and\n    left "now".\n' * 20)
    assert main(["explain-cells", str(out), "--text", str(text), "--out", str(tmp_path / "cells")]) == 0
    found = json.loads((tmp_path / "cells" / "cells.json").read_text())["features"]
    assert {"inside_quotes", "position_in_line", "indentation", "inside_brackets"} <= set(found)
    assert all(-1 <= f["r"] <= 1 for f in found.values())
    assert (tmp_path / "cells" / "inside_quotes.png").stat().st_size > 1000
    assert "<span" in (tmp_path / "cells" / "inside_quotes.html").read_text()


@pytest.mark.parametrize("name", ["fast", "best"])
def test_named_recipes_are_valid_and_flags_override_them(name):
    from cnnlab.tasks.charlm import RECIPES, CharLMConfig

    from cnnlab.cli.main import build_parser
    from cnnlab.cli.train import config_from_args

    cfg = CharLMConfig(task="charlm", recipe=name, **RECIPES[name]).validate()
    assert cfg.time_budget and cfg.time_budget < (300 if name == "fast" else 1200)  # training time within the goal
    assert cfg.epochs * cfg.epoch_chars >= 8_000_000  # the budget, not the epochs, ends training on 2 cores
    args = build_parser().parse_args(["train", "charlm", "--recipe", name, "--hidden", "32"])
    typed = config_from_args(args)
    assert typed.hidden == 32 and typed.time_budget == RECIPES[name]["time_budget"]
    assert typed.lr == RECIPES[name]["lr"] and typed.batch_size == RECIPES[name]["batch_size"]
