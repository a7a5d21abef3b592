"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy.

An IDX file is: two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in C order (big-endian). Files may be gzip-compressed;
reading detects gzip by its magic bytes, writing compresses when the path ends in ``.gz``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from cnnlab.errors import DataError

# type code -> numpy dtype (big-endian where it matters), from the format description
_CODE_TO_DTYPE = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE = {("u", 1): 0x08, ("i", 1): 0x09, ("i", 2): 0x0B, ("i", 4): 0x0C, ("f", 4): 0x0D, ("f", 8): 0x0E}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip or plain): writable, native byte order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: IDX file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: gzip stream is truncated or corrupt ({e}); download the file again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _CODE_TO_DTYPE:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); expected 0000 08..0e <ndim>")
    dtype, ndim = _CODE_TO_DTYPE[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated ({len(raw)} bytes, need {header}); download the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    need = header + count * dtype.itemsize
    if len(raw) < need:
        raise DataError(f"{path}: IDX data is truncated ({len(raw)} of {need} bytes for shape {shape}); download the file again")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Store ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.ascontiguousarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _KIND_TO_CODE:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if array.ndim > 255:
        raise DataError(f"{path}: IDX stores at most 255 dimensions, got {array.ndim}")
    code = _KIND_TO_CODE[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(_CODE_TO_DTYPE[code], copy=False).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6)
    Path(path).write_bytes(payload)
