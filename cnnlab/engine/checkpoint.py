"""Checkpoints that never unpickle: weights in safetensors, metadata in JSON, every write atomic.

A run folder holds ``checkpoints/{last,best}.safetensors`` (the model's state dict as-is, loadable
by ``create_model(name, weights=FILE)``) with a ``.json`` beside each (config, class names,
normalization, metrics, versions), plus ``checkpoints/train_state.{safetensors,json}`` with the
optimizer, schedule, EMA and RNG state needed to resume exactly. Nested state (an optimizer's
state dict, say) is split into its tensors (safetensors) and a JSON skeleton that points at them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cnnlab.errors import CheckpointError

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # run files follow the user's umask (mkstemp alone gives 0600)


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot write in {path.parent} ({_first_line(e)}); choose a writable --out") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write {path} ({_first_line(e)}); free disk space or choose another --out") from None
        raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot write in {path.parent} ({_first_line(e)}); choose a writable --out") from None
    os.close(fd)
    try:
        # safetensors refuses shared or non-contiguous storage: give it plain copies.
        plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        try:
            save_file(plain, tmp, metadata=metadata)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot write {path} ({_first_line(e)}); free disk space or choose another --out") from None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"cannot store {type(o).__name__} in JSON")


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a cnnlab run folder?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); the file is corrupt") from None


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; is this a cnnlab run folder?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); the checkpoint is corrupt") from None


# --------------------------------------------------------------------------- nested state
def flatten_state(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split nested dicts/lists/tuples into a JSON skeleton and a flat dict of tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any, key: str) -> Any:
        if isinstance(o, torch.Tensor):
            tensors[key] = o
            return {_TENSOR: key}
        if isinstance(o, dict):
            for k in o:
                if not isinstance(k, (str, int)):
                    raise TypeError(f"state key {k!r} at {key!r} is neither str nor int")
            # JSON keys are strings; remember which were ints (optimizer state is keyed by int).
            return {"__dict__": [[k, walk(v, f"{key}.{k}")] for k, v in o.items()]}
        if isinstance(o, tuple):
            return {_TUPLE: [walk(v, f"{key}.{i}") for i, v in enumerate(o)]}
        if isinstance(o, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(o)]
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise TypeError(f"cannot checkpoint a {type(o).__name__} at {key!r}")

    return walk(obj, prefix), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of flatten_state."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _TUPLE in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton[_TUPLE])
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def save_state(path_stem: str | Path, state: dict[str, Any]) -> None:
    """Save nested training state as ``<stem>.safetensors`` + ``<stem>.json`` (tensors first, JSON last)."""
    stem = Path(path_stem)
    skeleton, tensors = flatten_state(state, "s")
    atomic_save_tensors(stem.with_suffix(".safetensors"), tensors)
    atomic_write_json(stem.with_suffix(".json"), skeleton)


def load_state(path_stem: str | Path) -> dict[str, Any]:
    stem = Path(path_stem)
    skeleton = read_json(stem.with_suffix(".json"))
    tensors = load_tensors(stem.with_suffix(".safetensors"))
    try:
        return unflatten_state(skeleton, tensors)
    except KeyError as e:
        raise CheckpointError(f"{stem}.json refers to tensor {e} missing from {stem}.safetensors; the state is corrupt") from None


# --------------------------------------------------------------------------- model checkpoints
def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the bare model (unwraps DDP and torch.compile)."""
    model = unwrap_model(model)
    return {k: v for k, v in model.state_dict().items()}


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module  # DDP
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # torch.compile
        else:
            return model


def save_model_checkpoint(path: str | Path, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """``path`` ends in .safetensors; the metadata goes to the .json beside it (written second)."""
    path = Path(path)
    atomic_save_tensors(path, weights, metadata={"format": "cnnlab", "model": str(meta.get("model", ""))})
    atomic_write_json(path.with_suffix(".json"), meta)


def load_weights_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """load_state_dict with one line naming the file when the tensors do not fit the model."""
    own = model.state_dict()
    for k, v in weights.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(v.shape)} but the model expects "
                                  f"{tuple(own[k].shape)}; the checkpoint does not belong to this run's model")
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        what = f"lacks {missing[0]!r}" if missing else f"has unexpected {unexpected[0]!r}"
        raise CheckpointError(f"{path} {what}; the checkpoint does not belong to this run's model")
    model.load_state_dict(weights, strict=False)


def find_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; pass the folder printed by `cnnlab train`")
    ckpt = run_dir / "checkpoints" / f"{which}.safetensors"
    if not ckpt.is_file():
        other = run_dir / "checkpoints" / "last.safetensors"
        if which == "best" and other.is_file():
            return other
        raise CheckpointError(f"{ckpt} is missing; the run did not finish an epoch (resume it with `cnnlab train ... --resume {run_dir}`)")
    return ckpt


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """Rebuild the model of a run folder (any task) with its weights: (model in eval mode, metadata)."""
    from cnnlab.engine.evaluate import load_run as _load_run

    return _load_run(run_dir, which, device)


# --------------------------------------------------------------------------- generations and the run lock
GENERATIONS = ".ckpt"  # run_dir/.ckpt/gen-<tag>/ holds one complete set; run_dir/checkpoints links to the newest
CARRY = ("best.safetensors", "best.json", "snapshot-epoch*")  # files a generation keeps from the previous one


class CheckpointStore:
    """Checkpoint generations committed by one rename.

    Every save writes a whole set (training state, last, best, snapshots) into a fresh folder
    ``.ckpt/gen-<tag>.tmp``, hard-links the files it did not rewrite (best, snapshots) from the
    current generation, renames the folder into place and then switches the ``checkpoints``
    symlink to it with one ``os.replace``: a crash at any point leaves ``checkpoints/`` on one
    complete, consistent generation. Unfinished and superseded generations are removed.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / GENERATIONS
        self.link = self.run_dir / "checkpoints"

    def current(self) -> Path | None:
        return self.link if self.link.is_dir() else None

    def cleanup(self) -> None:
        """Remove unfinished (.tmp) and superseded generations; relink a generation the last crash left unlinked."""
        import shutil

        if not self.root.is_dir():
            return
        if not self.link.exists() and not self.link.is_symlink():
            done = sorted(p for p in self.root.glob("gen-*") if p.is_dir() and not p.name.endswith(".tmp"))
            if done:
                self._switch(done[-1])
        keep = self.link.resolve() if self.link.exists() else None
        for p in self.root.iterdir():
            if p.resolve() != keep:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for p in self.run_dir.glob(".checkpoints.*"):
            p.unlink(missing_ok=True)

    def write(self, tag: str, save) -> Path:
        """Call ``save(folder)`` to fill a new generation, then commit it; returns the new generation's folder."""
        import shutil

        tmp = self.root / f"gen-{tag}.tmp"
        final = self.root / f"gen-{tag}"
        for p in (tmp, final):
            if p.exists() and (not self.link.exists() or p.resolve() != self.link.resolve()):
                shutil.rmtree(p)
        try:
            tmp.mkdir(parents=True)
        except OSError as e:
            raise CheckpointError(f"cannot write in {self.root} ({_first_line(e)}); choose a writable --out") from None
        try:
            save(tmp)
            old = self.current()
            if old is not None:
                for pattern in CARRY:
                    for f in old.glob(pattern):
                        if not (tmp / f.name).exists():
                            _link_or_copy(f, tmp / f.name)
            _fsync_dir(tmp)
            if final.exists():  # the same tag again (a re-save of the same step): keep the current one's name free
                final = self.root / f"gen-{tag}-{os.getpid()}-{len(list(self.root.iterdir()))}"
            os.replace(tmp, final)
            self._switch(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for p in self.root.iterdir():  # superseded generations
            if p != final and not p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
        return final

    def _switch(self, target: Path) -> None:
        if self.link.is_dir() and not self.link.is_symlink():  # a run folder from before generations: move it in
            legacy = self.root / "gen-legacy"
            self.root.mkdir(exist_ok=True)
            os.replace(self.link, legacy)
            if target == self.link:
                target = legacy
        new = self.run_dir / f".checkpoints.{os.getpid()}"
        new.unlink(missing_ok=True)
        os.symlink(os.path.relpath(target, self.run_dir), new)
        os.replace(new, self.link)  # the commit
        _fsync_dir(self.run_dir)


def _link_or_copy(src: Path, dst: Path) -> None:
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fsync_dir(path: Path) -> None:
    """Best-effort fsync of a folder, so a rename inside it survives a power cut (some filesystems refuse it)."""
    import contextlib

    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RunLock:
    """An exclusive lock on a run folder for the life of a training: a second writer gets one line."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / ".lock"
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise CheckpointError(f"cannot write in {self.path.parent} ({_first_line(e)}); choose a writable --out") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            holder = self.path.read_text().strip() if self.path.is_file() else "?"
            raise CheckpointError(f"run folder {self.path.parent} is in use by another cnnlab process (pid {holder or '?'}); "
                                  "wait for it to finish or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
