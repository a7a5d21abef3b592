"""Semantic segmentation end to end: train through the CLI on tiny folders, evaluate, predict, bad masks."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.data.voc import read_palette_png
from tests.data.test_masks import write_coco, write_folders, write_voc

QUICK = ["--batch-size", "8", "--threads", "1", "--quiet", "--no-tensorboard", "--warmup-epochs", "0"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from cnnlab.data.scenes import make_scenes

    return make_scenes("segment", 24, tmp_path_factory.mktemp("seg") / "s", n_val=8, n_test=8, size=48, objects="shapes",
                       min_size=12, max_size=24, clutter=2)


@pytest.fixture(scope="module")
def unet_run(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "unet"
    code = main(["train", "segment", "--data", str(scenes / "voc"), "--model", "unet", "--backbone", "none",
                 "--epochs", "2", "--out", str(out), *QUICK])
    assert code == 0
    return out


def test_training_writes_miou_per_class_iou_and_mask_plots(unet_run):
    summary = json.loads((unet_run / "summary.json").read_text())
    assert summary["task"] == "segment" and summary["model"] == "unet" and summary["monitor"] == "miou"
    assert 0 <= summary["miou"] <= 1 and summary["miou"] == summary["test_miou"] and "val_miou" in summary
    assert "iou_background" in summary and "pixel_acc" in summary
    header = (unet_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_acc", "val_miou", "val_pixel_acc", "val_iou_background"} <= set(header)
    for name in ("masks-val.png", "masks-test.png", "iou.png", "curves.png"):
        assert (unet_run / "plots" / name).is_file(), name
    best = json.loads((unet_run / "checkpoints" / "best.json").read_text())
    assert best["backbone"] == "none" and best["classes"][0] == "background" and best["num_classes"] == 6
    assert "| circle |" in (unet_run / "report.md").read_text()


def test_evaluate_prints_miou_and_the_per_class_table(unet_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(unet_run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    summary = json.loads((unet_run / "summary.json").read_text())
    assert m["split"] == "test" and m["images"] == 8 and m["miou"] == pytest.approx(summary["miou"])
    assert main(["evaluate", str(unet_run)]) == 0
    out = capsys.readouterr().out
    assert "miou:" in out and "| class | IoU |" in out and "| square |" in out and "mIoU" in out


def test_predict_writes_a_palette_mask_and_an_overlay(unet_run, scenes, tmp_path, capsys):
    from cnnlab.tasks.segment import labels_from_prediction

    img = scenes / "test" / "images" / "00000.png"
    capsys.readouterr()
    assert main(["predict", str(unet_run), str(img), "--json", "--draw", str(tmp_path / "d")]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["size"] == [48, 48] and sum(row["classes"].values()) == pytest.approx(1.0, abs=1e-3)
    mask_png, overlay = tmp_path / "d" / "00000-mask.png", tmp_path / "d" / "00000.png"
    assert overlay.is_file() and Image.open(mask_png).mode == "P"
    classes = ["background", "circle", "square", "triangle", "star", "cross"]
    assert np.array_equal(read_palette_png(mask_png), labels_from_prediction(row, classes))


def test_unet_learns_squares_on_a_users_voc_folder(tmp_path):
    root = write_voc(tmp_path / "voc", n=(96, 24), size=32, seed=3)
    out = tmp_path / "r"
    assert main(["train", "segment", "--data", str(root), "--backbone", "none", "--epochs", "8", "--lr", "0.01",
                 "--augment", "hflip", "--out", str(out), *QUICK]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_split"] == "val" and summary["miou"] > 0.7, summary


@pytest.mark.parametrize("arch", [["--model", "fcn8s", "--backbone", "resnet20"],
                                  ["--model", "encdec", "--model-arg", "convs=1"],
                                  ["--model", "encdec", "--upsample", "bed_of_nails", "--model-arg", "convs=1"],
                                  ["--model", "full_res", "--model-arg", "width=8"],
                                  ["--model", "sliding_window", "--model-arg", "samples=8"]])
def test_every_architecture_trains_on_images_and_masks_folders(tmp_path, arch):
    root = write_folders(tmp_path / "f", n=12, size=32)
    out = tmp_path / "r"
    assert main(["train", "segment", "--data", str(root), *arch, "--epochs", "1", "--out", str(out), *QUICK]) == 0
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert best["model"] == arch[1] and summary["eval_split"] == "val" and 0 <= summary["miou"] <= 1


def test_a_coco_folder_trains_with_crowds_ignored(tmp_path):
    root, _ = write_coco(tmp_path / "coco", n=8)
    out = tmp_path / "r"
    assert main(["train", "segment", "--data", str(root), "--backbone", "none", "--epochs", "1", "--out", str(out),
                 "--class-weights", "balanced", *QUICK]) == 0
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["layout"] == "coco" and best["classes"] == ["background", "yellow", "cyan"]
    assert len(best["class_weights"]) == 3 and best["class_weights"][0] < 1  # background is the most frequent


def test_bad_masks_and_flags_get_one_line(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    m = read_palette_png(root / "SegmentationClass" / "train_002.png").copy()
    m[3, 3] = 9
    Image.fromarray(m).save(root / "SegmentationClass" / "train_002.png")
    cases = [(["--data", str(root)], "train_002.png: label 9"),
             (["--data", str(root), "--model", "fcn8s", "--backbone", "none"], "needs a --backbone"),
             (["--data", str(root), "--backbone", "nosuchnet"], "not a registered model"),
             (["--data", str(root), "--augment", "hflip+spin"], "'spin' is unknown"),
             ([], "--data is required")]
    for args, needle in cases:
        capsys.readouterr()
        code = main(["train", "segment", *args, "--out", str(tmp_path / "r"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and needle in err and err.count("\n") == 1, (args, err)
        assert not (tmp_path / "r").exists()


def test_median_frequency_weights():
    from cnnlab.tasks.segment import median_frequency_weights

    masks = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 2, 255]])
    w = median_frequency_weights(masks, 4)  # frequencies 6/9, 2/9, 1/9, absent; median 2/9
    assert w == pytest.approx([1 / 3, 1.0, 2.0, 1.0], abs=1e-4)
