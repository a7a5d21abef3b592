"""What every experiment stands on: a Context (seeds, quick mode, output folder, training through
the engine) and the Outcome it returns (numbers, figures, verdict).

``ctx.train(**flags)`` is one training run of a task through the engine's own pieces: the task's
``build_data`` / ``build_model`` / loaders and the ``Trainer`` (the same loop as ``cnnlab train``),
without a run folder, so a lab experiment can afford dozens of short runs. The flags are the
task's config fields (``cnnlab train classify --help``); ``ctx.command(**flags)`` gives the
``cnnlab train`` line that reproduces one run, for the report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# the lab's default run: scikit-learn's digits at 8x8, a small conv net, plain SGD, no extras
BASE_FLAGS: dict[str, Any] = dict(data="digits", img_size=8, model="convnet_bn", model_kwargs={"width": 8},
                                  epochs=5, batch_size=32, optimizer="sgd", lr=0.1, schedule="none",
                                  weight_decay=0.0, device="cpu", quiet=True, tensorboard=False)


@dataclass
class Outcome:
    """What an experiment found: the numbers (flat, finite floats), whether the claim held, and the verdict line."""

    numbers: dict[str, float]
    held: bool
    verdict: str
    figures: list[str] = field(default_factory=list)  # paths relative to the output folder
    table: list[str] = field(default_factory=list)  # markdown lines
    notes: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """One training run: its per-epoch rows (the trainer's metrics.csv rows), per-step scalars, the model."""

    flags: dict[str, Any]
    rows: list[dict[str, Any]]
    steps: dict[str, list[float]]  # "loss", "acc", ... of every training step
    model: torch.nn.Module
    seconds: float
    task: Any = None
    data: Any = None

    @property
    def diverged(self) -> bool:
        return bool(self.steps["loss"]) and not math.isfinite(self.steps["loss"][-1])

    def images(self, n: int = 256, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` images of a split as the model sees them (scaled, normalized) and their labels."""
        ds = getattr(self.data, split)
        x = ds.images[:n].float() / 255  # (n, C, H, W)
        norm = self.task.normalization()
        return (norm(x) if norm is not None else x), ds.labels[:n]

    @torch.no_grad()
    def accuracy(self, split: str = "train", n: int = 2000) -> float:
        """Accuracy of the final model in eval mode (no dropout, no augmentation) on the first ``n`` images of a split."""
        x, y = self.images(n, split)
        self.model.eval()
        return float(torch.cat([self.model(b).argmax(1) for b in x.split(512)]).eq(y).float().mean())

    def series(self, key: str) -> list[float]:
        return [float(r[key]) if r.get(key) is not None else math.nan for r in self.rows]

    def last(self, key: str) -> float:
        s = self.series(key)
        return s[-1] if s else math.nan

    def best(self, key: str) -> float:
        s = [v for v in self.series(key) if math.isfinite(v)]
        return max(s) if s else math.nan


_DATA_CACHE: dict[tuple, Any] = {}  # built datasets by their data flags (a few MB each: digits, Fashion-MNIST subsets)


class Context:
    """Seeds, quick mode and the output folder of one experiment run, with the helpers every experiment uses."""

    def __init__(self, out: Path, seeds: int = 1, quick: bool = False, progress: bool = True):
        self.out = Path(out)
        self.seeds = list(range(seeds))
        self.quick = quick
        self.commands: list[str] = []
        self.runs = 0
        self._data_cache = _DATA_CACHE  # shared by the experiments of one process (lab run --all, tests)
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(desc=self.out.name, unit="run", dynamic_ncols=True, leave=False)

    def pick(self, full: Any, quick: Any) -> Any:
        """The full budget's value, or the quick one in --quick mode."""
        return quick if self.quick else full

    # ------------------------------------------------------------------ training through the engine
    def train(self, task_cls: type | None = None, note: str = "", **flags: Any) -> RunRecord:
        """One run of the classify task (or ``task_cls``) through the engine's Trainer; flags override BASE_FLAGS."""
        from cnnlab.engine.registry import get_task

        merged = dict(BASE_FLAGS)
        if self.quick:  # a smoke test of the same code path: a few hundred images
            merged.update(limit=256, limit_test=128)
        merged.update(flags)
        if "model_kwargs" in flags and flags["model_kwargs"] is not None and merged["model"] == "convnet_bn":
            merged["model_kwargs"] = {"width": 8, **flags["model_kwargs"]}
        from cnnlab.engine.tuning import build_trainer

        task_cls = task_cls or get_task(merged.get("task", "classify"))
        trainer, task, data = build_trainer(task_cls.Config(**merged), task_cls, self._data_cache)
        model = trainer.model
        steps: dict[str, list[float]] = {"loss": []}
        step = task.training_step

        def recording_step(model, batch):  # the task's own step; its scalars are also kept per step
            out = step(model, batch)
            if model.training:
                for k, v in out.items():
                    if isinstance(v, torch.Tensor) and v.ndim == 0:
                        steps.setdefault(k, []).append(float(v.detach()))
            return out

        task.training_step = recording_step
        t0 = time.perf_counter()
        try:
            trainer.fit()
        except Exception as e:  # a diverged run is a result (e.g. too high a learning rate), not a crash
            from cnnlab.errors import TrainingError

            if not isinstance(e, TrainingError):
                raise
            steps["loss"].append(math.nan)
        seconds = time.perf_counter() - t0
        self.runs += 1
        defaults = task_cls.Config()  # the command names every flag that differs from `cnnlab train`'s default
        line = self.command(**{k: v for k, v in merged.items() if getattr(defaults, k, None) != v})
        if task_cls is not get_task(merged.get("task", "classify")):  # a lab variant of the task (its own loss/loader)
            line += f"  # with {task_cls.__name__} from {task_cls.__module__} in place of the task"
        self.commands.append(line)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(note or f"{merged['model']} seed {merged.get('seed', 0)}")
        return RunRecord(merged, trainer.logger.rows, steps, model, seconds, task, data)

    def train_seeds(self, **flags: Any) -> list[RunRecord]:
        """The same run once per seed (seeds 0..n-1)."""
        return [self.train(**dict(flags, seed=s)) for s in self.seeds]

    @staticmethod
    def command(task: str = "classify", **flags: Any) -> str:
        """The `cnnlab train` line that reproduces a run (run folder and progress flags left out)."""
        parts = [f"cnnlab train {task}"]
        for k, v in flags.items():
            if k in ("quiet", "tensorboard", "device", "task", "out"):
                continue
            if k == "model_kwargs":
                parts += [f"--model-arg {a}={b}" for a, b in (v or {}).items()]
            elif isinstance(v, bool):
                parts.append(f"--{k.replace('_', '-')}" if v else "")
            elif v is not None:
                parts.append(f"--{k.replace('_', '-')} {v}")
        return " ".join(p for p in parts if p)

    # ------------------------------------------------------------------ figures
    def figure(self, name: str, ncols: int = 1, nrows: int = 1, size: tuple[float, float] | None = None):
        """A new matplotlib figure and axes; ``ctx.save(fig, name)`` writes it under plots/."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(nrows, ncols, figsize=size or (5.2 * ncols, 3.8 * nrows), squeeze=False)
        return fig, (axes[0, 0] if nrows * ncols == 1 else axes.ravel())

    def save(self, fig, name: str) -> str:
        import matplotlib.pyplot as plt

        path = self.out / "plots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return f"plots/{name}.png"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def mean(values: list[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def first_reaching(series: list[float], target: float, above: bool = True) -> float:
    """1-based index of the first value at or beyond ``target`` (len + 1 when never: a lower bound)."""
    for i, v in enumerate(series):
        if math.isfinite(v) and (v >= target if above else v <= target):
            return float(i + 1)
    return float(len(series) + 1)


def smooth(values: list[float], k: int = 10) -> list[float]:
    """Running mean over the last ``k`` values (per-step loss curves)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


def ratio_text(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b and math.isfinite(a / b) else "n/a"
