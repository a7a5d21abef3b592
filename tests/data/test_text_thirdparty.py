"""charlm text files as editors on other systems save them: BOM, CRLF, CR, UTF-16, Latin-1."""

from __future__ import annotations

import pytest

from cnnlab.data.text import read_text
from cnnlab.errors import DataError

TEXT = "Première ligne, café.\nZweite Zeile: Grüße!\n"


@pytest.mark.parametrize("raw", [
    TEXT.encode(),
    b"\xef\xbb\xbf" + TEXT.encode(),  # UTF-8 with BOM (Windows Notepad "UTF-8 with BOM")
    TEXT.replace("\n", "\r\n").encode(),  # Windows line ends
    TEXT.replace("\n", "\r").encode(),  # old Mac line ends (bug fixed: '\r' stayed a character of the vocabulary)
    TEXT.encode("utf-16"),  # Notepad "Unicode" (bug fixed: refused as binary for its NUL bytes)
    b"\xfe\xff" + TEXT.replace("\n", "\r\n").encode("utf-16-be"),  # big-endian with its BOM, CRLF
])
def test_every_common_encoding_reads_as_the_same_text(tmp_path, raw):
    p = tmp_path / "t.txt"
    p.write_bytes(raw)
    assert read_text(p) == TEXT


def test_latin1_is_refused_with_the_conversion_command(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(TEXT.encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 5: b'\\xe8'\).*iconv -f cp1252 -t utf-8 .*latin.txt"):
        read_text(p)
