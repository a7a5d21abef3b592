"""The task platform: a new task is one class; the trainer knows only the protocol."""

import csv
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from cnnlab.engine.config import TrainConfig, opt
from cnnlab.engine.trainer import Trainer, to_device
from cnnlab.errors import ConfigError
from cnnlab.tasks import get_task, list_tasks, register_task
from cnnlab.tasks.base import DataBundle, Evaluator, Task


class _Points(torch.utils.data.Dataset):
    """y = 2x + 1 with noise: items are dicts."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, generator=g)
        self.y = 2 * self.x + 1 + 0.01 * torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"images": self.x[i], "targets": self.y[i], "extra": [{"id": i}]}


@dataclass
class RegressConfig(TrainConfig):
    data: str = opt("points", "toy data", group="data")
    model: str = opt("none", "unused", group="model")
    noise: float = opt(0.0, "an option of this task only", group="data", min=0)


@register_task
class Regress(Task):
    """A toy task written as a user would: a Config, data, a model, two steps, an evaluator."""

    name = "toy-regress"
    Config = RegressConfig
    monitor, mode = "mse", "min"
    progress_keys = ("loss", "mae")

    def build_data(self, cfg):
        return DataBundle(_Points(64, 0), _Points(32, 1), _Points(32, 2), {"dims": 1}, "points")

    def create_network(self, meta):
        return nn.Linear(meta["dims"], 1)

    def build_model(self, cfg, data, *, resume=False):
        return self.create_network(self.meta)

    def training_step(self, model, batch):
        pred = model(batch["images"])
        assert isinstance(batch["extra"], list) and isinstance(batch["extra"][0], list)  # lists of dicts travel as lists
        return {"loss": ((pred - batch["targets"]) ** 2).mean(), "mae": (pred - batch["targets"]).abs().mean().detach()}

    def validation_step(self, model, batch):
        pred = model(batch["images"])
        return {"mse_sum": ((pred - batch["targets"]) ** 2).sum(), "loss_sum": ((pred - batch["targets"]) ** 2).sum(),
                "n": len(pred)}


def test_a_new_task_trains_through_the_one_pipeline(tmp_path):
    from cnnlab.engine.pipeline import train

    assert "toy-regress" in list_tasks() and get_task("toy-regress") is Regress
    cfg = RegressConfig(task="toy-regress", epochs=12, batch_size=8, optimizer="adam", lr=0.2, weight_decay=0.0,
                        out=str(tmp_path / "run"), quiet=True, tensorboard=False)
    run_dir, result, summary = train(cfg)
    assert result.status == "finished"
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert {"train_loss", "train_mae", "val_mse", "val_loss"} <= set(rows[0])  # the union of logged keys, none dropped
    assert float(rows[-1]["val_mse"]) < float(rows[0]["val_mse"])
    assert summary["eval_split"] == "test" and summary["mse"] == summary["test_mse"] < 0.5
    best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert best["monitor"] == "mse" and best["mode"] == "min"
    assert best["epoch"] == min(range(1, 13), key=lambda e: float(rows[e - 1]["val_mse"]))


def test_plain_dataloader_and_dict_batches(tmp_path):
    cfg = RegressConfig(task="toy-regress", epochs=2, batch_size=8, lr=0.05, quiet=True, tensorboard=False).resolved()
    task = Regress(cfg, {"dims": 1})
    data = task.build_data(cfg)
    collate = lambda items: {"images": torch.stack([i["images"] for i in items]),  # noqa: E731
                             "targets": torch.stack([i["targets"] for i in items]), "extra": [i["extra"] for i in items]}
    train = torch.utils.data.DataLoader(data.train, batch_size=8, collate_fn=collate)
    val = torch.utils.data.DataLoader(data.val, batch_size=8, collate_fn=collate)
    t = Trainer(cfg, nn.Linear(1, 1), task, train, val, tmp_path, {"model": "linear"}, torch.device("cpu"))
    assert t.fit().status == "finished" and len(t.logger.rows) == 2


def test_to_device_maps_nested_dicts_and_lists():
    batch = {"images": [torch.zeros(3, 4, 4)], "targets": [{"boxes": torch.zeros(2, 4), "image_id": 7}], "n": 3}
    out = to_device(batch, torch.device("meta"))
    assert out["images"][0].device.type == "meta" and out["targets"][0]["boxes"].device.type == "meta"
    assert out["targets"][0]["image_id"] == 7 and out["n"] == 3


def test_evaluator_sums_and_divides():
    ev = Evaluator()
    ev.update({"loss_sum": torch.tensor(4.0), "n": 2})
    ev.update({"loss_sum": torch.tensor(2.0), "n": 4})
    assert ev.compute() == {"loss": 1.0, "count": 6}
    ev.reset()
    assert ev.compute() == {"count": 0}


@pytest.mark.parametrize("changes,flag", [
    (dict(lr=float("inf")), "--lr"), (dict(weight_decay=float("nan")), "--weight-decay"),
    (dict(gamma=-0.5), "--gamma"), (dict(step_size=0.0), "--step-size"), (dict(threads=-1), "--threads"),
    (dict(momentum=-1.0), "--momentum"), (dict(optimizer="nesterov", momentum=0.0), "--momentum"),
    (dict(warmup_epochs=float("nan")), "--warmup-epochs"), (dict(init_std=float("nan")), "--init-std"),
    (dict(decay_k=-2.0), "--decay-k"), (dict(model_kwargs={"num_classes": 5}), "num_classes"),
    (dict(epochs=0), "--epochs"), (dict(lr="fast"), "--lr"), (dict(ema=1.0), "--ema"),
])
def test_every_numeric_setting_is_checked_with_its_rule(changes, flag):
    from cnnlab.tasks.classify import ClassifyConfig

    with pytest.raises(ConfigError, match=flag):
        ClassifyConfig(**changes).validate()


def test_frozen_batch_norm_stays_in_eval_mode():
    from cnnlab.engine.transfer import freeze_stages, train_mode
    from cnnlab.models import create_model

    model = create_model("resnet20", num_classes=3, in_chans=1)
    freeze_stages(model, 2)
    frozen = [m for s in model.stages()[:2] for m in s.modules() if isinstance(m, nn.BatchNorm2d)]
    free = [m for s in model.stages()[2:] for m in s.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in frozen]
    train_mode(model)
    model(torch.randn(4, 1, 32, 32) * 3 + 1)
    assert frozen and all(not m.training for m in frozen) and all(m.training for m in free)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, frozen))  # source statistics kept
    assert all(not p.requires_grad for s in model.stages()[:2] for p in s.parameters())
