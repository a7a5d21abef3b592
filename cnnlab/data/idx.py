"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy.

An IDX file is: two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in C order (big-endian). Files may be gzip-compressed;
reading detects gzip by its magic bytes, writing compresses when the path ends in ``.gz``.

Reading trusts nothing: the header is read first and the data is then read (streamed out of
gzip in chunks) up to exactly the size the header declares, so a small ``.gz`` hiding
gigabytes of padding (a decompression bomb) is refused after reading a few bytes past the
data, and a header that claims more than the file could hold is refused before any reading.
This is the one IDX reader of cnnlab (``cnnlab.scratch.data`` calls it too).
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
# The largest data an IDX file may declare (all of Fashion-MNIST's training images are 47 MB).
MAX_IDX_BYTES: int = 8 * 1024**3
# deflate expands at most about 1032:1, so a .gz of N bytes cannot hold more than this many times N
_GZIP_MAX_RATIO = 1032
_CHUNK = 4 * 1024 * 1024  # bytes decompressed per read
_TRAILING_PROBE = 1024 * 1024  # at most this much past the declared data is read to report how much there is
_GZIP_ERRORS = (EOFError, OSError, zlib.error)
_REDOWNLOAD = "download the file again"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip or plain): writable, native byte order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: IDX file not found")
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            try:
                return _read_stream(path, stream, gz, os.fstat(raw.fileno()).st_size)
            except _GZIP_ERRORS as e:
                if not gz:
                    raise
                raise DataError(f"{path}: gzip stream is truncated or corrupt ({e}); {_REDOWNLOAD}") from None
    except PermissionError:
        raise DataError(f"{path}: cannot read the IDX file (permission denied); fix its permissions") from None


def _read_stream(path: Path, stream, gz: bool, file_size: int) -> np.ndarray:
    """Header, then exactly the declared data, then a check that nothing follows."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _CODE_TO_DTYPE:
        raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'}); "
                        "expected 0000 08..0e <ndim>")
    dtype, ndim = _CODE_TO_DTYPE[magic[2]], magic[3]
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated ({4 + len(dims)} bytes, need {header}); {_REDOWNLOAD}")
    shape = struct.unpack(f">{ndim}I", dims)
    count = int(np.prod(shape, dtype=object))  # exact: dimensions up to 2**32 - 1 each overflow int64
    nbytes = count * dtype.itemsize
    what = f"{tuple(shape)} {dtype.name}"
    if not gz and file_size < header + nbytes:
        raise DataError(f"{path}: IDX data is truncated ({file_size - header} of {nbytes} bytes for {what}); {_REDOWNLOAD}")
    if not gz and file_size > header + nbytes:
        raise DataError(f"{path}: holds {file_size - header - nbytes} bytes after the declared {what} data; "
                        f"the file is corrupt, {_REDOWNLOAD}")
    if nbytes > MAX_IDX_BYTES:
        raise DataError(f"{path}: header declares {what} = {nbytes} bytes, over the limit of {MAX_IDX_BYTES} "
                        "(cnnlab.data.idx.MAX_IDX_BYTES); the header is corrupt or the file is not a dataset")
    if gz and nbytes > _GZIP_MAX_RATIO * file_size + 1024:
        raise DataError(f"{path}: header declares {what} = {nbytes} bytes, more than a {file_size}-byte .gz can "
                        f"hold; the header is corrupt, {_REDOWNLOAD}")
    out = np.empty(shape, dtype=dtype.newbyteorder("="))  # filled with the file's big-endian bytes, swapped below
    view = memoryview(out.reshape(-1).view(np.uint8)) if count else memoryview(b"")
    got = 0
    while got < nbytes:
        n = stream.readinto(view[got:got + _CHUNK]) if not gz else _read_into(stream, view[got:got + _CHUNK])
        if not n:
            raise DataError(f"{path}: IDX data is truncated ({got} of {nbytes} bytes for {what}); {_REDOWNLOAD}")
        got += n
    extra = _count_trailing(stream)
    if extra:
        amount = f"more than {_TRAILING_PROBE}" if extra > _TRAILING_PROBE else str(extra)
        packed = " (decompressed)" if gz else ""
        raise DataError(f"{path}: holds {amount} bytes{packed} after the declared {what} data; "
                        f"the file is corrupt or padded, {_REDOWNLOAD}")
    if dtype.byteorder == ">" and np.little_endian:
        out.byteswap(inplace=True)
    return out


def _read_into(stream: gzip.GzipFile, buf: memoryview) -> int:
    """GzipFile.read into ``buf``: decompresses at most len(buf) bytes."""
    data = stream.read(len(buf))
    buf[:len(data)] = data
    return len(data)


def _count_trailing(stream) -> int:
    """Bytes left in ``stream``, counted up to a little over _TRAILING_PROBE (never the whole of a bomb)."""
    n = 0
    while n <= _TRAILING_PROBE:
        data = stream.read(64 * 1024)
        if not data:
            break
        n += len(data)
    return n


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
