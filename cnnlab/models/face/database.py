"""The identity database of `cnnlab faces`: names and their encodings, never images.

A database is a folder holding ``db.json`` (format, the run whose encoder made the encodings,
one name and source file name per encoding, the tensor file's name) and one
``encodings-<n>.safetensors`` (M, D). ``db.json`` is the commit point: a new tensor file is
written under a new name first, then db.json is replaced atomically, then the old tensor file is
removed, so an interrupted write leaves the previous database intact. A database that is
missing or does not read back whole raises one line and is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.errors import DataError

FORMAT = "cnnlab-face-db-1"


@dataclass
class FaceDB:
    path: Path
    run: str
    embed_dim: int
    names: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    encodings: torch.Tensor | None = None  # (M, D)
    generation: int = 0

    @classmethod
    def new(cls, path: str | Path, run: str, embed_dim: int) -> "FaceDB":
        return cls(Path(path), run, embed_dim, encodings=torch.zeros(0, embed_dim))

    @classmethod
    def load(cls, path: str | Path) -> "FaceDB":
        path = Path(path)
        meta_path = path / "db.json"
        if not meta_path.is_file():
            raise DataError(f"face database {path} not found (no {meta_path.name}); create it with "
                            "`cnnlab faces enroll RUN_DIR --db DB --name NAME photo.jpg`")
        try:
            meta = ckpt.read_json(meta_path)
        except Exception:  # CheckpointError: not JSON
            raise DataError(f"face database {path} is corrupt ({meta_path.name} is not valid JSON); "
                            "restore it or enroll into a new --db") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("names"), list):
            raise DataError(f"face database {path} is corrupt or not a cnnlab face database; restore it or enroll "
                            "into a new --db")
        try:
            tensors = ckpt.load_tensors(path / str(meta["file"]))
            enc = tensors["encodings"]
            db = cls(path, str(meta["run"]), int(meta["embed_dim"]), list(map(str, meta["names"])),
                     list(map(str, meta.get("sources", [""] * len(meta["names"])))), enc.float(),
                     int(meta.get("generation", 0)))
        except Exception:
            raise DataError(f"face database {path} is corrupt (its encodings do not read back); restore it or "
                            "enroll into a new --db") from None
        if enc.ndim != 2 or enc.shape[0] != len(db.names) or enc.shape[1] != db.embed_dim:
            raise DataError(f"face database {path} is corrupt ({enc.shape[0]} encodings for {len(db.names)} names); "
                            "restore it or enroll into a new --db")
        return db

    def add(self, name: str, encodings: torch.Tensor, sources: list[str]) -> None:
        self.encodings = torch.cat([self.encodings, encodings.float().cpu()])
        self.names += [name] * len(encodings)
        self.sources += [Path(s).name for s in sources]

    def save(self) -> None:
        old = self.path / f"encodings-{self.generation}.safetensors"
        self.generation += 1
        file = f"encodings-{self.generation}.safetensors"
        ckpt.atomic_save_tensors(self.path / file, {"encodings": self.encodings})
        ckpt.atomic_write_json(self.path / "db.json", {
            "format": FORMAT, "run": self.run, "embed_dim": self.embed_dim, "names": self.names,
            "sources": self.sources, "file": file, "generation": self.generation, "count": len(self.names)})
        if old.exists():
            old.unlink()

    def identities(self) -> list[str]:
        return sorted(set(self.names))

    def distances_to(self, encoding: torch.Tensor, distance) -> dict[str, float]:
        """Each name's smallest distance to ``encoding`` (D,); ``distance(a (1, D), b (M, D)) -> (1, M)``."""
        if not self.names:
            return {}
        d = distance(encoding[None].float(), self.encodings)[0]  # (M,)
        out: dict[str, float] = {}
        for name, v in zip(self.names, d.tolist()):
            out[name] = min(v, out.get(name, float("inf")))
        return out
