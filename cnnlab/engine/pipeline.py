"""One pipeline for every task: from a task's Config to a finished run folder.

environment -> task.build_data -> task.build_model -> loaders -> one checked forward pass
-> run folder (locked) -> Trainer -> the best checkpoint evaluated once on the test split
-> curves, task plots, report.md, summary.json.

Model selection uses the validation split only; with no validation split the last epoch is
kept. The test split is evaluated once, at the end (or the validation split, labelled so,
when the data has no test split). A resumed run goes through the same code with its saved config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.distributed import DistInfo, barrier, broadcast_object, cleanup, init_distributed
from cnnlab.engine.run import new_run_dir, precision_note, resolve_precision, setup_environment, versions, write_config
from cnnlab.engine.trainer import Trainer, TrainResult, to_device
from cnnlab.engine.transfer import train_mode
from cnnlab.errors import CnnlabError, ConfigError, ModelError
from cnnlab.engine.registry import get_task

FEW_STEPS = 10  # warn when an epoch has fewer steps than this


def train(cfg: TrainConfig, resume: str | Path | None = None) -> tuple[Path | None, TrainResult, dict]:
    """Train ``cfg.task``, or resume the run folder ``resume`` (then ``cfg`` is its saved config, with overrides).

    Returns (run folder, trainer result, summary); the status is "interrupted" when a signal or
    ``stop_after`` ended the session before the last epoch.
    """
    task_cls = get_task(cfg.task)
    if not isinstance(cfg, task_cls.Config):
        cfg = task_cls.Config.from_dict(cfg.to_dict())
    if resume is not None:
        cfg = dataclasses.replace(cfg, out=str(resume))
    cfg = task_cls.resolve(cfg.resolved())
    device = setup_environment(cfg)
    cfg.precision = resolve_precision(cfg.precision, device)  # config.json records what ran
    dist = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if dist.enabled and cfg.optimizer == "lbfgs":
        raise ConfigError("--optimizer lbfgs is full-batch and runs in one process; drop torchrun or pick another optimizer")
    try:
        return _train(task_cls, cfg, resume, device, dist)
    finally:
        cleanup(dist)


def _train(task_cls, cfg: TrainConfig, resume, device: torch.device, dist: DistInfo):
    task = task_cls(cfg)
    data = task.build_data(cfg)
    task.meta.update(data.meta)
    if data.skipped and dist.is_main:
        print(f"skipped {len(data.skipped)} bad files (--skip-bad); first: {data.skipped[0][0]}: {data.skipped[0][1]}")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every resume
    model = task.build_model(cfg, data, resume=resume is not None).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_loader = task.train_loader(cfg, data, dist.rank, dist.world_size)
    eval_loader = task.eval_loader(cfg, data, data.val, dist.rank, dist.world_size) if data.val is not None else None
    check_model_fits(task, model, train_loader, device, cfg)  # before any folder is made
    lock = None
    run_dir = None
    if dist.is_main:
        run_dir = Path(resume) if resume is not None else new_run_dir(cfg)
        lock = ckpt.RunLock(run_dir).acquire()
    try:
        if dist.is_main:
            if resume is None:
                write_config(run_dir, cfg)
            ckpt.CheckpointStore(run_dir).cleanup()
        run_dir = broadcast_object(run_dir, dist)
        if dist.is_main:
            _print_start(cfg, task, data, run_dir, train_loader, device)
        meta = checkpoint_meta(cfg, task, model)
        trainer = Trainer(cfg, model, task, train_loader, eval_loader, run_dir if dist.is_main else None, meta, device, dist)
        if cfg.track_test and data.test is not None:
            trainer.track_loader = task.eval_loader(cfg, data, data.test, dist.rank, dist.world_size)
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
            try:
                with _signals_stop_final_evaluation():
                    summary = finish_run(run_dir, cfg, task, trainer, data, device)
            except FinalEvaluationInterrupted as e:
                split = "test" if data.test is not None else "validation"
                print(f"{e.signal_name} during the final evaluation on the {split} split: training finished and its "
                      f"checkpoints are intact; evaluate later with `cnnlab evaluate {run_dir}`")
                result.status, result.signal = "evaluation-interrupted", e.signal_name
        barrier(dist)
        return run_dir, result, summary
    finally:
        if lock is not None:
            lock.release()


class FinalEvaluationInterrupted(Exception):
    """SIGTERM or Ctrl-C while the finished run is evaluated on its test split (the checkpoints are complete)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class _signals_stop_final_evaluation:
    """SIGTERM / SIGINT raise FinalEvaluationInterrupted for the duration of the final evaluation (main thread only)."""

    def __enter__(self):
        import signal
        import threading

        self.old = {}
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise FinalEvaluationInterrupted(signal.Signals(signum).name)

            for s in (signal.SIGINT, signal.SIGTERM):
                self.old[s] = signal.signal(s, handler)
        return self

    def __exit__(self, *exc):
        import signal

        for s, h in self.old.items():
            signal.signal(s, h)
        return False


def check_model_fits(task, model: torch.nn.Module, loader, device: torch.device, cfg: TrainConfig) -> None:
    """One no-grad forward of the task's training step on a first batch: a model that cannot take the
    data fails here, in one line, before a run folder exists."""
    if cfg.optimizer == "lbfgs" and len(loader) == 0:
        return
    try:
        batch = next(loader.iter_from(0) if hasattr(loader, "iter_from") else iter(loader))
    except StopIteration:
        raise ConfigError("the training split gives no batch; lower --batch-size or add training data") from None
    batch = to_device(batch, device)
    model.eval()
    try:
        with torch.no_grad():
            task.training_step(model, batch)
    except CnnlabError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        shape = tuple(batch["images"].shape) if isinstance(batch.get("images"), torch.Tensor) else "?"
        raise ModelError(f"model {cfg.model!r} cannot take this data (batch of images {shape}): {first}; "
                         "pick another --model or --img-size") from None
    finally:
        train_mode(model)


def _print_start(cfg: TrainConfig, task, data, run_dir: Path, train_loader, device: torch.device) -> None:
    print(f"run folder: {run_dir}\ndata: {data.source}: {data.sizes()}")
    if data.val is None:
        print("no validation split (--val-fraction 0): every epoch is kept as it comes and the last one is used")
    steps = len(train_loader)
    if steps < FEW_STEPS and cfg.optimizer != "lbfgs":
        print(f"warning: an epoch has only {steps} steps of --batch-size {cfg.batch_size}; "
              "consider a smaller --batch-size or more data")
    if getattr(cfg, "recipe", None) and cfg.task == "classify" and len(data.train) < 5000:
        print(f"warning: --recipe {cfg.recipe} was tuned for Fashion-MNIST (60,000 images); "
              f"this training split has {len(data.train)}")
    note = precision_note(cfg.precision, device)
    if note:
        print(note)


def checkpoint_meta(cfg: TrainConfig, task, model: torch.nn.Module) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the model and use it: task, model, options, and the task's meta."""
    meta = dict(task.meta)
    meta.update({"format": "cnnlab-checkpoint-1", "task": task.name, "model": meta.get("model", cfg.model),
                 "model_kwargs": meta.get("model_kwargs", dict(cfg.model_kwargs)), "config": cfg.to_dict(),
                 "versions": versions(), "parameters": sum(p.numel() for p in model.parameters())})
    return meta


def finish_run(run_dir: Path, cfg: TrainConfig, task, trainer: Trainer, data, device: torch.device) -> dict[str, Any]:
    """Evaluate the kept checkpoint once on the test split (else val), then write plots, report.md, summary.json."""
    from cnnlab.engine import plots

    model = trainer.model
    which = "best" if (run_dir / "checkpoints" / "best.safetensors").is_file() else "last"
    weights = ckpt.load_tensors(run_dir / "checkpoints" / f"{which}.safetensors")
    split_name = "test" if data.test is not None else ("val" if data.val is not None else None)
    final: dict[str, Any] = {}
    if split_name is not None:
        loader = task.eval_loader(cfg, data, getattr(data, split_name))
        final = trainer.evaluate(loader, weights=weights, sync=False)  # rank 0 alone, on the whole split
    model.load_state_dict(weights)
    model.eval()
    val_label = "val"
    plots.plot_curves(trainer.logger.rows, run_dir / "plots" / "curves.png", metric=trainer.monitor, val_split=val_label)
    if trainer.lr_trace:
        steps, lrs = zip(*trainer.lr_trace)
        plots.plot_lr(steps, lrs, run_dir / "plots" / "lr.png")
    task_lines = task.report(run_dir, model, data, final, split_name, device)
    scalars = {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "task": task.name, "model": task.meta.get("model", cfg.model), "data": data.source,
        "epochs": trainer.epoch, "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(trainer.train_seconds, 2), "checkpoint": which, "monitor": trainer.monitor,
        "best_epoch": trainer.best_metrics.get("epoch"), "eval_split": split_name, "skipped_batches": trainer.skipped,
    }
    summary.update({f"val_{k}": v for k, v in trainer.best_metrics.items() if k not in ("epoch", "count")})
    summary.update({f"{split_name}_{k}": v for k, v in scalars.items()})
    summary.update(scalars)  # plain keys (acc, map50, pck, ...) are the final evaluation's
    if hasattr(task, "summary_extra"):
        summary.update(task.summary_extra(final))
    trainer.logger.write_summary(summary)
    write_report(run_dir, cfg, task, summary, scalars, split_name, task_lines)
    if split_name is not None:
        shown = ", ".join(f"{k} {scalars[k]:.4f}" for k in task.summary_keys if k in scalars)
        label = f"{which} checkpoint" if data.val is not None else "last epoch: no validation split"
        print(f"{split_name} ({label}): {shown} after {trainer.epoch} epochs, "
              f"{trainer.train_seconds:.0f} s of training; run folder: {run_dir}")
    return summary


def write_report(run_dir: Path, cfg: TrainConfig, task, summary: dict, scalars: dict, split: str | None,
                 task_lines: list[str]) -> None:
    lines = [f"# {task.name}: {summary['model']} on {summary['data']}", "",
             f"- {summary['epochs']} epochs, {summary['train_seconds']:.0f} s of training, {summary['parameters']:,} parameters",
             f"- checkpoint: `{summary['checkpoint']}` (chosen by validation `{summary['monitor']}`"
             + (f", epoch {summary['best_epoch']})" if summary.get("best_epoch") else "; no validation split: last epoch)"), ""]
    if split is not None:
        lines += [f"| {split} metric | value |", "|---|---|",
                  *[f"| {k} | {v:.4f} |" for k, v in scalars.items() if k != "count"], ""]
    lines += ["![learning curves](plots/curves.png)", "", *task_lines,
              f"Evaluate again: `cnnlab evaluate {run_dir}`; predict: `cnnlab predict {run_dir} IMAGE`.", ""]
    ckpt.atomic_write_bytes(run_dir / "report.md", "\n".join(lines).encode())


__all__ = ["train", "finish_run", "checkpoint_meta", "check_model_fits"]
