"""Captioning end to end on a tiny COCO captions folder the test writes; bad inputs; the scenes' novel split."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.data.captions import Vocabulary, collate_captions, tokenize

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 230)}


def write_captions(root, n_train=48, n_val=16, n_test=8, size=32, seed=0):
    """One red or blue square, left or right, on dark noise; two captions per image; instances.json with boxes."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        if n == 0:
            continue
        folder = root / split
        (folder / "images").mkdir(parents=True)
        images, anns, inst = [], [], []
        for i in range(n):
            colour = list(COLOURS)[i % 2]
            side = ("left", "right")[(i // 2) % 2]
            img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
            x0 = 2 if side == "left" else size // 2 + 2
            img[10:22, x0:x0 + 12] = COLOURS[colour]
            Image.fromarray(img).save(folder / f"images/{i:03d}.png")
            images.append({"id": i + 1, "file_name": f"images/{i:03d}.png", "width": size, "height": size})
            anns += [{"id": 2 * i + 1, "image_id": i + 1, "caption": f"A {colour} square on the {side}."},
                     {"id": 2 * i + 2, "image_id": i + 1, "caption": f"the {colour} square is {side}"}]
            inst.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [x0, 10, 12, 12], "colour": colour})
        (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns}))
        (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": inst,
                                                          "categories": [{"id": 1, "name": "square"}]}))
    return root


def test_tokens_vocabulary_and_padding():
    assert tokenize("A red circle, left of a star.") == ["a", "red", "circle", "left", "of", "a", "star"]
    v = Vocabulary.build([["a", "red", "circle"], ["a", "star"]], min_count=2)
    assert v.words == ["<PAD>", "<START>", "<END>", "<UNK>", "a"]
    assert v.encode(["a", "red"]) == [1, 4, 3, 2] and v.decode([4, 3, 2, 4]) == ["a", "<UNK>"]
    batch = collate_captions([{"images": torch.zeros(3, 2, 2), "tokens": torch.tensor([1, 4, 2]), "index": 0, "set_id": 1},
                              {"images": torch.zeros(3, 2, 2), "tokens": torch.tensor([1, 2]), "index": 1, "set_id": 1}])
    assert batch["tokens"].tolist() == [[1, 4, 2], [1, 2, -1]] and batch["lengths"].tolist() == [3, 2]


def test_teacher_forcing_loss_ignores_padding():
    from torch import nn

    from cnnlab.models.captioning import create_captioner
    from cnnlab.tasks.caption import Caption, CaptionConfig

    class TinyBackbone(nn.Module):
        num_features = 8

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)

        def forward_features(self, x):
            return self.conv(x)  # (B, 8, 4, 4)

    task = Caption(CaptionConfig(task="caption", data="x", att_reg=0.0))
    torch.manual_seed(0)
    model = create_captioner("show_attend_tell", TinyBackbone(), 9, embed_dim=8, hidden=8, att_dim=8, att_feat=8).eval()
    images = torch.randn(2, 3, 16, 16)
    short = torch.tensor([[1, 5, 6, 2], [1, 7, 2, -1]])
    padded = torch.cat([short, torch.full((2, 5), -1)], 1)
    a = task.training_step(model, {"images": images, "tokens": short})["loss"]
    b = task.training_step(model, {"images": images, "tokens": padded})["loss"]
    assert torch.allclose(a, b)
    # by hand: mean cross-entropy over the 5 real next words
    logits, _ = model(model.encode(images), short[:, :-1].clamp(min=0))
    targets = short[:, 1:]
    ce = -logits.log_softmax(-1).gather(2, targets.clamp(min=0)[..., None])[..., 0][targets >= 0].mean()
    assert torch.allclose(a, ce)


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    data = write_captions(tmp_path / "caps")
    shutil.copytree(data / "test", data / "test_novel")  # an extra split, scored in the report and by evaluate
    run = tmp_path / "run"
    rc = main(["train", "caption", "--data", str(data), "--img-size", "64", "--epochs", "12", "--batch-size", "8",
               "--threads", "1", "--quiet", "--no-tensorboard", "--out", str(run)])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_split"] == "test" and summary["val_bleu4"] >= 0.6 and summary["bleu1"] >= 0.8, summary
    assert 0 <= summary["att_chance"] < 1 and "att_correct" in summary
    assert summary["novel_bleu4"] == pytest.approx(summary["bleu4"])  # the same images as test
    config = json.loads((run / "config.json").read_text())
    assert config["decoder"] == "show_attend_tell" and config["train_backbone"] is False
    assert (run / "plots" / "attention-test-0.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "bleu4" in out and "lowest-scoring captions" in out
    assert main(["evaluate", str(run), "--split", "test_novel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["split"] == "test_novel"
    assert main(["predict", str(run), str(data / "test/images/000.png"), "--draw", str(tmp_path / "drawn"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    words = row["caption"].split()  # image 0: a red square on the left
    assert "red" in words and "square" in words and "greedy" in row and row["beam"] >= 2, row["caption"]
    assert len(row["attention"]) == len(row["caption"].split()) + 1  # one map per word and <END>
    assert all(abs(sum(a) - 1) < 1e-3 for a in row["attention"])
    assert (tmp_path / "drawn" / "000.png").is_file()


@pytest.mark.parametrize("breakage, expected", [
    ("missing_image", "not found"), ("unknown_image_id", "not in 'images'"), ("empty_caption", "empty caption")])
def test_bad_caption_files_give_one_line(tmp_path, capsys, breakage, expected):
    data = write_captions(tmp_path / "caps", n_train=4, n_val=2, n_test=0)
    ann = data / "train" / "annotations.json"
    d = json.loads(ann.read_text())
    if breakage == "missing_image":
        (data / "train" / "images" / "001.png").unlink()
    elif breakage == "unknown_image_id":
        d["annotations"].append({"id": 99, "image_id": 77, "caption": "a ghost"})
    else:
        d["annotations"][3]["caption"] = " . "
    ann.write_text(json.dumps(d))
    rc = main(["train", "caption", "--data", str(data), "--epochs", "1", "--quiet", "--no-tensorboard",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and expected in err[0] and "Traceback" not in err[0], err


def test_scenes_hold_out_colour_shape_pairs(tmp_path):
    from cnnlab.data.scenes import NOVEL_COMBOS, make_scenes

    out = make_scenes("caption", 24, tmp_path / "s", n_val=4, n_test=4, n_novel=6, max_objects=2, clutter=0)
    held = set(NOVEL_COMBOS)

    def pairs(split):
        d = json.loads((out / split / "instances.json").read_text())
        names = {c["id"]: c["name"] for c in d["categories"]}
        per_image = {}
        for a in d["annotations"]:
            per_image.setdefault(a["image_id"], []).append((a["colour"], names[a["category_id"]]))
        return per_image

    for split in ("train", "val", "test"):
        assert not any(p in held for ps in pairs(split).values() for p in ps), split
    novel = pairs("test_novel")
    assert len(novel) == 6 and all(any(p in held for p in ps) for ps in novel.values())
    caps = json.loads((out / "test_novel" / "annotations.json").read_text())["annotations"]
    assert any(f"{c} {s}" in a["caption"] for a in caps for c, s in held)


def test_frozen_features_are_cached_once_and_match_the_backbone(tmp_path):
    from cnnlab.tasks.caption import Caption, CaptionConfig

    data = write_captions(tmp_path / "caps", n_train=6, n_val=2, n_test=0)
    cfg = CaptionConfig(task="caption", data=str(data), img_size=64, batch_size=4).validate()
    task = Caption(cfg)
    bundle = task.build_data(cfg)
    model = task.build_model(cfg, bundle).train()
    assert task.meta["train_backbone"] is False and bundle.meta["vocab"][:4] == ["<PAD>", "<START>", "<END>", "<UNK>"]
    batch = bundle.collate([bundle.train[i] for i in (4, 1, 2)])
    first = task.features(model, batch)
    assert first.shape == (3, 4, 1280)  # 64 px -> a 2 x 2 map of mobilenet_v2's 1280 channels
    assert bundle.train.cached.tolist() == [False, True, True, False, True, False]
    with torch.no_grad():
        fresh = model.encode(batch["images"])
    assert torch.allclose(first, fresh, rtol=1e-2, atol=1e-2)  # stored in float16
    batch["images"] = torch.zeros_like(batch["images"])  # a cached image is not encoded again
    assert torch.equal(task.features(model, batch), first)


def test_coco_official_layout_and_a_single_file_are_found(tmp_path):
    """COCO's own layout (annotations/captions_train2017.json + train2017/) and one JSON file both read."""
    from cnnlab.data.captions import find_caption_splits, read_caption_records

    src = write_captions(tmp_path / "src", n_train=4, n_val=2, n_test=0)
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split, year in (("train", "train2017"), ("val", "val2017")):
        shutil.copytree(src / split / "images", root / year)
        data = json.loads((src / split / "annotations.json").read_text())
        for im in data["images"]:
            im["file_name"] = im["file_name"].split("/")[-1]  # COCO's file names carry no folder
        (root / "annotations" / f"captions_{year}.json").write_text(json.dumps(data))
    files = find_caption_splits(str(root))
    assert sorted(files) == ["train", "val"] and files["val"].name == "captions_val2017.json"
    recs = read_caption_records(files["train"])
    assert len(recs) == 4 and recs[0].path.parent.name == "train2017"
    assert recs[0].captions[0][:2] == ["a", "red"]
    one = find_caption_splits(str(root / "annotations" / "captions_train2017.json"))
    assert list(one) == ["train"]
