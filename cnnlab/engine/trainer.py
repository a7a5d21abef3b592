"""The task-agnostic training loop.

    for epoch:                                  (loader order and augmentation are a pure
        for batch in train_loader:               function of seed and epoch, so a resumed
            loss = task.training_step(...)       run replays exactly the same batches)
            backward, clip, step, schedule, EMA
        evaluate with task.validation_step, log a row, save last/best + training state

Ctrl-C / SIGTERM finish the current step, save a resumable checkpoint and stop. A non-finite
loss stops with the step named (or the batch is skipped with ``skip_nonfinite``).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.distributed import DistInfo
from cnnlab.engine.logging import RunLogger
from cnnlab.engine.optim import EMA, build_optimizer, build_scheduler, weight_penalty
from cnnlab.engine.transfer import train_mode
from cnnlab.errors import CheckpointError, TrainingError

STATE_KEYS = ("epoch", "step_in_epoch", "global_step", "train_seconds", "skipped", "best_score", "best_metrics",
              "optimizer", "scheduler_step", "rng_cpu")


@dataclass
class TrainResult:
    status: str  # "finished" | "interrupted" | "evaluation-interrupted" (training finished, the final evaluation did not)
    epochs_done: int
    best: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    skipped_batches: int = 0
    signal: str | None = None  # the signal that stopped the final evaluation (SIGTERM, SIGINT)


class Trainer:
    """Runs ``cfg.epochs`` epochs of a Task on a model; rank 0 writes ``run_dir``."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, task: Any, train_loader: Any, eval_loader: Any | None,
                 run_dir: Path | None, meta: dict[str, Any], device: torch.device, dist: DistInfo | None = None,
                 on_epoch_end: Callable[[int, dict], None] | None = None):
        self.cfg, self.task, self.meta, self.device = cfg, task, meta, device
        self.dist = dist or DistInfo()
        self.run_dir = run_dir if self.dist.is_main else None
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.model = model  # bare module: checkpoints, EMA and evaluation use it
        self.net = model  # what the training step calls (DDP / compiled wrapper)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        # bf16 autocast of the forward pass: conv/linear run in bfloat16 (AMX/AVX-512 BF16 units on recent CPUs),
        # the loss, weights, gradients and optimizer stay fp32, so no loss scaling is needed (unlike fp16)
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        self.lbfgs = cfg.optimizer == "lbfgs"
        self.steps_per_epoch = 1 if self.lbfgs else len(train_loader)
        if self.steps_per_epoch < 1:
            raise TrainingError("the training split gives no batch; lower --batch-size or add training data")
        self.optimizer = build_optimizer(model, cfg)
        self.train_seconds = 0.0  # before the scheduler: with --time-budget it reads the clock
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch, elapsed=lambda: self.train_seconds)
        self.ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
        self.logger = RunLogger(self.run_dir, tensorboard=cfg.tensorboard)
        self.on_epoch_end = on_epoch_end
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.skipped = 0
        self.best_score = -math.inf
        self.best_metrics: dict[str, Any] = {}
        self.monitor = cfg.monitor or task.monitor
        self.mode = cfg.mode or task.mode
        self.running: dict[str, float] = {}  # sums of the step's scalars over this epoch, times batch size
        self.running_n = 0
        self.epoch_seconds_so_far = 0.0
        self.track_loader = None  # with --track-test: the test split, evaluated per epoch for the curve alone
        self.store = ckpt.CheckpointStore(self.run_dir) if self.run_dir is not None else None
        self.lr_trace: list[tuple[int, float]] = []
        self._stop = False

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "train_seconds": self.train_seconds, "skipped": self.skipped, "best_score": self.best_score,
            "best_metrics": _scalars(self.best_metrics), "lr_trace": [list(t) for t in self.lr_trace[-5000:]],
            "running": {k: float(v) for k, v in self.running.items()}, "running_n": self.running_n,
            "epoch_seconds_so_far": self.epoch_seconds_so_far,
            "optimizer": self.optimizer.state_dict(), "scheduler_step": self.scheduler.last_epoch,
            "ema": self.ema.state_dict() if self.ema else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state(self, run_dir: Path) -> None:
        """Restore weights and training state from a run folder's current checkpoint generation."""
        folder = run_dir / "checkpoints"
        state = ckpt.load_state(folder / "train_state")
        if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
            missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
            raise CheckpointError(f"{folder / 'train_state.json'} lacks {missing[0]!r}; the training state is corrupt "
                                  "and the run cannot be resumed exactly")
        last_meta = ckpt.read_json(folder / "last.json")
        if (last_meta.get("step"), last_meta.get("epoch")) != (state["global_step"], state["epoch"]):
            raise CheckpointError(f"{folder}: last.json is of step {last_meta.get('step')} but train_state.json of step "
                                  f"{state['global_step']}; the checkpoint set is inconsistent and cannot be resumed")
        raw = folder / ("last_raw.safetensors" if self.ema is not None else "last.safetensors")
        weights = ckpt.load_tensors(raw)  # with EMA, last.safetensors holds the averaged weights
        ckpt.load_weights_into(self.model, weights, raw)
        try:
            self.optimizer.load_state_dict(_fix_optimizer_state(state["optimizer"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{folder / 'train_state.json'}: optimizer state does not fit this model and optimizer "
                                  f"({e}); was the config edited?") from None
        self.scheduler.last_epoch = state["scheduler_step"]
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        for k in ("epoch", "step_in_epoch", "global_step", "train_seconds", "skipped", "best_score", "best_metrics"):
            setattr(self, k, state[k])
        self.running = {k: float(v) for k, v in (state.get("running") or {}).items()}
        self.running_n = state.get("running_n", 0)
        self.epoch_seconds_so_far = state.get("epoch_seconds_so_far", 0.0)
        self.lr_trace = [tuple(t) for t in state.get("lr_trace", [])]
        torch.set_rng_state(state["rng_cpu"])
        if torch.cuda.is_available() and state.get("rng_cuda"):
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.logger.resume_from(self.epoch)

    def save(self, metrics: dict[str, Any], is_best: bool, interrupted: bool = False) -> None:
        """Write one checkpoint generation (training state, last, best when it improved, snapshot) as a unit."""
        if self.run_dir is None:
            return
        weights = ckpt.model_state(self.model)
        eval_weights = self.ema.state_dict() if self.ema else weights
        meta = dict(self.meta, epoch=self.epoch, step=self.global_step, metrics=_scalars(metrics), interrupted=interrupted,
                    ema=self.ema is not None, monitor=self.monitor, mode=self.mode)
        if is_best and not all(torch.isfinite(v).all() for v in eval_weights.values() if v.is_floating_point()):
            is_best = False  # never keep non-finite weights as the best

        def write(folder: Path) -> None:
            ckpt.save_state(folder / "train_state", self.state())
            ckpt.save_model_checkpoint(folder / "last.safetensors", eval_weights, meta)
            if self.ema is not None:
                ckpt.atomic_save_tensors(folder / "last_raw.safetensors", weights)
            if is_best:
                ckpt.save_model_checkpoint(folder / "best.safetensors", eval_weights, dict(meta, best=True))
            if self.cfg.snapshots and not interrupted:
                ckpt.save_model_checkpoint(folder / f"snapshot-epoch{self.epoch:03d}.safetensors", eval_weights, meta)

        self.store.write(f"e{self.epoch:04d}-s{self.global_step:09d}" + ("-i" if interrupted else ""), write)

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        restore = self._install_signal_handlers()
        session_end = self.epoch + self.cfg.stop_after if self.cfg.stop_after else None
        try:
            while self.epoch < self.cfg.epochs and not self.out_of_time():
                completed = self._train_epoch()
                if not completed:
                    self.save(self.best_metrics, is_best=False, interrupted=True)
                    return self._result("interrupted")
                self.epoch += 1
                self.step_in_epoch = 0
                self._average_buffers()
                metrics = self.evaluate(self.eval_loader) if self.eval_loader is not None else {}
                row = self._row(metrics)
                if self.track_loader is not None:  # a curve only: never looked at for choosing
                    tracked = self.evaluate(self.track_loader)
                    row.update({f"test_{k}": v for k, v in _scalars(tracked).items() if k != "count" and not isinstance(v, (str, bool))})
                is_best = self._is_best(metrics)
                if is_best:
                    self.best_score = self._score(metrics)
                    self.best_metrics = dict(_scalars(metrics), epoch=self.epoch)
                self.logger.log_epoch(row)
                self.save(metrics, is_best)
                self._print_epoch(row, is_best)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.epoch, metrics)
                if self.out_of_time():
                    break  # --time-budget spent: this (possibly shortened) epoch was the last
                if self._stop or (self.epoch == session_end and self.epoch < self.cfg.epochs):
                    return self._result("interrupted")  # the epoch is saved: stop here, resumable
            return self._result("finished")
        finally:
            restore()
            self.logger.close()

    def out_of_time(self) -> bool:
        return bool(self.cfg.time_budget) and self.train_seconds >= self.cfg.time_budget

    def _score(self, metrics: dict[str, Any]) -> float:
        """The monitored metric as a number where larger is better (-inf when absent or not finite)."""
        if not metrics:
            return float(self.epoch)  # no validation split: the last epoch is kept
        v = metrics.get(self.monitor)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return -math.inf
        return float(v) if self.mode == "max" else -float(v)

    def _is_best(self, metrics: dict[str, Any]) -> bool:
        if metrics and self.monitor not in metrics:
            names = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise TrainingError(f"--monitor {self.monitor}: the {self.task.name} task's validation gives {names}; pick one of them")
        return self._score(metrics) > self.best_score

    def _print_epoch(self, row: dict[str, Any], is_best: bool) -> None:
        """One line per epoch: train loss, validation loss and the monitored metric."""
        if not self.dist.is_main or self.cfg.quiet:
            return
        parts = [f"epoch {self.epoch}/{self.cfg.epochs}", f"train_loss {_fmt(row.get('train_loss'))}"]
        for key in dict.fromkeys(("loss", self.monitor)):
            if row.get(f"val_{key}") is not None:
                parts.append(f"val_{key} {_fmt(row[f'val_{key}'])}")
        if self.cfg.time_budget:
            parts.append(f"({max(0.0, self.cfg.time_budget - self.train_seconds):.0f} s of the time budget left)")
        if row.get("val_loss") is None and self.eval_loader is None:
            parts.append("(no validation split: the last epoch is kept)")
        elif is_best:
            parts.append("*best*")
        tqdm.write("  ".join(parts))

    def _train_epoch(self) -> bool:
        """One epoch (or the rest of one after a resume); False if stopped by a signal."""
        cfg, loader = self.cfg, self.train_loader
        train_mode(self.net)
        _set_epoch(loader, self.epoch)
        if self.lbfgs:
            return self._lbfgs_epoch()
        skip = self.step_in_epoch
        if skip == 0:
            self.running, self.running_n, self.epoch_seconds_so_far = {}, 0, 0.0
        desc = f"epoch {self.epoch + 1}/{cfg.epochs}"
        if getattr(loader, "resize", None) is not None:
            desc += f" @{loader.image_size()}px"  # progressive resizing
        n_batches = len(loader)
        bar = tqdm(total=n_batches, initial=skip, desc=desc, unit="batch",
                   disable=cfg.quiet or not self.dist.is_main, dynamic_ncols=True, leave=True)
        t_epoch = time.perf_counter()
        t_step = t_epoch  # training time counts loading and augmenting each batch, not evaluation
        seen_now = 0
        with bar:
            # After a mid-epoch resume, start at the interrupted step: the loader's batches are a pure
            # function of (seed, epoch, batch index), so the rest of the epoch is exactly the same.
            batches = loader.iter_from(skip) if hasattr(loader, "iter_from") else _skip(iter(loader), skip)
            for i, batch in enumerate(batches, start=skip):
                batch = to_device(batch, self.device)
                with self._autocast():
                    out = self.task.training_step(self.net, batch)
                loss = out["loss"]
                penalty = weight_penalty(self.model, cfg.l1)
                total = loss if penalty is None else loss + penalty
                if not torch.isfinite(total.detach()):
                    if not cfg.skip_nonfinite:
                        raise TrainingError(
                            f"loss became {total.item()} at epoch {self.epoch + 1}, step {i + 1} (global step {self.global_step + 1}); "
                            "lower --lr, add --grad-clip, or pass --skip-nonfinite to skip such batches")
                    self.skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step_in_epoch = i + 1
                    bar.update(1)
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip:  # logged: the norm before clipping and whether this step was clipped
                    norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    out = dict(out, grad_norm=norm.detach(), clipped=(norm > cfg.grad_clip).float())
                self.optimizer.step()
                self.lr_trace.append((self.global_step, self.optimizer.param_groups[0]["lr"]))
                if self.ema is not None:
                    self.ema.update(self.model)
                now = time.perf_counter()
                self.train_seconds += now - t_step  # before the scheduler: with --time-budget it reads this clock
                t_step = now
                self.scheduler.step()
                self.global_step += 1
                self.step_in_epoch = i + 1
                n = self.task.batch_size(batch)
                self._accumulate(out, n)
                seen_now += n
                bar.update(1)
                if i % 10 == 0 or i + 1 == n_batches:
                    bar.set_postfix(self._postfix(seen_now / max(1e-9, time.perf_counter() - t_epoch)))
                if self._stop:
                    self.epoch_seconds_so_far += time.perf_counter() - t_epoch
                    return False
                if self.out_of_time():
                    break  # the epoch ends here; fit() evaluates it and stops
        self._epoch_stats = {f"train_{k}": v / max(1, self.running_n) for k, v in self.running.items()}
        self._epoch_stats.update(epoch_seconds=self.epoch_seconds_so_far + time.perf_counter() - t_epoch,
                                 images=self.running_n)
        if getattr(loader, "resize", None) is not None:
            self._epoch_stats["train_size"] = loader.image_size()  # progressive resizing: this epoch's image size
        return True

    def _accumulate(self, out: dict[str, Any], n: int) -> None:
        """Running sums of every 0-d tensor the step returned (weighted by the batch size)."""
        for k, v in out.items():
            if isinstance(v, torch.Tensor) and v.ndim == 0 and v.is_floating_point():
                self.running[k] = self.running.get(k, 0.0) + float(v.detach()) * n
        self.running_n += n

    def _postfix(self, images_per_s: float) -> dict[str, str]:
        n = max(1, self.running_n)
        shown = {k: f"{self.running[k] / n:.4g}" for k in self.task.progress_keys if k in self.running}
        return dict(shown, lr=f"{self.optimizer.param_groups[0]['lr']:.3g}", img_s=f"{images_per_s:.0f}")

    def _lbfgs_epoch(self) -> bool:
        """Full-batch L-BFGS: one optimizer step per epoch over the whole training set."""
        t0 = time.perf_counter()
        n_total = sum(self.task.batch_size(b) for b in self.train_loader)

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            self.running, self.running_n = {}, 0
            loss_sum = 0.0
            for batch in self.train_loader:
                batch = to_device(batch, self.device)
                with self._autocast():
                    out = self.task.training_step(self.net, batch)
                n = self.task.batch_size(batch)
                part = out["loss"] * (n / n_total)
                penalty = weight_penalty(self.model, self.cfg.l1)
                if penalty is not None:
                    part = part + penalty * (n / n_total)
                part.backward()
                loss_sum += part.item()
                self._accumulate(out, n)
            if not math.isfinite(loss_sum):
                raise TrainingError(f"loss became {loss_sum} in L-BFGS epoch {self.epoch + 1}; lower --lr")
            return torch.tensor(loss_sum)

        self.optimizer.step(closure)
        self.lr_trace.append((self.global_step, self.optimizer.param_groups[0]["lr"]))
        self.scheduler.step()
        self.global_step += 1
        self.train_seconds += time.perf_counter() - t0
        self._epoch_stats = {f"train_{k}": v / max(1, self.running_n) for k, v in self.running.items()}
        self._epoch_stats.update(epoch_seconds=time.perf_counter() - t0, images=n_total)
        return not self._stop

    @torch.no_grad()
    def evaluate(self, loader: Any, weights: dict[str, torch.Tensor] | None = None, sync: bool = True) -> dict[str, Any]:
        """Metrics of the task on ``loader`` (EMA weights when EMA is on).

        With ``sync`` the metric state is summed over DDP ranks (each evaluated its own shard);
        every rank must then call this together.
        """
        model = self.model
        if weights is None and self.ema is not None:
            weights = self.ema.state_dict()
        saved = None
        if weights is not None:
            saved = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(weights)
        model.eval()
        evaluator = self.task.evaluator()
        for batch in loader:
            batch = to_device(batch, self.device)
            evaluator.update(self.task.validation_step(model, batch))
        if sync and self.dist.enabled:
            evaluator.sync()
        if saved is not None:
            model.load_state_dict(saved)
        train_mode(model)
        return evaluator.compute()

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        """The training step's precision context: bf16 autocast with --precision bf16, else a no-op."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    @torch.no_grad()
    def _average_buffers(self) -> None:
        """Under DDP, average batch-norm running statistics over ranks so every replica is identical
        (each rank's own last batches updated its copy)."""
        if not self.dist.enabled:
            return
        import torch.distributed as dist

        for buf in self.model.buffers():
            if buf.dtype.is_floating_point:
                dist.all_reduce(buf)
                buf.div_(self.dist.world_size)

    def _row(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The epoch's metrics.csv row: train running means, every scalar validation metric (val_*), timing."""
        s = getattr(self, "_epoch_stats", {})
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.global_step}
        row.update({k: v for k, v in s.items() if k.startswith("train_") and k != "train_size"})
        row.update({f"val_{k}": v for k, v in _scalars(metrics).items() if k != "count" and not isinstance(v, (str, bool))})
        row.update(lr=self.optimizer.param_groups[0]["lr"], epoch_seconds=s.get("epoch_seconds"),
                   train_seconds=self.train_seconds,
                   images_per_s=s.get("images", 0) * self.dist.world_size / max(1e-9, s.get("epoch_seconds", 0) or 1e-9),
                   skipped_batches=self.skipped)
        if s.get("train_size") is not None:
            row["train_size"] = s["train_size"]
        return row

    def _result(self, status: str) -> TrainResult:
        last = self.logger.rows[-1] if self.logger.rows else {}
        return TrainResult(status, self.epoch, _scalars(self.best_metrics), last, self.train_seconds, self.skipped)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if self._stop:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop = True
            if self.dist.is_main:
                tqdm.write(f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint (again to abort)")

        for s in old:
            signal.signal(s, handler)
        return lambda: [signal.signal(s, h) for s, h in old.items()]


def _skip(batches, n: int):
    for i, b in enumerate(batches):
        if i >= n:
            yield b


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a batch (dicts, lists and tuples of them, nested) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def _set_epoch(loader: Any, epoch: int) -> None:
    """Loaders of cnnlab have set_epoch; a plain DataLoader's sampler may (DistributedSampler)."""
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    """Drop the bulky entries (confusion matrices) from metrics stored with every checkpoint."""
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _fix_optimizer_state(state: dict) -> dict:
    for g in state.get("param_groups", []):
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    return state
