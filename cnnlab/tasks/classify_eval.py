"""Ensembles of classifiers: average the class probabilities of several runs (or one run's snapshots).

Each member is evaluated with the same test-time augmentation as the ensemble (``tta_probs``,
the one implementation every classification evaluation uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cnnlab.engine import checkpoint as ckpt
from cnnlab.errors import CheckpointError
from cnnlab.metrics.classification import ClassificationMetrics
from cnnlab.tasks.classify import tta_probs


@torch.no_grad()
def split_probs(task, model: torch.nn.Module, dataset, bundle, tta: str, desc: str = "evaluate") -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, K), labels (N,)) of a model on a dataset split."""
    loader = task.eval_loader(task.cfg, bundle, dataset)
    probs, labels = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        probs.append(tta_probs(model, batch["images"], tta))
        labels.append(batch["labels"])
    return torch.cat(probs), torch.cat(labels)


def metrics_from_probs(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    m = ClassificationMetrics(probs.shape[1])
    logp = probs.clamp_min(1e-12).log()
    m.update(logp, labels, F.nll_loss(logp, labels, reduction="sum"))
    return m.compute()


def ensemble_members(run_dirs: Sequence[str | Path]) -> list[tuple[str, Path, Path]]:
    """(label, run folder, checkpoint) of each member: several runs' best checkpoints, or one run's snapshots."""
    if len(run_dirs) == 1:
        snaps = sorted((Path(run_dirs[0]) / "checkpoints").glob("snapshot-epoch*.safetensors"))
        if len(snaps) < 2:
            raise CheckpointError(f"{run_dirs[0]} has {len(snaps)} snapshots; train with --snapshots, or pass several run folders")
        return [(f"{Path(run_dirs[0]).name}:{s.stem}", Path(run_dirs[0]), s) for s in snaps]
    return [(str(r), Path(r), ckpt.find_checkpoint(r, "best")) for r in run_dirs]


def _member(run_dir: Path, path: Path):
    from cnnlab.engine.run import read_config
    from cnnlab.tasks import get_task

    meta = ckpt.read_json(path.with_suffix(".json"))
    if meta.get("task", "classify") != "classify":
        raise CheckpointError(f"{run_dir} is a {meta.get('task')} run; an ensemble averages classifiers")
    task = get_task("classify")(read_config(run_dir), meta)
    model = task.create_network(meta)
    ckpt.load_weights_into(model, ckpt.load_tensors(path), path)
    return task, model.eval(), meta


def evaluate_ensemble(run_dirs: Sequence[str | Path], tta: str | None = None, split: str | None = None) -> dict[str, Any]:
    """Each member's accuracy and the accuracy of their averaged softmax outputs (``tta``: default the first run's)."""
    members = ensemble_members(run_dirs)
    loaded = [(label, *_member(run_dir, path)) for label, run_dir, path in members]
    meta0 = loaded[0][3]
    for label, _, _, meta in loaded[1:]:
        if meta["classes"] != meta0["classes"]:
            raise CheckpointError(f"{label} was trained on other classes than {members[0][0]}; an ensemble needs the same classes")
    # the split of the first member trained on images (a head trained --on-features takes images too), else features
    first = next((m for m in loaded if not m[3].get("on_features")), loaded[0])
    tta = tta or loaded[0][1].cfg.eval_tta
    data = first[1].eval_data(first[1].cfg, split)
    results, total, labels = [], None, None
    for label, task, model, meta in loaded:
        probs, labels = split_probs(task, model, data[0], data[2], tta, desc=label[-30:])
        results.append({"member": label, "acc": metrics_from_probs(probs, labels)["acc"]})
        total = probs if total is None else total + probs
    ens = metrics_from_probs(total / len(members), labels)
    return {"members": results, "ensemble_acc": ens["acc"], "ensemble_top5": ens.get("top5"), "split": split, "tta": tta}
