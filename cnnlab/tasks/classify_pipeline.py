"""Image classification from a TrainConfig to a finished run folder.

data (train-split statistics for normalization) -> model (init, transfer weights, freeze)
-> loaders -> Trainer -> best checkpoint evaluated on the test split -> plots + summary.json.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.distributed import DistInfo, barrier, broadcast_object, cleanup, init_distributed
from cnnlab.engine.run import new_run_dir, precision_note, setup_environment, versions, write_config
from cnnlab.engine.trainer import Trainer, TrainResult
from cnnlab.errors import ConfigError, ModelError
from cnnlab.tasks.classify import ClassificationTask


FALLBACK_DATA = "fashion-mnist-or-digits"


def load_data(cfg: TrainConfig):
    from cnnlab.data.datasets import load_classification_data

    fallback = cfg.data == FALLBACK_DATA  # the demo: Fashion-MNIST, else the bundled digits
    return load_classification_data("fashion-mnist" if fallback else cfg.data, cfg.data_root, val_fraction=cfg.val_fraction,
                                    img_size=cfg.img_size, channels=cfg.channels, skip_bad=cfg.skip_bad, seed=cfg.seed,
                                    limit=cfg.limit, limit_test=cfg.limit_test, fallback=fallback)


def build_model(cfg: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> torch.nn.Module:
    """Create the model, initialise it by name, load transfer weights and freeze stages."""
    from cnnlab.models import create_model

    kwargs = dict(cfg.model_kwargs)
    kwargs.setdefault("img_size", img_size)
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    model = create_model(cfg.model, num_classes=num_classes, in_chans=in_chans, **kwargs)
    if cfg.init not in ("default", "lsuv"):  # lsuv needs data: _train applies it
        from cnnlab.nn.init import init_weights

        init_weights(model, cfg.init, std=cfg.init_std)
    if cfg.weights:
        from cnnlab.models.weights import load_weights

        report = load_weights(model, cfg.weights)
        print(f"loaded {cfg.weights}" + (" (new classifier head for this data's classes)" if report.get("head_reset") else ""))
    if cfg.freeze:
        freeze_stages(model, cfg.freeze)
    return model


def _lsuv(model: torch.nn.Module, train, normalization, seed: int, device: torch.device, n: int = 512) -> None:
    """--init lsuv: LSUV on ``n`` normalized training images drawn with the run's seed (the same on every rank)."""
    from cnnlab.nn.init import lsuv_init

    if not hasattr(train, "images"):
        raise ConfigError("--init lsuv needs the training images in memory (image folders under 2 GiB); pick another --init")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:n]
    x = train.images[idx].float() / 255  # (n, C, H, W) in [0, 1]
    if normalization is not None:
        x = normalization(x)
    lsuv_init(model, x.to(device))


def freeze_stages(model: torch.nn.Module, n: int) -> None:
    """Stop gradients (and batch-norm statistic updates) in the first ``n`` feature stages."""
    stages = model.stages() if hasattr(model, "stages") else []
    if n > len(stages):
        raise ConfigError(f"--freeze {n}: model has only {len(stages)} stages to freeze")
    for stage in stages[:n]:
        for p in stage.parameters():
            p.requires_grad_(False)
        for m in stage.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # frozen running statistics (train-mode BN still normalizes per batch)


def model_meta(cfg: TrainConfig, data, normalization, model: torch.nn.Module) -> dict[str, Any]:
    kwargs = dict(cfg.model_kwargs)
    kwargs.setdefault("img_size", data.img_size[0])
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    from cnnlab.models.registry import get_model_builder
    import inspect

    params = inspect.signature(get_model_builder(cfg.model)).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    return {
        "format": "cnnlab-checkpoint-1", "task": "classify", "model": cfg.model, "model_kwargs": kwargs,
        "num_classes": len(data.classes), "in_chans": data.in_chans, "img_size": list(data.img_size),
        "classes": list(data.classes), "normalization": normalization.to_dict() if normalization else None,
        "data": cfg.data, "data_source": data.source, "config": cfg.to_dict(), "versions": versions(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def train_classifier(cfg: TrainConfig, resume: str | Path | None = None) -> tuple[Path | None, TrainResult, dict]:
    """Train a classifier, or resume the run folder ``resume`` with its saved config as ``cfg``.

    Returns (run folder, trainer result, summary); the result's status is "interrupted" when a
    signal or ``stop_after`` ended the session before the last epoch.
    """
    if resume is not None:  # cfg is the run's saved config (read_config), with any overrides applied
        cfg = dataclasses.replace(cfg, out=str(resume))
    cfg = cfg.resolved()
    if cfg.on_features:
        from cnnlab.engine.features import train_on_features

        return train_on_features(cfg, resume)
    device = setup_environment(cfg)
    dist = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if dist.enabled and cfg.optimizer == "lbfgs":
        raise ConfigError("--optimizer lbfgs is full-batch and runs in one process; drop torchrun or pick another optimizer")
    try:
        return _train(cfg, resume, device, dist)
    finally:
        cleanup(dist)


def _train(cfg: TrainConfig, resume, device: torch.device, dist: DistInfo):
    from cnnlab.data.augment import BatchAugment, parse_augment, pca_lighting_basis
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.normalize import compute_normalization
    from cnnlab.data.progressive import check_model_accepts, parse_progressive

    data = load_data(cfg)
    if data.skipped and dist.is_main:
        print(f"skipped {len(data.skipped)} bad files (--skip-bad); first: {data.skipped[0][0]}: {data.skipped[0][1]}")
    normalization = None if cfg.normalize == "none" else compute_normalization(data.train, mode=cfg.normalize)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every resume
    model = build_model(cfg, len(data.classes), data.in_chans, data.img_size[0]).to(device)
    if cfg.init == "lsuv" and resume is None:
        _lsuv(model, data.train, normalization, cfg.seed, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    augment = parse_augment(cfg.augment)
    pca = pca_lighting_basis(data.train.images) if augment.pca_lighting and hasattr(data.train, "images") else None
    resize = parse_progressive(cfg.progressive_resize)
    if resize is not None:
        check_model_accepts(model, data.in_chans, data.img_size, resize.min_size, cfg.model, cfg.progressive_resize, device)
    train_loader = make_loader(data.train, cfg.batch_size, train=True, augment=augment, normalization=normalization,
                               seed=cfg.seed, rank=dist.rank, world_size=dist.world_size, num_workers=cfg.num_workers,
                               channels_last=cfg.channels_last, pca_basis=pca, resize=resize, epochs=cfg.epochs)
    eval_split = data.val if data.val is not None else data.test
    eval_loader = None
    if eval_split is not None:
        eval_loader = make_loader(eval_split, 512, train=False, normalization=normalization, seed=cfg.seed,
                                  rank=dist.rank, world_size=dist.world_size, channels_last=cfg.channels_last)
    run_dir = None
    if dist.is_main:
        run_dir = Path(resume) if resume is not None else new_run_dir(cfg)
        if resume is None:
            write_config(run_dir, cfg)
    run_dir = broadcast_object(run_dir, dist)
    if dist.is_main:
        print(f"run folder: {run_dir}\ndata: {data.source}: {len(data.train)} train, "
              f"{len(data.val) if data.val is not None else 0} val, {len(data.test) if data.test is not None else 0} test images, "
              f"{len(data.classes)} classes, {data.in_chans}x{data.img_size[0]}x{data.img_size[1]}")
        note = precision_note(cfg.precision, device)
        if note:
            print(note)
    meta = model_meta(cfg, data, normalization, model)
    # every evaluation (per epoch, the best-checkpoint choice, the final one) uses the run's test-time augmentation
    task = ClassificationTask(len(data.classes), label_smoothing=cfg.label_smoothing, tta=cfg.eval_tta)
    trainer = Trainer(cfg, model, task, train_loader, eval_loader, run_dir if dist.is_main else None, meta, device, dist)
    if resume is not None:
        trainer.load_state(Path(resume))
        if dist.is_main:
            print(f"resuming at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} of it")
    result = trainer.fit()
    summary: dict[str, Any] = {}
    if result.status == "interrupted":
        if dist.is_main:
            print(f"stopped; checkpoint saved. resume with:\n  cnnlab train {cfg.task} --resume {run_dir}")
        barrier(dist)
        return run_dir, result, summary
    if dist.is_main:
        summary = finish_run(run_dir, cfg, trainer, data, normalization, device)
    barrier(dist)
    return run_dir, result, summary


def finish_run(run_dir: Path, cfg: TrainConfig, trainer: Trainer, data, normalization, device) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (else val), then write plots and summary.json."""
    from cnnlab.data.loaders import make_loader
    from cnnlab.engine import plots

    model = trainer.model
    best = ckpt.load_tensors(ckpt.find_checkpoint(run_dir, "best"))
    split_name, split = ("test", data.test) if data.test is not None else ("val", data.val)
    final: dict[str, Any] = {}
    if split is not None:
        loader = make_loader(split, 512, train=False, normalization=normalization, channels_last=cfg.channels_last)
        final = trainer.evaluate(loader, weights=best, sync=False)  # rank 0 alone, on the whole split
        model.load_state_dict(best)
        model.eval()
        plots.plot_confusion(final["confusion"], data.classes, run_dir / "plots" / "confusion.png")
        _plot_prediction_grid(model, split, normalization, data.classes, device, run_dir / "plots" / "predictions.png")
    plots.plot_curves(trainer.logger.rows, run_dir / "plots" / "curves.png")
    if trainer.lr_trace:
        steps, lrs = zip(*trainer.lr_trace)
        plots.plot_lr(steps, lrs, run_dir / "plots" / "lr.png")
    summary = {
        "run_dir": str(run_dir), "task": "classify", "model": cfg.model, "data": data.source, "epochs": trainer.epoch,
        "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(trainer.train_seconds, 2),
        "best_epoch": trainer.best_metrics.get("epoch"), "eval_split": split_name if split is not None else None,
        "tta": cfg.eval_tta, "skipped_batches": trainer.skipped,
        f"{split_name}_acc": final.get("acc"), f"{split_name}_top5": final.get("top5"), f"{split_name}_loss": final.get("loss"),
        "per_class_acc": dict(zip(data.classes, final.get("per_class_acc", []))), "classes": list(data.classes),
    }
    trainer.logger.write_summary(summary)
    if split is not None:
        print(f"{split_name} accuracy {final['acc']:.4f} (top-{min(5, len(data.classes))} {final.get('top5', final.get('top' + str(len(data.classes)), 0)):.4f}) "
              f"after {trainer.epoch} epochs, {trainer.train_seconds:.0f} s of training; run folder: {run_dir}")
    return summary


@torch.no_grad()
def _plot_prediction_grid(model, split, normalization, classes, device, path: Path, n: int = 32) -> None:
    from cnnlab.engine import plots

    if not hasattr(split, "images"):
        return
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(split), generator=g)[:n]
    images = split.images[idx]  # (n, C, H, W) uint8
    x = images.float() / 255
    if normalization is not None:
        x = normalization(x)
    pred = model(x.to(device)).argmax(1).cpu()
    plots.plot_predictions(images.numpy(), split.labels[idx].tolist(), pred.tolist(), classes, path)
