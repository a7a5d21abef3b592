"""Decoding image files into uint8 tensors, with one line of explanation when a file is bad.

Every PIL mode becomes either grey (1 channel) or RGB (3 channels):
EXIF orientation is applied; transparent pixels (LA, RGBA, palette with transparency) are
composited on a white background, the way the image shows in a browser; 16-bit and 32-bit
integer grey (I;16, I) is scaled from 0..65535 to 0..255; float grey (F) is read as 0..1 when
its maximum is at most 1, else clipped to 0..255; CMYK and YCbCr go through PIL's RGB
conversion; RGB to grey uses PIL's ITU-R 601-2 luma (L = 0.299 R + 0.587 G + 0.114 B).
An animated GIF gives its first frame.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlab.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
# Decompression-bomb limit: a tiny file that claims e.g. 50000 x 50000 pixels would take gigabytes
# to decode. 64 Mpixel (8192 x 8192) is far beyond any photo a CNN is trained on.
MAX_IMAGE_PIXELS: int = 64 * 1024 * 1024

_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class ImageInfo:
    """What the file header says, without decoding the pixels."""

    size: tuple[int, int]  # (H, W) as displayed, after EXIF orientation
    grey: bool  # decodes to one channel when channels=None
    format: str


def is_image_file(name: str) -> bool:
    """Whether a file name has one of IMAGE_EXTENSIONS (case-insensitive); other files are ignored."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Read only the header: displayed size, grey or colour. DataError for a file that is not a usable image."""
    with _open(path) as im:
        w, h = im.size
        if _orientation(im) in _ROTATED_ORIENTATIONS:
            w, h = h, w
        return ImageInfo(size=(h, w), grey=_is_grey(im), format=im.format or "")


def load_image(path: str | os.PathLike, channels: int | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file to uint8 (C, H, W).

    ``channels``: 1 -> grey, 3 -> RGB, None -> 1 if the image is grey else 3.
    ``size`` (H, W): resize so the image covers it (shorter side first), then center-crop; JPEGs
    are decoded at a reduced scale when that is enough (PIL draft mode), which is much faster.
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels={channels!r}: must be 1 (grey), 3 (RGB) or None (keep)")
    with _open(path) as im:
        grey = _is_grey(im) if channels is None else channels == 1
        orientation = _orientation(im)
        if size is not None and im.format == "JPEG":
            want = (size[0], size[1]) if orientation in _ROTATED_ORIENTATIONS else (size[1], size[0])  # (w, h) stored
            im.draft(im.mode, want)  # decode at 1/2, 1/4 or 1/8 scale, still covering `size`
        try:
            im.load()
            im = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
            arr = _to_array(im, grey, path)  # (H, W) or (H, W, 3) uint8
        except _DECODE_ERRORS as e:
            raise DataError(f"{path}: image data is truncated or corrupt ({e}); re-export the file or pass --skip-bad") from None
    if size is not None and arr.shape[:2] != tuple(size):
        arr = _cover_resize(arr, size)
    t = torch.from_numpy(np.require(arr, requirements=["C", "W"]))  # PIL arrays are read-only
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()  # (C, H, W)


def resize_center_crop(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (C, H, W) -> (C, *size): scale so the image covers ``size`` (bilinear, antialiased), then center-crop."""
    from torchvision.transforms.v2 import functional as TF

    h, w = img.shape[-2:]
    if (h, w) == tuple(size):
        return img
    scale = max(size[0] / h, size[1] / w)
    new = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
    img = TF.resize(img, list(new), antialias=True)
    return TF.center_crop(img, list(size))


def _open(path: str | os.PathLike) -> Image.Image:
    """Image.open with the checks that need no decoding: missing, empty, not an image, too many pixels."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: image file not found")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: file is empty (0 bytes); delete it or pass --skip-bad")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:
        raise DataError(f"{path}: image claims too many pixels (decompression bomb); limit is {MAX_IMAGE_PIXELS} pixels") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image PIL can read (expected one of {', '.join(IMAGE_EXTENSIONS)}); "
                        "delete it or pass --skip-bad") from None
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: image header is truncated or corrupt ({e}); re-export the file or pass --skip-bad") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise DataError(f"{path}: image is {w}x{h} = {w * h} pixels, over the decompression-bomb limit of "
                        f"{MAX_IMAGE_PIXELS} (cnnlab.data.images.MAX_IMAGE_PIXELS); downscale it or pass --skip-bad")
    if w == 0 or h == 0:
        im.close()
        raise DataError(f"{path}: image has zero width or height; delete it or pass --skip-bad")
    return im


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block must not make the image unreadable; treat as upright
        return None


def _is_grey(im: Image.Image) -> bool:
    if im.mode in _GREY_MODES:
        return True
    if im.mode in ("P", "PA"):
        pal = im.getpalette()
        if not pal:
            return False
        rgb = np.asarray(pal, dtype=np.int16).reshape(-1, 3)
        return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())
    return False


def _composite_on_white(arr: np.ndarray) -> np.ndarray:
    """(H, W, C+1) uint8 with alpha last -> (H, W, C): colour * a + 255 * (1 - a)."""
    a = arr[..., -1:].astype(np.float32) / 255.0
    out = arr[..., :-1].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_array(im: Image.Image, grey: bool, path) -> np.ndarray:
    """Decoded PIL image -> uint8 (H, W) if ``grey`` else (H, W, 3)."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        arr = _wide_grey(im)
        return arr if grey else np.repeat(arr[..., None], 3, axis=2)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    elif mode in ("La", "1"):
        im = im.convert("LA" if mode == "La" else "L")
        mode = im.mode
    elif mode == "RGBa":
        im = im.convert("RGBA")
        mode = im.mode
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, RGBX, HSV, ...
        except ValueError as e:
            raise DataError(f"{path}: PIL cannot convert image mode {mode} to RGB ({e}); re-save it as RGB") from None
        mode = "RGB"
    arr = np.asarray(im)
    if mode in ("LA", "RGBA"):
        arr = _composite_on_white(arr)
        mode = mode[:-1]
    if mode == "L":
        return arr if grey else np.repeat(arr[..., None], 3, axis=2)
    if grey:
        return np.asarray(Image.fromarray(arr, "RGB").convert("L"))
    return arr


def _wide_grey(im: Image.Image) -> np.ndarray:
    """16/32-bit integer or float grey -> uint8 (H, W)."""
    arr = np.asarray(im)
    if im.mode == "F":
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
        return np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
    arr = np.clip(arr.astype(np.int64), 0, 65535)
    return ((arr * 255 + 32767) // 65535).astype(np.uint8)  # rounded 0..65535 -> 0..255


def _cover_resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (H, W[, 3]) uint8 so it covers ``size`` then center-crop, in one PIL resample (antialiased bilinear)."""
    h, w = arr.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w)
    ch, cw = th / scale, tw / scale  # the source box that maps onto the target
    top, left = (h - ch) / 2, (w - cw) / 2
    im = Image.fromarray(arr)
    out = im.resize((tw, th), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    return np.asarray(out)
