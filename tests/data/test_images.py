import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import images as images_mod
from cnnlab.data.images import load_image, probe_image, resize_center_crop
from cnnlab.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)  # (H, W, 3)


def _save(tmp_path, im: Image.Image, name: str, **kw) -> str:
    path = str(tmp_path / name)
    im.save(path, **kw)
    return path


def _chw(arr: np.ndarray) -> torch.Tensor:
    arr = np.array(arr)  # writable copy
    return torch.from_numpy(arr).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr)[None]


def test_rgb_and_grey(tmp_path):
    path = _save(tmp_path, Image.fromarray(RGB), "c.png")
    t = load_image(path)
    assert t.dtype == torch.uint8 and t.shape == (3, 6, 9) and torch.equal(t, _chw(RGB))
    luma = np.asarray(Image.fromarray(RGB).convert("L"))
    assert torch.equal(load_image(path, channels=1), _chw(luma))
    grey = _save(tmp_path, Image.fromarray(luma), "g.bmp")
    assert torch.equal(load_image(grey), _chw(luma))  # grey stays 1 channel
    assert torch.equal(load_image(grey, channels=3), _chw(np.repeat(luma[..., None], 3, 2)))
    assert probe_image(grey).grey and not probe_image(path).grey and probe_image(path).size == (6, 9)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.concatenate([RGB, RNG.integers(0, 256, (6, 9, 1), dtype=np.uint8)], 2)
    expect = np.rint(RGB * (rgba[..., 3:] / 255) + 255 * (1 - rgba[..., 3:] / 255)).astype(np.uint8)
    t = load_image(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
    assert (t.int() - _chw(expect).int()).abs().max() <= 1
    la = np.stack([RGB[..., 0], np.full((6, 9), 0, np.uint8)], 2)  # fully transparent -> white
    t = load_image(_save(tmp_path, Image.fromarray(la, "LA"), "la.png"))
    assert t.shape == (1, 6, 9) and (t == 255).all()


def test_palette_images(tmp_path):
    p = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    t = load_image(_save(tmp_path, p, "p.png"))
    assert torch.equal(t, _chw(np.asarray(p.convert("RGB"))))
    grey_p = Image.fromarray(RGB[..., 0]).convert("P")  # palette of greys -> 1 channel
    grey_p.putpalette([v for i in range(256) for v in (i, i, i)])
    gif = _save(tmp_path, grey_p, "g.gif")
    assert load_image(gif).shape == (1, 6, 9)
    assert torch.equal(load_image(gif)[0], torch.from_numpy(np.array(Image.open(gif).convert("L"))))
    trans = p.copy()
    trans.info["transparency"] = 0  # palette entry 0 is see-through -> white
    t = load_image(_save(tmp_path, trans, "t.png", transparency=0))
    zero = np.asarray(p) == 0
    assert zero.any() and (t.permute(1, 2, 0).numpy()[zero] == 255).all()


def test_cmyk_and_webp(tmp_path):
    cmyk = Image.fromarray(RGB).convert("CMYK")
    t = load_image(_save(tmp_path, cmyk, "k.jpg", quality=100))
    assert t.shape == (3, 6, 9)
    t_tif = load_image(_save(tmp_path, cmyk, "k.tiff"))
    assert torch.equal(t_tif, _chw(np.asarray(cmyk.convert("RGB"))))
    webp = load_image(_save(tmp_path, Image.fromarray(RGB), "w.webp", lossless=True))
    assert torch.equal(webp, _chw(RGB))


def test_16_bit_and_32_bit_grey(tmp_path):
    v16 = (RGB[..., 0].astype(np.uint16) * 257)  # 0..65535 with exact 8-bit equivalents
    path = _save(tmp_path, Image.fromarray(v16), "s.png")
    assert Image.open(path).mode.startswith("I")
    assert torch.equal(load_image(path), _chw(RGB[..., 0]))
    i32 = _save(tmp_path, Image.fromarray(v16.astype(np.int32)), "i.tiff")
    assert Image.open(i32).mode == "I" and torch.equal(load_image(i32, channels=3), _chw(np.repeat(RGB[..., :1], 3, 2)))
    f = _save(tmp_path, Image.fromarray(RGB[..., 0].astype(np.float32) / 255), "f.tiff")
    assert torch.equal(load_image(f), _chw(RGB[..., 0]))


def test_exif_orientation(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    path = _save(tmp_path, im, "r.jpg", exif=exif.tobytes(), quality=95)
    t = load_image(path)
    assert t.shape == (3, 40, 20) and probe_image(path).size == (40, 20)
    assert t[:, :18].float().mean() > 240 and t[:, 22:].float().mean() < 15  # the white half is now on top
    t_small = load_image(path, size=(8, 4))
    assert t_small.shape == (3, 8, 4) and t_small[:, :3].float().mean() > 200


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)).convert("P") for v in (10, 200)]
    path = str(tmp_path / "anim.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert (load_image(path) == 10).all()


def test_resize_rules(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 7:23] = 200  # a bit more than the central third (the antialiasing filter reaches 2 px out)
    path = _save(tmp_path, Image.fromarray(wide), "wide.png")
    t = load_image(path, size=(5, 5))  # shorter side 10 -> 5, then the central 5x5 crop
    assert t.shape == (3, 5, 5) and (t == 200).all()
    t2 = resize_center_crop(_chw(wide), (5, 5))
    assert t2.shape == (3, 5, 5) and (t2 == 200).all()
    big = Image.fromarray(RNG.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    jpg = _save(tmp_path, big, "big.jpg")
    assert load_image(jpg, size=(16, 12)).shape == (3, 16, 12)  # JPEG draft path


def _bad_files(tmp_path):
    png = tmp_path / "good.png"
    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(png)
    jpg = tmp_path / "good.jpg"
    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(jpg)
    (tmp_path / "trunc.png").write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    (tmp_path / "trunc.jpg").write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a picture\n")
    return {
        "trunc.png": "truncated or corrupt", "trunc.jpg": "truncated or corrupt",
        "empty.png": r"file is empty \(0 bytes\)", "text.jpg": "not an image PIL can read",
    }


def test_bad_inputs_name_the_file_and_the_rule(tmp_path):
    for name, rule in _bad_files(tmp_path).items():
        with pytest.raises(DataError, match=rf"{tmp_path / name}: .*{rule}"):
            load_image(tmp_path / name)
    with pytest.raises(DataError, match="missing.png: image file not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match="channels=2"):
        load_image(tmp_path / "good.png", channels=2)


def test_decompression_bomb(tmp_path, monkeypatch):
    path = _save(tmp_path, Image.fromarray(RGB), "bomb.png")
    monkeypatch.setattr(images_mod, "MAX_IMAGE_PIXELS", 6 * 9 - 1)
    with pytest.raises(DataError, match=r"bomb.png: image is 9x6 = 54 pixels, over the decompression-bomb limit of 53"):
        load_image(path)
    with pytest.raises(DataError, match="decompression-bomb"):
        probe_image(path)


def test_bad_files_in_a_folder(tmp_path, make_folder, monkeypatch):
    from cnnlab.data.datasets import load_classification_data

    root = tmp_path / "set"
    make_folder(root, {"a": 6, "b": 6}, size=(32, 32))
    bad = _bad_files(root / "a")
    (root / "a" / "notes.txt").write_text("ignored: not an image extension")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "b" / "bomb.png")
    monkeypatch.setattr(images_mod, "MAX_IMAGE_PIXELS", 40 * 40)
    with pytest.raises(DataError, match=str(root / "a")):
        load_classification_data(str(root))
    for lazy in (False, True):
        data = load_classification_data(str(root), skip_bad=True, in_memory=not lazy, val_fraction=0)
        names = sorted(p.rsplit("/", 1)[1] for p, _ in data.skipped)
        # lazy folders get the header checks only; a PNG cut in its pixel data shows when it is read
        expect = sorted(["bomb.png", *bad]) if not lazy else sorted(["bomb.png", "empty.png", "text.jpg", "trunc.jpg"])
        assert names == expect, lazy
        assert len(data.train) == 19 - len(expect)  # 12 random, good.png, good.jpg, 4 bad, 1 bomb
        assert all(reason and not reason.startswith(str(root)) for _, reason in data.skipped)
    i = data.train.paths.index(str(root / "a" / "trunc.png"))
    with pytest.raises(DataError, match="trunc.png: image data is truncated"):
        data.train[i]


def test_folder_structure_errors(tmp_path, make_folder):
    from cnnlab.data.datasets import load_classification_data

    make_folder(tmp_path / "ok", {"a": 2})
    (tmp_path / "ok" / "empty_class").mkdir()
    (tmp_path / "ok" / "empty_class" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"ok/empty_class: class folder holds no images"):
        load_classification_data(str(tmp_path / "ok"))
    (tmp_path / "flat").mkdir()
    Image.fromarray(RGB).save(tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match=r"flat: no class subfolders"):
        load_classification_data(str(tmp_path / "flat"))
    make_folder(tmp_path / "split" / "train", {"a": 2, "b": 2})
    make_folder(tmp_path / "split" / "val", {"c": 1})
    with pytest.raises(DataError, match=r"split/val/c: class 'c' is not among the training classes"):
        load_classification_data(str(tmp_path / "split"))
