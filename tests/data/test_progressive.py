"""Progressive resizing: the per-epoch size schedule, the resized batches, the loaders and a training run."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data.datasets import ArrayDataset, FileDataset
from cnnlab.data.loaders import make_loader
from cnnlab.data.normalize import compute_normalization
from cnnlab.data.progressive import (ProgressiveResize, check_model_accepts, parse_progressive, resize_batch,
                                     scaled_size)
from cnnlab.tasks.classify import ClassifyConfig as TrainConfig
from cnnlab.errors import ConfigError


def pairs(batches):
    """(images, labels) of each dict batch."""
    for b in batches:
        assert set(b) == {"images", "labels"}
        yield b["images"], b["labels"]


def test_parse_and_schedule():
    assert parse_progressive("none") is None and parse_progressive(None) is None and parse_progressive("") is None
    r = parse_progressive("16:0.5")
    assert r == ProgressiveResize(16, 0.5)
    # 10 epochs, full size 28: the ramp covers epochs 0..4 (epoch < 5), linear from 16 towards 28
    assert r.sizes(10, 28) == [16, 18, 21, 23, 26, 28, 28, 28, 28, 28]
    assert r.sizes(1, 28) == [16]  # a one-epoch run starts (and ends) at the smallest size
    assert ProgressiveResize(16, 1.0).sizes(4, 28) == [16, 19, 22, 25]
    assert ProgressiveResize(32, 0.5).sizes(3, 28) == [28, 28, 28]  # never upscales beyond the data
    sizes = ProgressiveResize(12, 0.6).sizes(25, 28)
    assert sizes == sorted(sizes) and sizes[0] == 12 and sizes[14] < 28 and sizes[15:] == [28] * 10


@pytest.mark.parametrize("spec", ["16", "a:0.5", "16:x", "2:0.5", "16:0", "16:1.5", "16:0.5:1"])
def test_bad_specs_name_the_flag(spec):
    with pytest.raises(ConfigError, match="--progressive-resize"):
        parse_progressive(spec)
    with pytest.raises(ConfigError, match="--progressive-resize"):
        TrainConfig(progressive_resize=spec).validate()


def test_resize_batch_matches_interpolate_and_keeps_aspect():
    x = torch.rand(3, 2, 28, 28)
    y = resize_batch(x, 16)
    assert y.shape == (3, 2, 16, 16)
    torch.testing.assert_close(y, F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False, antialias=True))
    assert resize_batch(x, 28) is x  # full size: untouched
    # antialiasing: a 1-pixel checkerboard averages to grey instead of aliasing into stripes
    board = ((torch.arange(28).view(-1, 1) + torch.arange(28).view(1, -1)) % 2).float().expand(1, 1, 28, 28)
    assert resize_batch(board, 14).std() < 0.05
    assert scaled_size(20, 40, 10) == (10, 20) and scaled_size(40, 20, 10) == (20, 10)
    assert resize_batch(torch.rand(1, 3, 20, 40), 10).shape == (1, 3, 10, 20)


def _ds(n=40, s=12):
    g = torch.Generator().manual_seed(0)
    return ArrayDataset(torch.randint(0, 256, (n, 1, s, s), dtype=torch.uint8, generator=g), torch.arange(n) % 4,
                        ["a", "b", "c", "d"])


def test_in_memory_loader_sizes_follow_the_epoch_and_eval_stays_full():
    ds = _ds()
    norm = compute_normalization(ds)
    r = ProgressiveResize(6, 0.5)
    train = make_loader(ds, 8, train=True, augment="hflip", normalization=norm, seed=2, resize=r, epochs=4)
    plain = make_loader(ds, 8, train=True, augment="hflip", normalization=norm, seed=2)
    for epoch, size in enumerate(r.sizes(4, 12)):
        train.set_epoch(epoch)
        plain.set_epoch(epoch)
        assert train.image_size() == size
        for (x, y), (xp, yp) in zip(pairs(train), pairs(plain)):
            assert x.shape[-2:] == (size, size) and torch.equal(y, yp)
            torch.testing.assert_close(x, resize_batch(xp, size))  # the same augmented batch, downscaled
    # resuming mid-epoch replays the same resized batches
    train.set_epoch(1)
    torch.testing.assert_close(list(train.iter_from(2))[0]["images"], list(train)[2]["images"])
    ev = make_loader(ds, 8, train=False, normalization=norm, resize=r, epochs=4)
    assert all(x.shape[-2:] == (12, 12) for x, _ in pairs(ev))


def test_file_loader_resizes_too(tmp_path, make_folder):
    make_folder(tmp_path, {"a": 4, "b": 4}, size=(8, 8))
    paths = sorted(str(p) for p in tmp_path.glob("*/*.png"))
    fds = FileDataset(paths, torch.tensor([0 if "/a/" in p else 1 for p in paths]), ["a", "b"], 3, (8, 8))
    loader = make_loader(fds, 4, train=True, resize=ProgressiveResize(4, 0.5), epochs=2)
    assert [x.shape[-2:] for x, _ in pairs(loader)] == [(4, 4), (4, 4)]
    loader.set_epoch(1)
    assert [x.shape[-2:] for x, _ in pairs(loader)] == [(8, 8), (8, 8)]


def test_models_without_global_pooling_are_refused_by_name():
    fixed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    with pytest.raises(ConfigError, match="model mlp does not accept 16x16"):
        check_model_accepts(fixed, 1, (28, 28), 16, "mlp", "16:0.5")
    pooled = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(4, 10)).train()
    check_model_accepts(pooled, 1, (28, 28), 16, "pooled", "16:0.5")
    assert pooled.training  # the probe leaves the mode as it was


def test_training_with_progressive_resizing_logs_the_sizes(tmp_path, idx_root):
    from cnnlab.engine.run import read_config
    from cnnlab.engine import checkpoint as ckpt
    from cnnlab.engine.pipeline import train as train_classifier

    root, _ = idx_root  # random 28x28 images: this checks the mechanics, not learning
    kw = dict(data="fashion-mnist", data_root=str(root), model="resnet9", model_kwargs={"width": 4}, epochs=4,
              batch_size=16, quiet=True, tensorboard=False, threads=1, seed=1, optimizer="adam", lr=3e-3,
              progressive_resize="12:0.5", deterministic=True, augment="hflip,crop=2", channels_last=True)
    run_dir, result, summary = train_classifier(TrainConfig(out=str(tmp_path / "full"), **kw))
    assert result.status == "finished" and summary["test_acc"] is not None
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert [r.split(",")[header.index("train_size")] for r in rows[1:]] == ["12", "20", "28", "28"]
    # stopped after epoch 1 and resumed: the same sizes, bit-identical weights
    part_dir, part, _ = train_classifier(TrainConfig(out=str(tmp_path / "part"), stop_after=1, **kw))
    assert part.status == "interrupted"
    cfg = read_config(part_dir)
    cfg.stop_after = None
    _, resumed, _ = train_classifier(cfg, resume=part_dir)
    a = ckpt.load_tensors(run_dir / "checkpoints" / "last.safetensors")
    b = ckpt.load_tensors(part_dir / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_refuses_a_fixed_size_model_in_one_line(capsys, tmp_path):
    from cnnlab.cli.main import main

    for model, size in (("lenet5", "4x4"), ("resnet9", "4x4")):  # a fixed-size head; too small for three poolings
        code = main(["train", "classify", "--data", "digits", "--model", model, "--limit", "64", "--epochs", "1",
                     "--progressive-resize", "4:0.5", "--out", str(tmp_path / "run"), "--quiet"])
        err = capsys.readouterr().err
        assert code != 0 and f"--progressive-resize 4:0.5: model {model} does not accept {size}" in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
