import json

import pytest

from cnnlab.cli.main import main
from cnnlab.cli.models import parse_input_shape
from cnnlab.errors import ConfigError


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_summary_prints_the_lenet_table(capsys):
    rc, out, _ = run(capsys, "summary", "lenet5", "--input", "3x32x32")
    assert rc == 0
    lines = out.splitlines()
    conv1 = next(line for line in lines if line.startswith("features.0 "))
    assert "8x28x28" in conv1 and "6,272" in conv1 and conv1.split()[-2:] == ["608", "470,400"]
    pool1 = next(line for line in lines if line.startswith("features.2 "))
    assert "8x14x14" in pool1 and pool1.split()[-3:] == ["1,568", "0", "0"]
    head = next(line for line in lines if line.startswith("head "))
    assert head.split()[-4:] == ["10", "10", "850", "840"]
    assert "total params: 62,958" in out and "849,320" in out


def test_summary_json_and_default_input(capsys):
    rc, out, _ = run(capsys, "summary", "resnet50", "--json")
    d = json.loads(out)
    assert rc == 0 and d["input_shape"] == [3, 224, 224]
    assert round(d["total_macs"] / 1e9, 2) == 4.09 and d["total_params"] == 25_557_032


def test_summary_input_forms(capsys):
    rc, out, _ = run(capsys, "summary", "lenet5_1998", "--input", "40", "--json")
    d = json.loads(out)
    assert rc == 0 and d["input_shape"] == [1, 40, 40] and d["rows"][0]["output_shape"] == [6, 36, 36]


@pytest.mark.parametrize("bad", ["3x0x224", "axb", "3x224x224x2", "", "-3x32x32", "3.5x32x32"])
def test_bad_input_is_a_one_line_error(capsys, bad):
    rc, out, err = run(capsys, "summary", "lenet5", f"--input={bad}")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: bad --input")


def test_unknown_model_and_impossible_input_are_one_line_errors(capsys):
    rc, _, err = run(capsys, "summary", "resnet19")
    assert rc == 2 and err.count("\n") == 1 and "unknown model 'resnet19'" in err
    rc, _, err = run(capsys, "summary", "alexnet_tv", "--input", "3x8x8")  # the model's own check
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and "63x63" in err
    rc, _, err = run(capsys, "summary", "convnet_bn", "--input", "3x1x1")  # torch refuses
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: input 3x1x1 does not fit")
    rc, _, err = run(capsys, "models", "nothing*")
    assert rc == 2 and "no model matches" in err


def test_parse_input_shape():
    assert parse_input_shape("3x224x224", 1) == (3, 224, 224)
    assert parse_input_shape(" 224 X 112 ", 1) == (1, 224, 112)
    assert parse_input_shape("32", 3) == (3, 32, 32)
    with pytest.raises(ConfigError):
        parse_input_shape("0", 3)


def test_models_lists_params_and_macs(capsys):
    rc, out, _ = run(capsys, "models", "vgg1[16]", "--json")
    recs = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and set(recs) == {"vgg11", "vgg16"}
    assert recs["vgg16"]["params"] == 138_357_544 and round(recs["vgg16"]["macs"] / 1e9, 2) == 15.47
    assert recs["vgg16"]["input"] == "3x224x224"
    rc, out, _ = run(capsys, "models", "lenet*")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["model", "input", "params", "MACs"]
    lenet = next(line.split() for line in lines if line.startswith("lenet5 "))
    assert lenet[1:4] == ["3x32x32", "0.06M", "849.32K"]
    assert any(line.startswith("lenet5_1998 ") and "1x32x32" in line for line in lines)


@pytest.mark.parametrize("cmd", ["models", "summary"])
def test_help_shows_an_example(capsys, cmd):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "example" in capsys.readouterr().out
