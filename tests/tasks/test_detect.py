"""Detection end to end on tiny scenes folders the tests write: layouts, checks, encodings, the three
detectors, training, evaluation (against pycocotools on our own exported results), prediction."""

import json
import shutil

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.data import detection as D
from cnnlab.data.scenes import make_scenes
from cnnlab.errors import DataError
from cnnlab.models import create_model
from cnnlab.models.detection import SSD, YOLO, CourseWindowNet, SlidingWindowDetector
from cnnlab.models.detection.sliding_window import classify_crops

FAST = ["--epochs", "2", "--batch-size", "16", "--warmup-epochs", "0", "--quiet",
        "--no-tensorboard", "--threads", "2"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """48 train / 12 val / 12 test 64-px scenes of 1-2 shapes, written as COCO, VOC and YOLO."""
    out = tmp_path_factory.mktemp("det") / "scenes"
    return make_scenes("detect", 48, out, objects="shapes", size=64, min_size=16, max_size=28, max_objects=2,
                       n_val=12, n_test=12, clutter=0, formats=("coco", "voc", "yolo"), seed=3)


# ---------------------------------------------------------------------------- data
def test_the_three_layouts_read_the_same_scenes(scenes):
    coco, voc, yolo = (D.find_detection_splits(str(p)) for p in (scenes, scenes / "voc", scenes / "yolo"))
    assert (coco.format, voc.format, yolo.format) == ("coco", "voc", "yolo")
    assert coco.classes == voc.classes == yolo.classes == ["circle", "square", "triangle", "star", "cross"]
    for src in (coco, voc, yolo):
        assert {s: len(r) for s, r in src.splits.items()} == {"train": 48, "val": 12, "test": 12}
    a, b, c = coco.splits["train"][5], voc.splits["train"][5], yolo.splits["train"][5]
    assert a.labels.tolist() == b.labels.tolist() == c.labels.tolist()
    assert torch.allclose(a.boxes, c.boxes, atol=1e-3) and torch.allclose(a.boxes, b.boxes, atol=1.0)  # VOC: integer pixels


def test_official_coco_layout_and_a_single_json(scenes, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        data = json.loads((scenes / split / "annotations.json").read_text())
        shutil.copytree(scenes / split / "images", root / f"{split}2017")
        for im in data["images"]:
            im["file_name"] = im["file_name"].split("/")[-1]
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    src = D.find_detection_splits(str(root))
    assert src.format == "coco" and set(src.splits) == {"train", "val"} and len(src.splits["val"]) == 12
    single = D.find_detection_splits(str(root / "annotations" / "instances_train2017.json"))
    assert set(single.splits) == {"train"} and len(single.splits["train"]) == 48


def test_bad_boxes_are_refused_with_the_file_and_entry_named(scenes, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(scenes / "train", root / "train")
    ann = json.loads((root / "train" / "annotations.json").read_text())
    ann["annotations"][0]["bbox"] = [50, 50, 40, 10]  # leaves the 64-px image
    (root / "train" / "annotations.json").write_text(json.dumps(ann))
    recs = D.find_detection_splits(str(root)).splits["train"]
    with pytest.raises(DataError, match=r"annotations.json: image 'images/00000.png': object 0 box .* leaves the 64x64 image"):
        D.load_detection_set(recs, 64, 5)
    skipped = []
    ds = D.load_detection_set(recs, 64, 5, skip_bad=True, skipped=skipped)
    assert len(ds) == 47 and len(skipped) == 1
    ann["annotations"][0]["bbox"] = [5, 5, 0, 10]
    (root / "train" / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(DataError, match="degenerate box"):
        D.load_detection_set(D.find_detection_splits(str(root)).splits["train"], 64, 5)
    with pytest.raises(DataError, match="not a detection folder"):
        D.find_detection_splits(str(tmp_path))


def test_augmentation_moves_boxes_with_the_image(scenes):
    src = D.find_detection_splits(str(scenes))
    ds = D.load_detection_set(src.splits["train"], 64, 5)
    item = ds[0]
    w = 64
    flip = D.detection_transform("hflip", lambda x: x, 64)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = flip(ds[0])
        b, b0 = out["targets"]["boxes"], item["targets"]["boxes"]
        mirrored = torch.stack([w - b0[:, 2], b0[:, 1], w - b0[:, 0], b0[:, 3]], 1)
        if torch.allclose(b, b0):
            seen.add("same")
            assert torch.equal(out["images"], item["images"])
        else:
            assert torch.allclose(b, mirrored, atol=1e-4) and torch.equal(out["images"], item["images"].flip(-1))
            seen.add("flipped")
    assert seen == {"same", "flipped"}
    jitter = D.detection_transform("hflip+scale+color", lambda x: x, 64)
    for seed in range(10):
        torch.manual_seed(seed)
        out = jitter(ds[seed])
        b = out["targets"]["boxes"]
        assert len(b) == len(out["targets"]["labels"]) and out["images"].shape == (3, 64, 64)
        assert (b >= 0).all() and (b <= 64).all() and ((b[:, 2:] - b[:, :2]) >= 2).all()


# ---------------------------------------------------------------------------- models
def test_yolo_output_is_the_course_grid_and_its_encoding_decodes_back():
    anchors = [[16.0, 16.0], [24.0, 40.0], [40.0, 24.0]]
    model = YOLO(create_model("mobilenet_v2", num_classes=1), 4, anchors).eval()
    x = torch.randn(2, 3, 128, 128)
    out = model(x)
    assert out.shape == (2, 8, 8, 3, 5 + 4) and model.stride == 16  # S x S x A x (5 + C)
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0], [60.0, 60.0, 100.0, 84.0]]), "labels": torch.tensor([2, 0])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    resp, box_t, cls_t = model.encode_targets(targets, (8, 8), (128, 128))
    assert resp.sum() == 2 and resp[0, 2, 1, 1] and resp[0, 4, 5, 2]  # midpoint (20, 40) -> cell (2, 1), tall anchor
    # a perfect raw output: logit(b_x), logit(b_y), t_w, t_h at the responsible slots, sure objectness and class
    raw = torch.full_like(out, -20.0)
    bxy = box_t[..., :2].clamp(1e-4, 1 - 1e-4)
    raw[..., 1:3] = torch.log(bxy / (1 - bxy))
    raw[..., 3:5] = box_t[..., 2:]
    raw[..., 0] = torch.where(resp, 20.0, -20.0)
    raw[..., 5:] = torch.nn.functional.one_hot(cls_t, 4).float() * 20
    dets = model.detect(raw, score_threshold=0.5)
    assert dets[0]["labels"].tolist() == [2, 0] or sorted(dets[0]["labels"].tolist()) == [0, 2]
    order = dets[0]["labels"].argsort(descending=True)
    assert torch.allclose(dets[0]["boxes"][order], targets[0]["boxes"], atol=0.05) and len(dets[1]["boxes"]) == 0
    loss = model.loss(raw, targets, (128, 128))
    assert loss["box"] < 1e-3 and loss["cls"] < 1e-3 and loss["obj"] < 1e-3


def test_yolo_trains_every_anchor_that_fits_with_anchor_iou():
    anchors = [[20.0, 20.0], [24.0, 24.0], [60.0, 20.0]]
    model = YOLO(create_model("mobilenet_v2", num_classes=1), 3, anchors, extra_anchor_iou=0.5)
    targets = [{"boxes": torch.tensor([[40.0, 40.0, 62.0, 62.0]]), "labels": torch.tensor([1])}]
    resp, box_t, cls_t = model.encode_targets(targets, (8, 8), (128, 128))
    assert resp.sum() == 2 and resp[0, 3, 3, 0] and resp[0, 3, 3, 1] and not resp[0, 3, 3, 2]  # 22x22: both squares fit
    assert (cls_t[resp] == 1).all()
    w = model.anchors[:2, 0] * box_t[0, 3, 3, :2, 2].exp()  # each slot's t_w decodes to the same 22-px width
    assert torch.allclose(w, torch.tensor([22.0, 22.0]))
    single = YOLO(create_model("mobilenet_v2", num_classes=1), 3, anchors).encode_targets(targets, (8, 8), (128, 128))[0]
    assert single.sum() == 1 and single[0, 3, 3, 1]  # the course's rule: the best anchor only


def test_yolo_on_a_stride_4_backbone_uses_its_own_grid():
    model = YOLO(create_model("resnet20", num_classes=1), 3, [[10.0, 10.0]])
    out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 16, 16, 1, 8) and model.stride == 4


def test_ssd_default_boxes_match_its_heads_and_it_learns():
    torch.manual_seed(0)
    model = SSD(create_model("mobilenet_v2", num_classes=1), 3, 128)
    x = torch.randn(2, 3, 128, 128)
    out = model(x)
    d = model.default_boxes(out["sizes"], out["img_size"], x.device)
    assert out["sizes"].tolist() == [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]]
    assert out["loc"].shape == (2, len(d), 4) and out["conf"].shape == (2, len(d), 4)
    assert len(d) == 16 * 16 * 4 + (64 + 16 + 4) * 6 + 1 * 4
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[60.0, 20.0, 110.0, 70.0]]), "labels": torch.tensor([2])}]
    loss = model.loss(out, targets)
    loss["loss"].backward()
    assert torch.isfinite(loss["loss"]) and loss["positives"] >= 1
    assert sum(h.weight.grad.abs().sum() for h in model.loc) > 0 and model.conf[0].weight.grad.abs().sum() > 0
    dets = model.detect({k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()})
    assert len(dets) == 2 and set(dets[0]) == {"boxes", "scores", "labels"}


def test_fc_layers_as_convolutions_equal_the_crops_one_by_one():
    torch.manual_seed(0)
    net = CourseWindowNet(num_classes=4).eval()
    conv = net.to_convolutional().eval()
    with torch.no_grad():
        image = torch.randn(1, 3, 16, 16)  # the course's example: a 16x16 image gives 2x2 windows
        dense = conv(image)[0].permute(1, 2, 0)  # (2, 2, 4)
        crops = torch.stack([net(image[:, :, r:r + 14, c:c + 14])[0] for r in (0, 2) for c in (0, 2)]).view(2, 2, 4)
        assert dense.shape == (2, 2, 4) and torch.allclose(dense, crops, atol=1e-5)
        big = torch.randn(3, 28, 30)
        one_by_one = classify_crops(net, big, 14, 2)  # (8, 9, 4)
        assert one_by_one.shape == (8, 9, 4) and torch.allclose(conv(big[None])[0].permute(1, 2, 0), one_by_one, atol=1e-5)


def test_sliding_window_detector_windows_and_training_crops():
    torch.manual_seed(0)
    model = SlidingWindowDetector(create_model("resnet20", num_classes=1), 3, input_size=32, window_sizes=(16, 32))
    images = torch.rand(2, 3, 64, 64)
    dense = model.dense(images)
    for (boxes, logits), size in zip(dense, (16, 32)):
        assert logits.shape[:2] == (2, len(boxes)) and logits.shape[-1] == 4
        assert torch.allclose(boxes[:, 2] - boxes[:, 0], torch.full((len(boxes),), float(size)))
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 30.0, 36.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    crops, labels = model.sample_windows(images, targets)
    assert crops.shape[1:] == (3, 32, 32) and labels.tolist().count(3) == 1 and (labels == 0).sum() >= 4
    assert model(crops).shape == (len(labels), 4)


# ---------------------------------------------------------------------------- the command line
def test_train_evaluate_predict_and_coco_results(scenes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "detect", "--data", str(scenes), "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"map", "map50", "map75", "voc_map50", "val_map50"} <= set(summary) and summary["eval_split"] == "test"
    assert (out / "plots" / "boxes-test.png").is_file() and (out / "plots" / "pr-test.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "yolo" and config["backbone"] == "mobilenet_v2" and config["freeze"] == 2
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["map50"] == pytest.approx(summary["map50"]) and m["images"] == 12
    # our COCO results, scored by pycocotools on the folder's own annotation file, give the same AP
    res = tmp_path / "res.json"
    assert main(["predict", str(out), "--coco-json", str(res)]) == 0
    from cnnlab.metrics.detection import coco_eval_json

    oracle = coco_eval_json(scenes / "test" / "annotations.json", res)
    assert oracle["map"] == pytest.approx(m["map"], abs=1e-6) and oracle["map50"] == pytest.approx(m["map50"], abs=1e-6)
    capsys.readouterr()
    img = scenes / "test" / "images" / "00000.png"
    assert main(["predict", str(out), str(img), "--json", "--draw", str(tmp_path / "draw")]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(row) >= {"detections", "count", "drawing"} and (tmp_path / "draw" / "00000.png").is_file()


@pytest.mark.parametrize("model,sub", [("ssd", "voc"), ("sliding_window", "yolo")])
def test_voc_and_yolo_folders_train_each_detector(scenes, tmp_path, model, sub):
    out = tmp_path / model
    args = ["train", "detect", "--data", str(scenes / sub), "--model", model, "--out", str(out), *FAST]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["map50"] <= 1.0 and summary["eval_split"] == "test"


@pytest.mark.parametrize("detector", ["yolo", "ssd"])
def test_detector_fits_a_few_images(scenes, detector):
    """The targets, the loss and the decoding agree: 150 steps on 16 images find their objects again."""
    from cnnlab.data.detection import collate_detection
    from cnnlab.tasks.detect import Detect, DetectConfig

    torch.manual_seed(0)
    cfg = DetectConfig(task="detect", data=str(scenes), model=detector, limit=16, augment="none", quiet=True)
    cfg.validate()
    task = Detect(cfg)
    data = task.build_data(cfg)
    task.meta.update(data.meta)
    model = task.build_model(cfg, data)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 3e-3)
    batch = collate_detection([data.train[i] for i in range(16)])
    model.train()
    for _ in range(150):
        loss = task.training_step(model, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ev = task.evaluator()
    ev.update(task.validation_step(model, batch))
    m = ev.compute()
    assert m["map50"] > 0.9 and m["map"] > 0.5, m


def test_anchors_command_reports_kmeans_against_hand_picked(scenes, capsys):
    assert main(["anchors", "--data", str(scenes / "yolo"), "--k", "3", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert len(t["anchors"]) == 3 and t["img_size"] == 64
    assert t["mean_iou"] >= t["mean_iou_by_k"]["2"] >= t["mean_iou_by_k"]["1"] > 0
    assert main(["anchors", "--data", str(scenes), "--k", "100000"]) == 2
    assert "choose --k <=" in capsys.readouterr().err



def test_bad_settings_get_one_line(scenes, tmp_path, capsys):
    assert main(["train", "detect", "--data", str(scenes), "--anchors", "20x30", "--out", str(tmp_path / "a")]) == 2
    assert "--anchors '20x30'" in capsys.readouterr().err
    assert main(["train", "detect", "--data", str(scenes), "--augment", "mirror", "--out", str(tmp_path / "b")]) == 2
    assert "--augment mirror" in capsys.readouterr().err
    assert main(["train", "detect", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")]) == 2
    assert "no such folder" in capsys.readouterr().err
