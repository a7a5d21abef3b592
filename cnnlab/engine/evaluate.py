"""Using a finished run of any task: load it, evaluate it, predict with it.

Everything reads the run folder: ``config.json`` names the task, the checkpoint's ``.json``
holds what the task needs (classes, normalization, keypoint names, ...), so evaluation sees
exactly what training saw. The checkpoint used and the split evaluated are always named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.run import read_config
from cnnlab.errors import CheckpointError, CnnlabError, DataError
from cnnlab.engine.registry import get_task

META_KEYS = ("model",)


def load_task(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """(task, model in eval mode, checkpoint metadata, checkpoint path) of a run folder."""
    run_dir = Path(run_dir)
    path = ckpt.find_checkpoint(run_dir, which)
    meta = ckpt.read_json(path.with_suffix(".json"))
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.with_suffix('.json')}: must hold a JSON object, found {type(meta).__name__}; the metadata is corrupt")
    for key in META_KEYS:
        if key not in meta:
            raise CheckpointError(f"{path.with_suffix('.json')} lacks {key!r}; the metadata is corrupt")
    task_cls = get_task(meta.get("task", "classify"))
    if (run_dir / "config.json").exists():
        cfg = read_config(run_dir)
    else:  # a checkpoint copied on its own: its metadata holds the config it was trained with
        try:
            cfg = task_cls.Config.from_dict(dict(meta.get("config") or {}, task=task_cls.name), source=str(path.with_suffix(".json")))
        except CnnlabError as e:
            raise CheckpointError(str(e)) from None
    task = task_cls(cfg, meta)
    for key in getattr(task_cls, "required_meta", ()):
        if key not in meta:
            raise CheckpointError(f"{path.with_suffix('.json')} lacks {key!r}; the metadata is corrupt (restore it from "
                                  "the run's other checkpoint or retrain)")
    try:
        model = task.create_network(meta)
    except KeyError as e:
        raise CheckpointError(f"{path.with_suffix('.json')} lacks {e}; the metadata is corrupt") from None
    except CnnlabError as e:
        raise CheckpointError(f"{path.with_suffix('.json')}: {e}") from None
    ckpt.load_weights_into(model, ckpt.load_tensors(path), path)
    return task, model.to(device).eval(), meta, path


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """(model in eval mode, metadata) of a run folder of any task."""
    _, model, meta, _ = load_task(run_dir, which, device)
    return model, meta


def checkpoint_label(path: Path, meta: dict) -> str:
    """'best (epoch 7)' / 'last (epoch 3, interrupted mid-epoch)'."""
    label = f"{path.stem} (epoch {meta.get('epoch', '?')}"
    if meta.get("interrupted"):
        label += ", saved mid-epoch when the run was interrupted"
    return label + ")"


@torch.no_grad()
def evaluate_run(run_dir: str | Path, split: str | None = None, which: str = "best", data: str | None = None,
                 data_root: str | None = None, tta: str | None = None, batch_size: int = 256) -> tuple[dict, dict, Any]:
    """Metrics of a run's checkpoint on a split of its data (or on other data, evaluated whole).

    Returns (metrics, info, task): info names the split, checkpoint and test-time augmentation used.
    """
    from tqdm import tqdm

    from cnnlab.engine.trainer import to_device

    task, model, meta, path = load_task(run_dir, which)
    if tta is not None:
        if not hasattr(task.cfg, "eval_tta"):
            raise DataError(f"--tta: the {task.name} task has no test-time augmentation")
        task.cfg.eval_tta = tta
    dataset, split_label, bundle = task.eval_data(task.cfg, split, data, data_root)
    loader = task.eval_loader(task.cfg, bundle, dataset)
    evaluator = task.evaluator()
    for batch in tqdm(loader, desc=f"evaluate {split_label}", unit="batch", leave=False):
        evaluator.update(task.validation_step(model, to_device(batch, torch.device("cpu"))))
    info = {"split": split_label, "checkpoint": checkpoint_label(path, meta), "images": len(dataset),
            "tta": getattr(task.cfg, "eval_tta", None)}
    return evaluator.compute(), info, task


def evaluation_folder(run_dir: str | Path, out: str | None, name: str) -> Path:
    """Where an evaluation writes its files: ``--out``, else a new ``RUN_DIR/evaluations/<name>[-N]``."""
    if out:
        folder = Path(out)
    else:
        base = Path(run_dir) / "evaluations" / name
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{name}-{n}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(f"cannot write the evaluation to {folder} ({e.strerror}); pass --out to a writable folder") from None
    return folder
