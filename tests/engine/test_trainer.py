"""The trainer on tiny data: learning, exact resume, interruption, non-finite losses."""

import json

import pytest
import torch

from cnnlab.engine import checkpoint as ckpt
from cnnlab.tasks.classify import ClassifyConfig as TrainConfig
from cnnlab.engine.run import read_config
from cnnlab.engine.trainer import Trainer
from cnnlab.errors import TrainingError
from cnnlab.tasks.classify import Classify
from cnnlab.engine.pipeline import train as train_classifier


def small_cfg(tmp_path, name="run", **kw):
    base = dict(data="digits", model="lenet5", epochs=3, batch_size=64, limit=600, limit_test=200, quiet=True,
                tensorboard=False, threads=1, out=str(tmp_path / name), seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_and_writes_the_run_folder(tmp_path):
    run_dir, result, summary = train_classifier(small_cfg(tmp_path, epochs=4, optimizer="adam", lr=3e-3, tensorboard=True,
                                                          init="he"))
    assert result.status == "finished" and result.epochs_done == 4
    assert summary["test_acc"] > 0.8  # digits: chance is 0.1
    for f in ["config.json", "metrics.csv", "summary.json", "checkpoints/best.safetensors", "checkpoints/best.json",
              "checkpoints/last.safetensors", "checkpoints/train_state.json", "plots/curves.png", "plots/confusion.png",
              "plots/predictions.png", "plots/lr.png"]:
        assert (run_dir / f).is_file(), f
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch,")
    meta = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert meta["classes"] == [str(i) for i in range(10)] and meta["normalization"]["mode"] == "channel"
    assert read_config(run_dir).optimizer == "adam" and read_config(run_dir).init == "he"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))  # TensorBoard is installed with the test extras


def test_lsuv_init_trains(tmp_path):
    """--init lsuv runs on the run's normalized training images and the net still learns."""
    _, result, summary = train_classifier(small_cfg(tmp_path, epochs=2, optimizer="adam", lr=3e-3, init="lsuv"))
    assert result.status == "finished" and summary["test_acc"] > 0.7


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    kw = dict(epochs=3, deterministic=True, augment="hflip,crop=2", drop_rate=0.2, ema=0.9, schedule="onecycle")
    _, full, _ = train_classifier(small_cfg(tmp_path, "full", **kw))
    assert full.status == "finished"
    run_dir, part, _ = train_classifier(small_cfg(tmp_path, "part", stop_after=1, **kw))
    assert part.status == "interrupted" and part.epochs_done == 1
    cfg = read_config(run_dir)
    cfg.stop_after = None
    _, resumed, _ = train_classifier(cfg, resume=run_dir)
    assert resumed.status == "finished"
    a = ckpt.load_tensors(tmp_path / "full" / "checkpoints" / "last.safetensors")
    b = ckpt.load_tensors(run_dir / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]


class _Loader:
    def __init__(self, n_batches=6, bs=8):
        g = torch.Generator().manual_seed(0)
        self.batches = [{"images": torch.randn(bs, 1, 12, 12, generator=g), "labels": torch.randint(0, 3, (bs,), generator=g)}
                        for _ in range(n_batches)]

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def _real_loader():
    """cnnlab's in-memory loader with augmentation: 48 images, 6 batches per epoch."""
    from cnnlab.data.augment import BatchAugment, parse_augment
    from cnnlab.data.datasets import ArrayDataset
    from cnnlab.data.loaders import InMemoryLoader

    g = torch.Generator().manual_seed(0)
    ds = ArrayDataset(torch.randint(0, 256, (48, 1, 12, 12), dtype=torch.uint8, generator=g),
                      torch.randint(0, 3, (48,), generator=g), ["a", "b", "c"])
    return InMemoryLoader(ds, 8, shuffle=True, augment=BatchAugment(parse_augment("hflip,crop=2")), seed=3)


META = {"num_classes": 3, "classes": ["a", "b", "c"]}


def _trainer(tmp_path, task_cls=Classify, real_loader=False, **kw):
    torch.manual_seed(0)
    kw.setdefault("lr", 0.05)
    cfg = TrainConfig(epochs=2, quiet=True, tensorboard=False, **kw).resolved()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 3))
    train = _real_loader() if real_loader else _Loader()
    task = task_cls(cfg, META)
    t = Trainer(cfg, model, task, train, _Loader(2), tmp_path, {"model": "x"}, torch.device("cpu"))
    t.task_instance = task
    return t


@pytest.mark.parametrize("real_loader", [False, True])
def test_interrupt_mid_epoch_then_resume_matches(tmp_path, real_loader):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    ref = _trainer(tmp_path / "a", real_loader=real_loader)
    ref.fit()
    t = _trainer(tmp_path / "b", real_loader=real_loader)
    step = t.optimizer.step

    def stop_at_4(*a, **k):  # Ctrl-C arrives during step 4: it finishes, then the trainer saves and stops
        out = step(*a, **k)
        if t.global_step == 3:
            t._stop = True
        return out

    t.optimizer.step = stop_at_4
    result = t.fit()
    assert result.status == "interrupted" and t.step_in_epoch == 4
    meta = json.loads((tmp_path / "b" / "checkpoints" / "last.json").read_text())
    assert meta["interrupted"] is True
    t2 = _trainer(tmp_path / "b", real_loader=real_loader)
    t2.load_state(tmp_path / "b")
    assert (t2.epoch, t2.step_in_epoch, t2.global_step) == (0, 4, 4)
    t2.fit()
    for (k, v), (_, w) in zip(ref.model.state_dict().items(), t2.model.state_dict().items()):
        assert torch.equal(v, w), k


def _csv_rows(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_resumed_epoch_logs_the_means_of_the_whole_epoch(tmp_path):
    """Interrupted at step 4 of 6: the resumed epoch's train_loss/train_acc in metrics.csv average all 6 steps,
    exactly as the uninterrupted run's do, not only the 2 steps after the resume."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    ref = _trainer(tmp_path / "a")
    ref.fit()
    t = _trainer(tmp_path / "b")
    step = t.optimizer.step

    def stop_at_4(*a, **k):
        out = step(*a, **k)
        if t.global_step == 3:
            t._stop = True
        return out

    t.optimizer.step = stop_at_4
    assert t.fit().status == "interrupted"
    t2 = _trainer(tmp_path / "b")
    t2.load_state(tmp_path / "b")
    t2.fit()
    want, got = _csv_rows(tmp_path / "a" / "metrics.csv"), _csv_rows(tmp_path / "b" / "metrics.csv")
    assert [r["epoch"] for r in got] == ["1", "2"]
    for a, b in zip(want, got):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-9, abs=1e-12), (a["epoch"], key)


class _NaNAtStep3(Classify):
    calls = 0

    def training_step(self, model, batch):
        out = super().training_step(model, batch)
        type(self).calls += 1
        if type(self).calls == 3:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nonfinite_loss_stops_naming_the_step(tmp_path):
    _NaNAtStep3.calls = 0
    t = _trainer(tmp_path, task_cls=_NaNAtStep3)
    with pytest.raises(TrainingError, match="epoch 1, step 3"):
        t.fit()


def test_nonfinite_batches_can_be_skipped(tmp_path):
    _NaNAtStep3.calls = 0
    t = _trainer(tmp_path, task_cls=_NaNAtStep3, skip_nonfinite=True)
    result = t.fit()
    assert result.status == "finished" and result.skipped_batches == 1
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    assert "skipped_batches" in (tmp_path / "metrics.csv").read_text()


def test_lbfgs_full_batch_reduces_the_loss(tmp_path):
    t = _trainer(tmp_path, optimizer="lbfgs", weight_decay=0.0, lr=1.0)
    t.fit()
    rows = t.logger.rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] or rows[0]["train_loss"] < 0.5
    assert t.global_step == 2  # one L-BFGS step per epoch


class _RecordDtypes(Classify):
    """Records the dtype of the logits each training and validation step computes."""

    train_dtypes: set = set()
    eval_dtypes: set = set()

    def training_step(self, model, batch):
        out = super().training_step(model, batch)
        self.train_dtypes.add(model(batch["images"]).dtype)
        assert out["loss"].dtype == torch.float32  # the loss is computed in fp32 under autocast
        return out

    def validation_step(self, model, batch):
        out = super().validation_step(model, batch)
        self.eval_dtypes.add(model(batch["images"]).dtype)
        return out


@pytest.mark.parametrize("precision,train_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_bf16_autocasts_the_training_forward_only(tmp_path, precision, train_dtype):
    _RecordDtypes.train_dtypes, _RecordDtypes.eval_dtypes = set(), set()
    task = _RecordDtypes
    t = _trainer(tmp_path, task_cls=task, precision=precision)
    before = [p.detach().clone() for p in t.model.parameters()]
    t.fit()
    assert task.train_dtypes == {train_dtype}
    assert task.eval_dtypes == {torch.float32}  # evaluation measures the fp32 weights as they are
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in t.model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, t.model.parameters()))


def test_bf16_training_learns_like_fp32(tmp_path):
    """LeNet-5 on digits: bf16 autocast reaches an accuracy close to fp32's."""
    acc = {}
    for precision in ("fp32", "bf16"):
        _, result, summary = train_classifier(small_cfg(tmp_path, precision, epochs=4, optimizer="adam", lr=3e-3,
                                                        precision=precision))
        assert result.status == "finished" and read_config(tmp_path / precision).precision == precision
        acc[precision] = summary["test_acc"]
    assert acc["bf16"] > 0.8 and abs(acc["bf16"] - acc["fp32"]) < 0.08, acc


def test_precision_note_only_for_bf16_on_cpus_without_bf16_units(monkeypatch):
    from cnnlab.engine import run

    assert run.precision_note("fp32", torch.device("cpu")) is None
    assert run.precision_note("bf16", torch.device("cuda")) is None
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert "may run slower than --precision fp32" in run.precision_note("bf16", torch.device("cpu"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert run.precision_note("bf16", torch.device("cpu")) is None


def test_precision_auto_is_bf16_only_where_native(monkeypatch, tmp_path):
    from cnnlab.engine import run
    from cnnlab.engine.recipes import RECIPES

    assert run.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert run.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert run.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert run.resolve_precision("bf16", torch.device("cpu")) == "bf16"  # asked for explicitly: kept (with a note)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert run.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert all(r["precision"] == "auto" for r in RECIPES.values())  # the recipes never run emulated bf16
