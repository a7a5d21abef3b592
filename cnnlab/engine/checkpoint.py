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


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # safetensors refuses shared or non-contiguous storage: give it plain copies.
        plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(plain, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
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
    """Rebuild the model of a run folder with its weights; returns (model in eval mode, metadata dict)."""
    from cnnlab.models import create_model

    ckpt = find_checkpoint(run_dir, which)
    meta = read_json(ckpt.with_suffix(".json"))
    try:
        model = create_model(meta["model"], num_classes=meta["num_classes"], in_chans=meta["in_chans"], **meta.get("model_kwargs", {}))
    except KeyError as e:
        raise CheckpointError(f"{ckpt.with_suffix('.json')} lacks {e}; the metadata is corrupt") from None
    weights = load_tensors(ckpt)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{ckpt} does not fit model {meta['model']!r}: {first}") from None
    return model.to(device).eval(), meta
