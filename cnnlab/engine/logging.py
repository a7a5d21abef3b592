"""Run-folder logging: metrics.csv (one row per epoch), TensorBoard when installed, summary.json."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cnnlab.engine.checkpoint import atomic_write_bytes, atomic_write_json
from cnnlab.errors import CheckpointError



class RunLogger:
    """Writes the per-epoch log of a run folder; a no-op on DDP ranks other than 0."""

    def __init__(self, run_dir: Path | None, tensorboard: bool = True):
        self.run_dir = run_dir
        self.rows: list[dict[str, Any]] = []
        self.tb = None
        if run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def resume_from(self, epochs_done: int) -> None:
        """Keep the rows of epochs already done (a resumed run rewrites later ones)."""
        if self.run_dir is None or not (self.run_dir / "metrics.csv").is_file():
            return
        path = self.run_dir / "metrics.csv"
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            self.rows = [{k: _num(v) for k, v in r.items() if k is not None} for r in rows if int(r["epoch"]) <= epochs_done]
        except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
            raise CheckpointError(f"{path} is not a cnnlab metrics file (a row without a whole 'epoch'); "
                                  "restore it or delete it to start the log afresh") from None

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.run_dir is None:
            return
        fields = list(dict.fromkeys(k for r in self.rows for k in r))  # the union of logged keys, first seen first
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
        atomic_write_bytes(self.run_dir / "metrics.csv", buf.getvalue().encode())
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / "summary.json", summary)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _num(v: str) -> Any:
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v else f
