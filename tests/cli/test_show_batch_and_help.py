"""`cnnlab show-batch` draws augmented training images; every flag of every command has a help text."""

import argparse
import json

import numpy as np
import pytest

from cnnlab.cli.main import build_parser
from tests.cli.conftest import run_cli


def _all_arguments(parser, path=("cnnlab",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_arguments(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_flag_of_every_command_has_a_help_text():
    seen = list(_all_arguments(build_parser()))
    assert len(seen) > 100  # train classify alone has ~50 flags: the walk reaches every subcommand
    missing = [(cmd, a.option_strings or a.dest) for cmd, a in seen if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert not missing, missing
    commands = {cmd for cmd, _ in seen}
    assert {"cnnlab evaluate", "cnnlab predict", "cnnlab ensemble", "cnnlab demo", "cnnlab scratch train",
            "cnnlab show-batch", "cnnlab train classify"} <= commands


def test_show_batch_draws_the_augmented_first_batch(capsys, tmp_path, monkeypatch):
    from cnnlab.engine import plots

    drawn = {}
    real = plots.plot_image_grid

    def capture(images, titles, path, title=None, cols=8):
        drawn.update(images=images, titles=titles, title=title)
        return real(images, titles, path, title=title, cols=cols)

    monkeypatch.setattr(plots, "plot_image_grid", capture)
    png = tmp_path / "out" / "batch.png"
    args = ["show-batch", "--data", "digits", "--limit", "200", "--batch-size", "20", "--threads", "1", "--count", "12"]
    code, out, err = run_cli(capsys, *args, "--augment", "hflip,crop=4", "--png", png)
    assert code == 0, err
    assert png.stat().st_size > 1000 and f"wrote {png}: 12 training images" in out
    augmented = drawn["images"]
    assert augmented.shape[0] == 12 and augmented.dtype == np.uint8 and "hflip,crop=4" in drawn["title"]
    assert all(t in [str(i) for i in range(10)] for t in drawn["titles"])  # each image's class name
    assert augmented.max() > 200  # normalization undone: the strokes are bright again
    code, _, _ = run_cli(capsys, *args, "--augment", "none", "--png", tmp_path / "plain.png")
    assert code == 0 and not np.array_equal(drawn["images"], augmented)  # the augmentation is what changes them


def test_show_batch_takes_a_config_file_and_refuses_bad_input(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"data": "digits", "limit": 100, "batch_size": 10, "augment": "crop=2", "threads": 1}))
    code, out, err = run_cli(capsys, "show-batch", "--config", cfg, "--png", tmp_path / "b.png")
    assert code == 0 and "augment 'crop=2'" in out, err
    for bad, fragment in ((["--png", tmp_path / "b.txt"], "--png"), (["--augment", "spin=3"], "spin"),
                          (["--count", "0", "--png", tmp_path / "c.png"], "--count")):
        code, _, err = run_cli(capsys, "show-batch", "--config", cfg, *bad)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
