"""Localization and landmarks end to end on tiny COCO folders: learn, evaluate, predict, resume."""

import json

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.engine.pipeline import train
from cnnlab.models.localization import boxes_to_course, course_to_boxes
from cnnlab.tasks.landmarks import LandmarksConfig, point_errors
from cnnlab.tasks.localize import LocalizeConfig

# a small backbone from scratch (the defaults fine-tune ImageNet MobileNetV2, which the CLI test below uses)
FAST = dict(epochs=15, batch_size=32, quiet=True, tensorboard=False, threads=2, model="resnet20", lr=2e-3,
            warmup_epochs=0.0, channels_last=False)


def test_course_box_encoding_round_trips():
    boxes = torch.tensor([[4.0, 8.0, 20.0, 12.0], [0.0, 0.0, 64.0, 32.0]])
    b = boxes_to_course(boxes, 32, 64)  # (b_x, b_y, b_h, b_w) fractions
    assert torch.allclose(b[0], torch.tensor([12 / 64, 10 / 32, 4 / 32, 16 / 64]))
    assert torch.allclose(course_to_boxes(b, 32, 64), boxes)


def test_point_errors_are_normalized_by_the_box_diagonal():
    kp = torch.tensor([[[0.0, 0.0, 2.0], [3.0, 4.0, 2.0], [1.0, 1.0, 0.0]]])
    pred = torch.tensor([[[3.0, 4.0], [3.0, 4.0], [9.0, 9.0]]])
    err, mask = point_errors(pred, kp, torch.tensor([[0.0, 0.0, 30.0, 40.0]]))  # diagonal 50
    assert torch.allclose(err[0, :2], torch.tensor([0.1, 0.0])) and mask.tolist() == [[1.0, 1.0, 0.0]]


def test_localize_learns_boxes_and_classes(tmp_path, coco_objects):
    run_dir, result, summary = train(LocalizeConfig(task="localize", data=str(coco_objects), out=str(tmp_path / "r"), **FAST))
    assert result.status == "finished"
    assert summary["eval_split"] == "test" and summary["acc"] > 0.9 and summary["acc_iou50"] > 0.6, summary
    assert summary["acc_iou50"] == summary["test_acc_iou50"] and "val_acc_iou50" in summary
    assert (run_dir / "plots" / "boxes-test.png").is_file() and (run_dir / "report.md").is_file()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_iou", "val_miou", "val_acc_iou50"} <= set(header)
    img = coco_objects / "test" / "images" / "0000.png"
    code = main(["predict", str(run_dir), str(img), "--json", "--draw", str(tmp_path / "draw")])
    assert code == 0 and (tmp_path / "draw" / "0000.png").is_file()


def test_localize_cli_predict_and_evaluate_output(tmp_path, coco_objects, capsys):
    out = tmp_path / "r"
    assert main(["train", "localize", "--data", str(coco_objects), "--epochs", "2", "--batch-size", "32", "--quiet",
                 "--no-tensorboard", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "test" and m["images"] == 16 and {"acc", "miou", "acc_iou50"} <= set(m)
    summary = json.loads((out / "summary.json").read_text())
    assert m["acc_iou50"] == pytest.approx(summary["acc_iou50"])  # the same evaluation as the run's own
    assert main(["predict", str(out), str(coco_objects / "test" / "images"), "--json", "--draw", str(tmp_path / "d")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 16 and all(len(r["box"]) == 4 and r["class"] in ("square", "disc") for r in lines)


def test_landmarks_learn_corners_in_order(tmp_path, coco_keypoints):
    run_dir, result, summary = train(LandmarksConfig(task="landmarks", data=str(coco_keypoints), out=str(tmp_path / "r"), **FAST))
    assert result.status == "finished" and summary["eval_split"] == "val"
    assert summary["pck"] > 0.6 and summary["nme"] < 0.15, summary
    best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert best["keypoint_names"] == ["top_left", "top_right", "bottom_right", "bottom_left"]
    assert (run_dir / "plots" / "points-val.png").is_file()


def test_landmarks_refuse_a_flip_that_would_reorder_points(tmp_path, coco_keypoints):
    """top_left/top_right names swap under a mirror (allowed); corner_0..3 have no such pairs (refused)."""
    from cnnlab.data.coco import flip_pairs_from_names
    from cnnlab.errors import ConfigError

    assert flip_pairs_from_names(["top_left", "top_right", "bottom_right", "bottom_left"]) == [(0, 1), (2, 3)]
    for split in ("train", "val"):
        path = coco_keypoints / split / "annotations.json"
        d = json.loads(path.read_text())
        for c in d["categories"]:
            c["keypoints"] = ["corner_0", "corner_1", "corner_2", "corner_3"]
        path.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="hflip"):
        train(LandmarksConfig(task="landmarks", data=str(coco_keypoints), augment="hflip", out=str(tmp_path / "r"), **FAST))


def test_localize_resume_is_bit_identical(tmp_path, coco_objects):
    from cnnlab.engine import checkpoint as ckpt
    from cnnlab.engine.run import read_config

    kw = dict(FAST, epochs=3, deterministic=True)
    train(LocalizeConfig(task="localize", data=str(coco_objects), out=str(tmp_path / "full"), **kw))
    run_dir, part, _ = train(LocalizeConfig(task="localize", data=str(coco_objects), out=str(tmp_path / "part"),
                                            stop_after=1, **kw))
    assert part.status == "interrupted"
    cfg = read_config(run_dir)
    cfg.stop_after = None
    train(cfg, resume=run_dir)
    a = ckpt.load_tensors(tmp_path / "full" / "checkpoints" / "last.safetensors")
    b = ckpt.load_tensors(run_dir / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("args,needle", [
    (["--data", "/nonexistent/folder"], "no such folder"),
    ([], "--data is required"),
])
def test_bad_localize_data_gets_one_line(tmp_path, capsys, args, needle):
    code = main(["train", "localize", *args, "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing was created for a run that could not start
