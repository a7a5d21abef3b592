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


def precision_note(precision: str, device: torch.device) -> str | None:
    """A one-line warning when bf16 was asked for on a CPU without native bf16 (AVX-512 BF16 or AMX) units."""
    if precision != "bf16" or device.type != "cpu":
        return None
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    if native:
        return None
    return ("note: --precision bf16 on a CPU without native bf16 units (AVX-512 BF16 / AMX): it may run slower "
            "than --precision fp32 here")


def new_run_dir(cfg: TrainConfig) -> Path:
    """The folder named by --out (which must be new or empty), else runs/<task>-<model>-<time>."""
    if cfg.out:
        path = Path(cfg.out)
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"--out {path} already holds files; choose a new folder or continue it with --resume {path}")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{cfg.task}-{cfg.model}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{cfg.task}-{cfg.model}-{stamp}-{n}"
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    (path / "plots").mkdir(exist_ok=True)
    return path


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_json(run_dir / "config.json", cfg.to_dict())


def read_config(run_dir: str | Path) -> TrainConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist")
    return TrainConfig.from_dict(read_json(run_dir / "config.json"))


def versions() -> dict[str, str]:
    import torchvision

    return {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "numpy": np.__version__}
