"""Decoding image files into uint8 tensors, with one line of explanation when a file is bad.

Every PIL mode becomes either grey (1 channel) or RGB (3 channels):
EXIF orientation is applied; transparent pixels (LA, RGBA, palette or colour-key transparency)
are composited on a white background, the way the image shows in a browser; 16-bit and 32-bit
integer grey (I;16, I) is scaled from 0..65535 to 0..255; float grey (F) is read as 0..1 when
its maximum is at most 1, else clipped to 0..255; CMYK and YCbCr go through PIL's RGB
conversion; RGB to grey is ``to_grey``, PIL's ITU-R 601-2 luma (L = 0.299 R + 0.587 G + 0.114 B),
the one grey conversion of cnnlab. An animated GIF gives its first frame.
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

from cnnlab.errors import ConfigError, DataError, ShapeError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")  # TIFF: scans, microscopy
# Decompression-bomb limit: a tiny file that claims e.g. 50000 x 50000 pixels would take gigabytes
# to decode. 64 Mpixel (8192 x 8192) is far beyond any photo a CNN is trained on.
MAX_IMAGE_PIXELS: int = 64 * 1024 * 1024

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, PIL's RGB -> "L"
_GREY_FIXED = (19595, 38470, 7471)  # PIL's fixed-point weights (sum 65536): uint8 results equal convert("L")
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# what PIL's decoders raise for a bad file (KeyError: an unknown TIFF/EXIF tag or raw mode)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError)
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
        try:
            grey = _is_grey(im)  # a palette image may need its data read for this
        except _DECODE_ERRORS as e:
            raise _corrupt(path, e) from None
        return ImageInfo(size=(h, w), grey=grey, format=im.format or "")


def load_image(path: str | os.PathLike, channels: int | None = None, size: tuple[int, int] | None = None,
               exif: bool = True) -> torch.Tensor:
    """Decode an image file to uint8 (C, H, W), turned upright by its EXIF orientation (``exif`` False: the
    pixels as stored, which is how pycocotools / torchvision users and many labelling tools see them).

    ``channels``: 1 -> grey, 3 -> RGB, None -> 1 if the image is grey else 3.
    ``size`` (H, W): resize so the image covers it (shorter side first), then center-crop; JPEGs
    are decoded at a reduced scale when that is enough (PIL draft mode), which is much faster.
    Any aspect ratio works (a 20000 x 20 strip gives its central 20 x 20 square, scaled).
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels={channels!r}: must be 1 (grey), 3 (RGB) or None (keep)")
    if size is not None and (not isinstance(size, (tuple, list)) or len(size) != 2 or min(size) < 1):
        raise ConfigError(f"size={size!r}: must be (height, width) in pixels, both at least 1")
    with _open(path) as im:
        try:  # PIL decodes here: a bad file fails in this block and nowhere else
            grey = _is_grey(im) if channels is None else channels == 1
            orientation = _orientation(im) if exif else None
            if size is not None and im.format == "JPEG":
                want = (size[0], size[1]) if orientation in _ROTATED_ORIENTATIONS else (size[1], size[0])  # (w, h) stored
                im.draft(im.mode, want)  # decode at 1/2, 1/4 or 1/8 scale, still covering `size`
            im.load()
            im = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
            im = _standard_mode(im, path)  # L, LA, RGB, RGBA, or wide grey (I..., F)
        except _DECODE_ERRORS as e:
            raise _corrupt(path, e) from None
    arr = _to_array(im)  # (H, W) or (H, W, 3) uint8
    if grey and arr.ndim == 3:
        arr = to_grey(torch.from_numpy(np.require(arr, requirements=["C", "W"])).permute(2, 0, 1))[0].numpy()
    if size is not None and arr.shape[:2] != tuple(size):
        arr = _cover_resize(arr, size)
    if not grey and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)  # grey -> RGB by repetition
    t = torch.from_numpy(np.require(arr, requirements=["C", "W"]))  # PIL arrays are read-only
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()  # (C, H, W)


def load_annotated_image(path: str | os.PathLike, width: int | None, height: int | None, where: str) -> torch.Tensor:
    """Decode an RGB image whose boxes / polygons / keypoints are in ``width`` x ``height`` pixels: uint8 (3, H, W)
    in the orientation the annotation was made on.

    An EXIF-rotated photo (a phone's) is shown upright, but tools differ in what they label: CVAT and browsers
    show it upright, pycocotools / torchvision users and many exporters see the stored pixels. The annotated
    size tells which: the upright image when it matches, else the stored pixels when they match. A size that
    matches neither but has the same aspect ratio (images resized after labelling) keeps the upright image:
    coordinates scale with it. Any other size is a DataError (scaled boxes would land in the wrong place).
    """
    img = load_image(path, channels=3)
    if not width or not height:
        return img
    h, w = (int(v) for v in img.shape[-2:])
    if (h, w) == (int(height), int(width)):
        return img
    if (h, w) == (int(width), int(height)):  # turned by EXIF: were the stored pixels annotated?
        stored = load_image(path, channels=3, exif=False)
        if tuple(stored.shape[-2:]) == (int(height), int(width)):
            return stored
    if abs(w * int(height) - h * int(width)) <= max(w, h, int(width), int(height)):  # same aspect (1 px rounding)
        return img
    raise DataError(f"{where}: says {width}x{height} but {path} is {w}x{h} pixels (another aspect ratio); the "
                    "annotations would land in the wrong place: fix width/height or the image, or pass --skip-bad")


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """RGB -> grey luma with channels at dim -3: (..., 3, H, W) -> (..., 1, H, W); 1 channel is returned as is.

    uint8 gives exactly PIL's ``convert("L")`` (fixed point, rounded); float gives
    0.299 R + 0.587 G + 0.114 B in the input's units. The one grey conversion of cnnlab.
    """
    if x.ndim < 3 or x.shape[-3] not in (1, 3):
        raise ShapeError(f"to_grey wants images (..., 1 or 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    if x.dtype == torch.uint8:
        y = r.to(torch.int32).mul_(_GREY_FIXED[0])
        y.add_(g.to(torch.int32).mul_(_GREY_FIXED[1])).add_(b.to(torch.int32).mul_(_GREY_FIXED[2])).add_(1 << 15)
        return y.bitwise_right_shift_(16).to(torch.uint8).unsqueeze(-3)
    if not x.is_floating_point():
        raise ShapeError(f"to_grey wants uint8 or float images, got {x.dtype}")
    return (r * GREY_WEIGHTS[0] + g * GREY_WEIGHTS[1] + b * GREY_WEIGHTS[2]).unsqueeze(-3)


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
        if os.path.islink(path):
            raise DataError(f"{path}: symbolic link is broken or loops (points to {os.readlink(path)}); "
                            "fix or delete the link")
        what = "is a folder, not an image file" if os.path.isdir(path) else "image file not found"
        raise DataError(f"{path}: {what}")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: file is empty (0 bytes); delete it or pass --skip-bad")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: image claims too many pixels, a decompression bomb ({_one_line(e)}); downscale it or pass "
                        "--skip-bad") from None
    except UnidentifiedImageError:
        kind = _sniff_format(path)
        if kind:
            raise DataError(f"{path}: {kind} file with a corrupt header (PIL cannot read it); re-export the file or "
                            "pass --skip-bad") from None
        raise DataError(f"{path}: not an image PIL can read (expected one of {', '.join(IMAGE_EXTENSIONS)}); "
                        "delete it or pass --skip-bad") from None
    except PermissionError:
        raise DataError(f"{path}: cannot read the image file (permission denied); fix its permissions or pass --skip-bad") from None
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: image header is truncated or corrupt ({_one_line(e)}); re-export the file or pass "
                        "--skip-bad") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise DataError(f"{path}: image is {w}x{h} = {w * h} pixels, over the decompression-bomb limit of "
                        f"{MAX_IMAGE_PIXELS} (cnnlab.data.images.MAX_IMAGE_PIXELS); downscale it or pass --skip-bad")
    if w == 0 or h == 0:
        im.close()
        raise DataError(f"{path}: image has zero width or height; delete it or pass --skip-bad")
    return im


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _sniff_format(path: str) -> str | None:
    """The image format a file's first bytes claim (PNG, JPEG, GIF, BMP, TIFF, WebP), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _corrupt(path, e: Exception) -> DataError:
    return DataError(f"{path}: image data is truncated or corrupt ({_one_line(e)}); re-export the file or pass --skip-bad")


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


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


def _standard_mode(im: Image.Image, path) -> Image.Image:
    """Any PIL mode -> L, LA, RGB, RGBA or a wide grey mode (I, I;16..., F), with PIL's conversions only."""
    mode = im.mode
    if mode.startswith("I") or mode == "F" or mode in ("LA", "RGBA"):
        return im
    if mode in ("P", "PA"):
        return im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    if mode in ("1", "L", "RGB"):
        if im.info.get("transparency") is not None:  # a colour key (PNG tRNS): that value is see-through
            return im.convert("RGBA" if mode == "RGB" else "LA")
        return im.convert("L") if mode == "1" else im
    if mode in ("La", "RGBa"):  # premultiplied alpha
        return im.convert(mode[:-1] + "A")
    try:
        return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    except ValueError as e:
        raise DataError(f"{path}: PIL cannot convert image mode {mode} to RGB ({e}); re-save it as RGB") from None


def _to_array(im: Image.Image) -> np.ndarray:
    """A PIL image in a mode from _standard_mode -> uint8 (H, W) (grey) or (H, W, 3); alpha composited on white."""
    if im.mode.startswith("I") or im.mode == "F":
        return _wide_grey(im)
    arr = np.asarray(im)
    if im.mode in ("LA", "RGBA"):
        arr = _composite_on_white(arr)  # (H, W, 1) or (H, W, 3)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
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
