"""A user's bad input gives one line naming the file and the fix, never a traceback or a memory blow-up.

Every file here is written by the test: IDX files and gzip bombs (streamed, never held in memory),
images in every PIL mode and shape, and broken image folders.
"""

import gzip
import io
import os
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import idx as idx_mod
from cnnlab.data import images as images_mod
from cnnlab.data.datasets import load_classification_data
from cnnlab.data.idx import read_idx, write_idx
from cnnlab.data.images import load_image, probe_image, to_grey
from cnnlab.errors import DataError, ShapeError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # (H, W, 3)
MiB = 1024 * 1024


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def _idx_header(shape, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def write_gz_bomb(path: Path, images: np.ndarray, padding_mib: int) -> Path:
    """A valid IDX .gz of ``images`` followed by ``padding_mib`` MiB of zeros, written 1 MiB at a time."""
    zeros = bytes(MiB)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_idx_header(images.shape) + images.tobytes())
        for _ in range(padding_mib):
            f.write(zeros)
    return path


# ------------------------------------------------------------------------------------------- IDX


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    images = RNG.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    path = write_gz_bomb(tmp_path / "train-images-idx3-ubyte.gz", images, padding_mib=200)
    assert path.stat().st_size < 2 * MiB  # 200 MiB of zeros hide in under 1 MiB
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = one_line(e)
    assert msg.startswith(f"{path}: holds more than 1048576 bytes (decompressed) after the declared (100, 28, 28) uint8 data")
    assert peak < 16 * MiB, peak  # the images (78 KB) plus a few read chunks, not 200 MiB


def test_gzip_bomb_is_refused_by_every_caller(tmp_path, make_idx_set):
    from cnnlab.scratch.data import read_idx as scratch_read_idx

    make_idx_set(tmp_path)
    bomb = write_gz_bomb(tmp_path / "train-images-idx3-ubyte.gz", RNG.integers(0, 256, (40, 28, 28), dtype=np.uint8), 8)
    for load in (lambda: load_classification_data("mnist", str(tmp_path)), lambda: scratch_read_idx(bomb)):
        with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: holds more than \d+ bytes \(decompressed\)"):
            load()


def test_small_trailing_data_is_counted(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    plain = tmp_path / "a.idx"
    plain.write_bytes(_idx_header(arr.shape) + arr.tobytes() + b"12345")
    with pytest.raises(DataError) as e:
        read_idx(plain)
    assert one_line(e).startswith(f"{plain}: holds 5 bytes after the declared (3, 4) uint8 data")
    gz = tmp_path / "a.idx.gz"
    gz.write_bytes(gzip.compress(_idx_header(arr.shape) + arr.tobytes() + b"xyz"))
    with pytest.raises(DataError, match=r"a.idx.gz: holds 3 bytes \(decompressed\) after the declared \(3, 4\) uint8"):
        read_idx(gz)


def test_declared_size_the_file_cannot_hold(tmp_path):
    huge = (4_000_000_000, 4_000_000_000, 4_000_000_000)  # far beyond int64: the count must not overflow
    gz = tmp_path / "liar.gz"
    gz.write_bytes(gzip.compress(_idx_header((60000, 1000, 1000)) + bytes(100)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            read_idx(gz)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "declares (60000, 1000, 1000) uint8 = 60000000000 bytes" in one_line(e) and peak < MiB
    plain = tmp_path / "liar.idx"
    plain.write_bytes(_idx_header(huge) + bytes(10))
    with pytest.raises(DataError, match=r"liar.idx: IDX data is truncated \(10 of \d+ bytes"):
        read_idx(plain)
    gz_huge = tmp_path / "huge.gz"
    gz_huge.write_bytes(gzip.compress(_idx_header(huge, code=0x0E)))
    with pytest.raises(DataError, match="huge.gz: header declares"):
        read_idx(gz_huge)


def test_gzip_that_declares_less_than_it_holds_is_truncated(tmp_path):
    gz = tmp_path / "short.gz"
    gz.write_bytes(gzip.compress(_idx_header((10, 28, 28)) + bytes(28 * 28 * 3)))
    with pytest.raises(DataError, match=r"short.gz: IDX data is truncated \(2352 of 7840 bytes for \(10, 28, 28\) uint8\)"):
        read_idx(gz)


def test_size_limit_is_a_setting(tmp_path, monkeypatch):
    write_idx(tmp_path / "a.idx.gz", np.zeros((4, 5), np.int32))
    monkeypatch.setattr(idx_mod, "MAX_IDX_BYTES", 79)
    with pytest.raises(DataError, match=r"80 bytes, over the limit of 79 \(cnnlab.data.idx.MAX_IDX_BYTES\)"):
        read_idx(tmp_path / "a.idx.gz")


def test_corrupt_gzip_checksum_and_empty_file(tmp_path):
    raw = bytearray(gzip.compress(_idx_header((4,)) + b"abcd"))
    raw[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    (tmp_path / "crc.gz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="crc.gz: gzip stream is truncated or corrupt"):
        read_idx(tmp_path / "crc.gz")
    (tmp_path / "empty.idx").write_bytes(b"")
    with pytest.raises(DataError, match="empty.idx: not an IDX file .bad magic number empty"):
        read_idx(tmp_path / "empty.idx")


def test_big_endian_values_round_trip_through_the_streaming_reader(tmp_path):
    arr = RNG.standard_normal((3, 70001)).astype(np.float64)  # more than one read chunk (4 MiB) in total: 1.7 MB
    for name in ("f.idx", "f.idx.gz"):
        write_idx(tmp_path / name, arr)
        back = read_idx(tmp_path / name)
        assert back.dtype == np.float64 and back.flags.writeable and np.array_equal(back, arr)


# -------------------------------------------------------------------------------- grey conversion


def test_to_grey_is_pil_luma_exactly():
    rgb = np.concatenate([RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8).reshape(-1, 3),
                          np.array([[255, 255, 255], [0, 0, 0], [1, 2, 3], [128, 128, 127]], np.uint8)])[None]  # (1, N, 3)
    expect = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))  # (1, N)
    got = to_grey(torch.from_numpy(rgb).permute(2, 0, 1))  # (1, 1, N)
    assert got.dtype == torch.uint8 and got.shape == (1, 1, rgb.shape[1]) and np.array_equal(got[0].numpy(), expect)
    batch = torch.from_numpy(rgb).permute(2, 0, 1)[None].expand(2, 3, 1, -1)  # (2, 3, 1, N)
    assert to_grey(batch).shape == (2, 1, 1, rgb.shape[1])
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(to_grey(x), 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
    grey = torch.rand(2, 1, 4, 4)
    assert to_grey(grey) is grey
    with pytest.raises(ShapeError, match="to_grey wants images"):
        to_grey(torch.zeros(2, 4, 4, 4))


def test_no_other_grey_weights_in_the_data_package():
    root = Path(images_mod.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for other in ("0.2989", "0.2125", "0.7152", "0.7154", "rgb_to_grayscale"):
            assert other not in text, f"{path.name} has its own grey weights ({other}); use cnnlab.data.images.to_grey"


# ------------------------------------------------------------------------------------ image modes


def _mode_images() -> dict[str, Image.Image]:
    base = Image.fromarray(RGB)
    la = np.stack([RGB[..., 0], np.full((20, 30), 255, np.uint8)], 2)  # opaque: LA reads as its L channel
    p = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    p.info["transparency"] = 0
    rgba = np.concatenate([RGB, np.full((20, 30, 1), 255, np.uint8)], 2)
    grey_key = Image.fromarray(RGB[..., 1])
    grey_key.info["transparency"] = int(RGB[0, 0, 1])  # PNG tRNS colour key
    return {
        "la.png": Image.fromarray(la, "LA"), "p_trans.png": p, "rgba.png": Image.fromarray(rgba, "RGBA"),
        "i16.png": Image.fromarray(RGB[..., 2].astype(np.uint16) * 257), "cmyk.jpg": base.convert("CMYK"),
        "bit.png": base.convert("1"), "bit.bmp": base.convert("1"), "grey_key.png": grey_key,
        "rgb.png": base, "l.gif": base.convert("L"),
    }


def _write_modes(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, im in _mode_images().items():
        kw = {"transparency": im.info["transparency"]} if "transparency" in im.info else {}
        im.save(folder / name, **({"quality": 95} if name.endswith(".jpg") else {}), **kw)
        paths[name] = folder / name
    return paths


def test_every_mode_loads_alone(tmp_path):
    paths = _write_modes(tmp_path)
    assert Image.open(paths["la.png"]).mode == "LA" and Image.open(paths["i16.png"]).mode == "I;16"
    assert Image.open(paths["cmyk.jpg"]).mode == "CMYK" and Image.open(paths["bit.png"]).mode == "1"
    assert torch.equal(load_image(paths["la.png"]), torch.from_numpy(RGB[..., 0].copy())[None])
    assert torch.equal(load_image(paths["i16.png"]), torch.from_numpy(RGB[..., 2].copy())[None])
    assert torch.equal(load_image(paths["rgba.png"]), torch.from_numpy(RGB).permute(2, 0, 1))
    key = load_image(paths["grey_key.png"])  # the keyed grey value shows as white
    assert key.shape == (1, 20, 30) and key[0, 0, 0] == 255
    for name, path in paths.items():
        for channels in (None, 1, 3):
            for size in (None, (28, 28), (8, 40)):
                t = load_image(path, channels, size=size)
                want_c = channels or (1 if probe_image(path).grey else 3)
                assert t.dtype == torch.uint8 and t.shape == (want_c, *(size or (20, 30))), (name, channels, size)


def test_folder_of_mixed_modes_loads(tmp_path):
    for cls in ("a", "b"):
        _write_modes(tmp_path / cls)
    for in_memory in (True, False):
        for channels in (None, 1, 3):
            for skip_bad in (False, True):
                data = load_classification_data(str(tmp_path), channels=channels, img_size=16, in_memory=in_memory,
                                                skip_bad=skip_bad, val_fraction=0)
                assert len(data.train) == 20 and not data.skipped
                shapes = {tuple(data.train[i][0].shape) for i in range(len(data.train))}
                assert shapes == {(channels or 3, 16, 16)}


def test_extreme_aspect_ratios_resize_and_crop(tmp_path):
    wide = np.zeros((20, 20000, 3), np.uint8)
    wide[:, 9980:10020] = 200  # bright around the central 20 x 20 square (with room for the resampling filter)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    t = load_image(tmp_path / "wide.png", size=(28, 28))
    assert t.shape == (3, 28, 28) and (t == 200).all()
    assert probe_image(tmp_path / "wide.png").size == (20, 20000)
    tall = RNG.integers(0, 256, (20000, 20), dtype=np.uint8)
    Image.fromarray(tall).save(tmp_path / "tall.jpg")
    assert load_image(tmp_path / "tall.jpg", size=(28, 28)).shape == (1, 28, 28)  # JPEG draft path
    assert load_image(tmp_path / "tall.jpg", channels=3, size=(10, 300)).shape == (3, 10, 300)
    Image.fromarray(RGB[:1, :1]).save(tmp_path / "dot.png")
    assert (load_image(tmp_path / "dot.png", size=(28, 28)) == torch.from_numpy(RGB[0, 0]).view(3, 1, 1)).all()
    for name in ("wide", "tall"):
        (tmp_path / name).mkdir()
        for i in range(2):
            os.link(tmp_path / f"{name}.{'png' if name == 'wide' else 'jpg'}", tmp_path / name / f"{i}.png")
    data = load_classification_data(str(tmp_path), img_size=28, val_fraction=0, channels=3)  # 400k pixels: no bomb
    assert data.train.images.shape == (4, 3, 28, 28)


def test_pixel_limit_still_applies_to_long_strips(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((20, 20000), np.uint8)).save(tmp_path / "strip.png")
    monkeypatch.setattr(images_mod, "MAX_IMAGE_PIXELS", 399_999)
    with pytest.raises(DataError, match=r"strip.png: image is 20000x20 = 400000 pixels, over the decompression-bomb limit"):
        load_image(tmp_path / "strip.png", size=(28, 28))


# ----------------------------------------------------------------------------------- bad files


def _png_bytes(shape=(32, 32, 3)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _write_bad_files(folder: Path) -> dict[str, str]:
    """Bad files in ``folder``: name -> the rule its error states."""
    folder.mkdir(parents=True, exist_ok=True)
    png = bytearray(_png_bytes())
    png[png.index(b"IHDR") + 7] ^= 0xFF  # the width, so the header checksum fails
    (folder / "corrupt.png").write_bytes(bytes(png))
    (folder / "empty.png").write_bytes(b"")
    jpg = _jpeg_bytes()
    (folder / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "notes.jpg").write_text("a text file with an image name\n")
    gif = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8)).convert("P").save(gif, "GIF")
    (folder / "trunc.gif").write_bytes(gif.getvalue()[: len(gif.getvalue()) // 2])
    (folder / "broken.png").symlink_to(folder / "gone.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    return {"corrupt.png": "PNG file with a corrupt header", "empty.png": r"file is empty \(0 bytes\)",
            "trunc.jpg": "image data is truncated or corrupt", "notes.jpg": "not an image PIL can read",
            "trunc.gif": "truncated or corrupt", "broken.png": "symbolic link is broken or loops",
            "loop.png": "symbolic link is broken or loops"}


def test_bad_files_alone(tmp_path):
    for name, rule in _write_bad_files(tmp_path).items():
        for fn in (load_image, lambda p: load_image(p, channels=3, size=(28, 28))):
            with pytest.raises(DataError) as e:
                fn(tmp_path / name)
            assert one_line(e).startswith(f"{tmp_path / name}: ") and re.search(rule, str(e.value)), name
            assert "--skip-bad" in str(e.value) or "link" in str(e.value)
    with pytest.raises(DataError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_bad_files_in_a_folder_raise_or_are_skipped(tmp_path, make_folder):
    make_folder(tmp_path, {"a": 4, "b": 4}, size=(16, 16))
    bad = _write_bad_files(tmp_path / "a")
    with pytest.raises(DataError) as e:
        load_classification_data(str(tmp_path))
    assert one_line(e).startswith(str(tmp_path / "a"))
    data = load_classification_data(str(tmp_path), skip_bad=True, val_fraction=0)
    assert sorted(Path(p).name for p, _ in data.skipped) == sorted(bad) and len(data.train) == 8
    assert all("\n" not in reason for _, reason in data.skipped)


def test_empty_class_folder_lists_what_it_holds(tmp_path, make_folder):
    make_folder(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "photo.heic").write_bytes(b"x")
    (tmp_path / "c" / "readme.txt").write_text("x")
    with pytest.raises(DataError) as e:
        load_classification_data(str(tmp_path))
    assert one_line(e).startswith(f"{tmp_path / 'c'}: class folder holds no images")
    assert "2 other files, e.g. photo.heic, readme.txt" in str(e.value)


def test_a_folder_with_one_class(tmp_path, make_folder):
    make_folder(tmp_path / "one", {"cat": 3})
    with pytest.raises(DataError) as e:
        load_classification_data(str(tmp_path / "one"))
    assert one_line(e).startswith(f"{tmp_path / 'one'}: only one class folder (cat/)")
    make_folder(tmp_path / "up" / "images", {"cat": 2, "dog": 2})  # --data pointed one level too high
    with pytest.raises(DataError, match=rf"pass {tmp_path / 'up' / 'images'} instead"):
        load_classification_data(str(tmp_path / "up"))
    make_folder(tmp_path / "split" / "train", {"cat": 2})
    with pytest.raises(DataError, match="only one class folder"):
        load_classification_data(str(tmp_path / "split"))


def test_split_folders_without_class_folders(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        Image.fromarray(RGB).save(tmp_path / split / "x.png")
    with pytest.raises(DataError) as e:
        load_classification_data(str(tmp_path))
    assert one_line(e).startswith(f"{tmp_path / 'train'}: holds no class subfolders")


def test_symlinked_folders_are_followed_and_loops_refused(tmp_path, make_folder):
    make_folder(tmp_path / "store", {"a": 3, "b": 3}, size=(8, 8))
    data_dir = tmp_path / "data"
    (data_dir / "a").mkdir(parents=True)
    (data_dir / "a" / "more").symlink_to(tmp_path / "store" / "a")  # a linked subfolder counts
    (data_dir / "b").symlink_to(tmp_path / "store" / "b")  # so does a linked class folder
    data = load_classification_data(str(data_dir), val_fraction=0)
    assert data.classes == ["a", "b"] and len(data.train) == 6
    (data_dir / "a" / "loop").symlink_to(data_dir / "a")
    with pytest.raises(DataError) as e:
        load_classification_data(str(data_dir))
    assert one_line(e).startswith(f"{data_dir / 'a' / 'loop'}: symbolic link loop")


def test_every_val_image_bad_is_an_error_not_an_empty_split(tmp_path, make_folder):
    make_folder(tmp_path / "train", {"a": 2, "b": 2})
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match=rf"{tmp_path / 'val'}: no readable val images left after skipping bad files"):
        load_classification_data(str(tmp_path), skip_bad=True)
    (tmp_path / "val" / "a" / "x.png").write_bytes(_png_bytes((12, 10, 3))[:60])  # header fine, pixels cut
    with pytest.raises(DataError, match=rf"{tmp_path / 'val'}: no readable val images left"):
        load_classification_data(str(tmp_path), skip_bad=True, in_memory=True)


def test_unreadable_files_and_folders(tmp_path, make_folder, monkeypatch):
    make_folder(tmp_path, {"a": 2, "b": 2})
    write_idx(tmp_path / "x.idx", np.zeros(3, np.uint8))
    (tmp_path / "b" / "sub").mkdir()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:  # what chmod 0 does for a user who is not root
        m.setattr(images_mod.Image, "open", denied)
        m.setattr("builtins.open", denied)
        with pytest.raises(DataError, match=r"0.png: cannot read the image file \(permission denied\)"):
            load_image(tmp_path / "a" / "0.png")
        with pytest.raises(DataError, match=r"x.idx: cannot read the IDX file \(permission denied\)"):
            read_idx(tmp_path / "x.idx")
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda d: denied() if str(d).endswith("sub") else real_scandir(d))
    with pytest.raises(DataError, match=r"b/sub: cannot list the folder \(Permission denied\)"):
        load_classification_data(str(tmp_path))


def test_mismatched_train_and_test_idx_sizes(tmp_path, make_idx_set):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: test images are \(32, 32\) but the training"):
        load_classification_data("mnist", str(tmp_path))
