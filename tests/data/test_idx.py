import gzip

import numpy as np
import pytest

from cnnlab.data.idx import read_idx, write_idx
from cnnlab.errors import DataError


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, name, dtype):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    write_idx(tmp_path / name, arr)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable


def test_header_layout_is_big_endian(tmp_path):
    write_idx(tmp_path / "l.idx", np.array([1, 258], dtype=np.int16))
    raw = (tmp_path / "l.idx").read_bytes()
    assert raw == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])  # magic, dim 2, values 1 and 258 big-endian
    write_idx(tmp_path / "l.gz", np.zeros(3, np.uint8))
    assert gzip.decompress((tmp_path / "l.gz").read_bytes()) == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 0, 0])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.idx: IDX file not found"):
        read_idx(tmp_path / "nope.idx")


def test_bad_magic(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DataError, match="bad.idx: not an IDX file"):
        read_idx(tmp_path / "bad.idx")


@pytest.mark.parametrize("cut", [6, 30])
def test_truncated(tmp_path, cut):
    write_idx(tmp_path / "t.idx", np.zeros((4, 4, 4), np.uint8))
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes()[:cut])
    with pytest.raises(DataError, match="t.idx: IDX (header|data) is truncated"):
        read_idx(tmp_path / "t.idx")


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "t.idx.gz", np.arange(1000, dtype=np.int32))
    (tmp_path / "t.idx.gz").write_bytes((tmp_path / "t.idx.gz").read_bytes()[:40])
    with pytest.raises(DataError, match="t.idx.gz: gzip stream is truncated"):
        read_idx(tmp_path / "t.idx.gz")


def test_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype uint16"):
        write_idx(tmp_path / "u.idx", np.zeros(2, np.uint16))
