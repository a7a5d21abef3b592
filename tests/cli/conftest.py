import pytest

from cnnlab.cli.main import main


def run_cli(capsys, *argv):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


TINY = ["--data", "digits", "--limit", "300", "--limit-test", "100", "--batch-size", "50", "--quiet", "--no-tensorboard",
        "--threads", "1"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A small finished run (digits, LeNet-5, 2 epochs, with snapshots) shared by the CLI tests."""
    out = tmp_path_factory.mktemp("runs") / "lenet"
    code = main(["train", "classify", *TINY, "--model", "lenet5", "--epochs", "2", "--optimizer", "adam", "--lr", "0.003",
                 "--limit", "500", "--batch-size", "20", "--snapshots",
                 "--out", str(out)])
    assert code == 0
    return out
