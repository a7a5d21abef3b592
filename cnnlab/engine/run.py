"""Run environment and run folders: seeding, threads, device, and ``runs/<task>-<model>-<time>``."""

from __future__ import annotations

import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.engine.checkpoint import atomic_write_json, read_json
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import CheckpointError, ConfigError


def setup_environment(cfg: TrainConfig) -> torch.device:
    """Seed every generator, set threads and determinism, pick the device."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return resolve_device(cfg.device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is fast here: a GPU, or a CPU with native bf16 units (AVX-512 BF16 or AMX)."""
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """--precision auto -> bf16 where it is native, else fp32 (bf16 emulated on AVX2 was ~9x slower than fp32)."""
    return ("bf16" if native_bf16(device) else "fp32") if precision == "auto" else precision


def precision_note(precision: str, device: torch.device) -> str | None:
    """A one-line warning when bf16 was asked for on a CPU without native bf16 (AVX-512 BF16 or AMX) units."""
    if precision != "bf16" or device.type != "cpu" or native_bf16(device):
        return None
    return ("note: --precision bf16 on a CPU without native bf16 units (AVX-512 BF16 / AMX): it may run slower "
            "than --precision fp32 here")


def new_run_dir(cfg: TrainConfig) -> Path:
    """The folder named by --out (new, empty, or a failed start without checkpoints), else runs/<task>-<model>-<time>."""
    if cfg.out:
        path = Path(cfg.out)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {path} is a file; choose a folder")
        if path.is_dir() and _has_checkpoints(path):
            raise ConfigError(f"--out {path} already holds a run; choose a new folder or continue it with --resume {path}")
        if path.is_dir() and any(p.name not in REUSABLE for p in path.iterdir()):
            raise ConfigError(f"--out {path} already holds other files; choose a new or empty folder")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{cfg.task}-{cfg.model}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{cfg.task}-{cfg.model}-{stamp}-{n}"
    try:
        (path / "plots").mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"--out {path}: a parent of it is a file; choose a folder") from None
    except OSError as e:
        raise ConfigError(f"--out {path}: cannot create it ({e.strerror}); choose a writable folder") from None
    return path


# what a start that failed before its first checkpoint may leave: such a folder can be reused
REUSABLE = {"config.json", "plots", "metrics.csv", "tensorboard", ".lock", ".ckpt", "checkpoints"}


def _has_checkpoints(path: Path) -> bool:
    ck = path / "checkpoints"
    return ck.is_dir() and any(ck.glob("*.safetensors"))


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_json(run_dir / "config.json", cfg.to_dict())


def read_config(run_dir: str | Path) -> TrainConfig:
    """The saved config of a run folder, as its task's Config (types and ranges checked)."""
    from cnnlab.engine.registry import get_task

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; pass the folder printed by `cnnlab train`")
    path = run_dir / "config.json"
    d = read_json(path)
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: must hold a JSON object of settings, found {type(d).__name__}; the file is corrupt")
    task = d.get("task", "classify")
    if not isinstance(task, str):
        raise CheckpointError(f"{path}: field 'task' must be a task name, found {task!r}")
    try:
        return get_task(task).Config.from_dict(d, source=str(path))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def versions() -> dict[str, str]:
    import torchvision

    return {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "numpy": np.__version__}
