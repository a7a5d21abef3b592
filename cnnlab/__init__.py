"""cnnlab: the CNNs-for-visual-recognition curriculum as one offline-first PyTorch library.

    import cnnlab
    run_dir = cnnlab.train("classify", data="digits", model="lenet5", epochs=3)
    cnnlab.predict(run_dir, ["shoe.png"])           # [{"image": ..., "top": [...]}]
    cnnlab.predict("mobilenet_v2", "coffee.jpg", weights="imagenet")   # no run folder
    model, meta = cnnlab.load_run(run_dir)
    print(cnnlab.summary(model, (1, 28, 28)))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__version__ = "0.1.0"


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, **kwargs):
    """Build a registered model by name (see cnnlab.models.registry.create_model); ``weights``: a file or "imagenet"."""
    from cnnlab.models import create_model as _create

    return _create(name, num_classes=num_classes, in_chans=in_chans, weights=weights, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, optionally filtered by a glob pattern."""
    from cnnlab.models import list_models as _list

    return _list(pattern)


def list_tasks() -> list[str]:
    """Names of the registered tasks (classify, localize, landmarks, ...)."""
    from cnnlab.tasks import list_tasks as _list

    return _list()


def train(task: str = "classify", resume: str | Path | None = None, **config: Any) -> Path:
    """Train ``task`` with the settings of its Config (the CLI's flags, as keyword arguments); returns the run folder.

    ``train("classify", data="digits", model="lenet5", epochs=3)``; ``train(resume="runs/x")`` continues a run.
    """
    import dataclasses

    from cnnlab.engine.pipeline import train as _train
    from cnnlab.engine.run import read_config
    from cnnlab.tasks import get_task

    if resume is not None:
        cfg = dataclasses.replace(read_config(resume), **config).validate()
        run_dir, _, _ = _train(cfg, resume=Path(resume))
        return run_dir
    cfg = get_task(task).Config(task=task, **config).validate()
    run_dir, _, _ = _train(cfg)
    return run_dir


def predict(run_or_model: str | Path, images: Sequence[str | Path] | str | Path, weights: str | None = None,
            **options: Any) -> list[dict]:
    """Predictions for image files (JSON-ready dicts, one per image), from a run folder's best checkpoint,
    or from a registered model with pretrained ``weights``: ``predict("mobilenet_v2", "coffee.jpg", weights="imagenet")``.
    """
    import torch

    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError

    paths = [images] if isinstance(images, (str, Path)) else list(images)
    if weights is not None:
        if Path(run_or_model).is_dir():
            raise ConfigError(f"weights= goes with a model name, not with the run folder {run_or_model} (it has its own)")
        from cnnlab.cli.evaluate import predict_pretrained

        return predict_pretrained(str(run_or_model), weights, paths, **options)
    task, model, _, _ = load_task(run_or_model)
    out = []
    for path in paths:
        x, original = task.prepare(path)
        with torch.no_grad():
            out.append({"image": str(path), **task.predict(model, x[None], [original], **options)[0]})
    return out


def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """Load a training run folder of any task: returns (model in eval mode, metadata)."""
    from cnnlab.engine.evaluate import load_run as _load

    return _load(run_dir, which=which, device=device)


def export(run_or_model: str | Path, format: str, out: str | Path, weights: str | None = None,
           which: str = "best") -> Path:
    """Write a run's network (or a registered model with ``weights``) as onnx, torchscript or exported-program;
    checked against the network before it is kept, with ``out``.json beside it. Returns the file's path."""
    from cnnlab.engine.export import export as _export
    from cnnlab.engine.export import prepare_pretrained, prepare_run

    if weights is not None:
        module, example, info = prepare_pretrained(str(run_or_model), weights)
    else:
        module, example, info = prepare_run(run_or_model, which)
    return Path(_export(module, example, info, format, out)["path"])


def summary(model, input_size: Sequence[int]) -> str:
    """A per-layer table of a model (a module or a registered name): output shapes, parameters, multiply-adds."""
    from cnnlab.models.summary import format_summary, summarize_registered
    from cnnlab.models.summary import summary as _summary

    s = summarize_registered(model, tuple(input_size)) if isinstance(model, str) else _summary(model, tuple(input_size))
    return format_summary(s)


__all__ = ["__version__", "create_model", "list_models", "list_tasks", "train", "predict", "load_run", "export",
           "summary"]
