"""`cnnlab faces`: detection on real photos and the enroll / verify / identify round trip."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def verify_run(tmp_path_factory):
    """A small verify run on digits (trained identities 0-6 are told apart well after a few steps)."""
    out = tmp_path_factory.mktemp("runs") / "verify"
    assert main(["train", "verify", "--data", "digits", "--limit-test", "200", "--steps-per-epoch", "40", "--epochs", "1",
                 "--quiet", "--no-tensorboard", "--threads", "1", "--model-arg", "width=8", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    folder = tmp_path_factory.mktemp("digits")
    files = {}
    for label in (0, 1):
        idx = np.nonzero(d.target == label)[0][:4]
        files[label] = []
        for i in idx:
            path = folder / f"d{label}_{i}.png"
            Image.fromarray(np.rint(d.images[i] * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR).save(path)
            files[label].append(path)
    return files


def test_detect_grace_hopper(tmp_path, capsys):
    import matplotlib.cbook as cbook

    photo = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    code, out, _ = run_cli(capsys, "faces", "detect", photo, "--out", tmp_path, "--json")
    assert code == 0
    faces = json.loads(out)[str(photo)]
    assert len(faces) == 1 and len(faces[0]["landmarks"]) == 5
    assert (tmp_path / "grace_hopper-faces.png").is_file()


def test_round_trip(verify_run, digit_files, tmp_path, capsys):
    db = tmp_path / "db"
    code, out, _ = run_cli(capsys, "faces", "enroll", verify_run, "--db", db, "--name", "zero", "--no-detect",
                           *digit_files[0][:3])
    assert code == 0 and "3 photos of 'zero'" in out
    assert sorted(p.name for p in db.iterdir()) == ["db.json", "encodings-1.safetensors"]  # encodings only
    code, out, _ = run_cli(capsys, "faces", "identify", verify_run, "--db", db, "--no-detect", digit_files[0][3], "--json")
    answer = json.loads(out)
    assert code == 0 and answer["recognized"] and answer["name"] == "zero"
    code, out, _ = run_cli(capsys, "faces", "verify", verify_run, "--db", db, "--name", "zero", "--no-detect",
                           digit_files[1][0], "--json")
    assert code == 0 and json.loads(out)["same"] is False  # a one is not the zero
    code, out, _ = run_cli(capsys, "faces", "identify", verify_run, "--db", db, "--no-detect", digit_files[1][0])
    assert code == 0 and "not recognized" in out
    code, out, _ = run_cli(capsys, "faces", "identify", verify_run, "--db", db, "--no-detect", digit_files[0][3],
                           "--tau", "0")
    assert "not recognized" in out  # nothing is within distance 0 of a new image
    code, out, _ = run_cli(capsys, "faces", "enroll", verify_run, "--db", db, "--name", "one", "--no-detect",
                           digit_files[1][1])
    assert code == 0 and sorted(p.name for p in db.iterdir()) == ["db.json", "encodings-2.safetensors"]
    code, out, _ = run_cli(capsys, "faces", "identify", verify_run, "--db", db, "--no-detect", digit_files[1][0], "--json")
    assert json.loads(out)["name"] == "one"


def test_missing_and_corrupt_database(verify_run, digit_files, tmp_path, capsys):
    code, _, err = run_cli(capsys, "faces", "identify", verify_run, "--db", tmp_path / "nope", "--no-detect",
                           digit_files[0][0])
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    db = tmp_path / "db"
    db.mkdir()
    (db / "db.json").write_text("{ not json")
    for argv in (["identify", verify_run, "--db", db], ["enroll", verify_run, "--db", db, "--name", "x"]):
        code, _, err = run_cli(capsys, "faces", *argv, "--no-detect", digit_files[0][0])
        assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1
    assert (db / "db.json").read_text() == "{ not json" and sorted(p.name for p in db.iterdir()) == ["db.json"]


def test_no_face_is_one_line(verify_run, tmp_path, capsys):
    import skimage.data

    cat = tmp_path / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(cat)
    code, _, err = run_cli(capsys, "faces", "enroll", verify_run, "--db", tmp_path / "db", "--name", "cat", cat)
    assert code == 2 and "no face found" in err and not (tmp_path / "db").exists()
