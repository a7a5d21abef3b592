import json
import re

import pytest

from cnnlab.cli.main import main


def test_gradcheck_passes_every_layer_below_1e_7(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:] if re.search(r"\d\.\d\de[-+]\d\d\s+(yes|NO)$", line)]
    assert len(rows) >= 60
    assert all(float(r[-2]) < 1e-7 and r[-1] == "yes" for r in rows)
    layers = {r[0] for r in rows}
    assert {"affine", "conv_fft", "lstm", "batchnorm", "svm_loss", "elastic_net"} <= layers


def test_gradcheck_float32_fails_with_nonzero_exit(capsys):
    assert main(["gradcheck", "--only", "affine", "--dtype", "float32"]) == 1
    assert "NO" in capsys.readouterr().out


def test_gradcheck_bad_options_are_one_line_errors(capsys):
    assert main(["gradcheck", "--only", "nothing*"]) == 2
    assert main(["gradcheck", "--order", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)


@pytest.mark.parametrize("model", ["knn", "svm", "softmax", "twolayer", "convnet"])
def test_scratch_train_small_limit(model, tmp_path, capsys):
    out = tmp_path / model
    assert main(["scratch", "train", "--model", model, "--data", "digits", "--limit", "150", "--epochs", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    m = re.search(r"train accuracy (\S+)\s+val accuracy (\S+)\s+test accuracy (\S+)", text)
    assert m and all(0.0 <= float(v) <= 1.0 for v in m.groups())
    png = (out / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"]["train"] == 150 and summary["test_acc"] == pytest.approx(float(m.group(3)), abs=1e-4)


@pytest.mark.parametrize("argv,message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--model", "svm", "--limit", "-5"], "--limit must be a positive"),
    (["--model", "svm", "--data", "cifar"], "unknown dataset 'cifar'"),
    (["--model", "svm", "--data", "fashion-mnist", "--data-root", "/nonexistent"], "apt-get install dataset-fashion-mnist"),
])
def test_scratch_train_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main(["scratch", "train", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


@pytest.mark.parametrize("argv", [["gradcheck", "--help"], ["scratch", "train", "--help"]])
def test_help_shows_an_example(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "example" in capsys.readouterr().out
