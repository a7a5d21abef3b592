"""Starting a model: weight initialization, pretrained weights, frozen stages.

Frozen stages stop their gradients *and* keep their batch norm in eval mode (running
statistics of the source data, never updated), as Keras and timm's FrozenBatchNorm do: in
train mode a frozen BN would normalize with the new data's batch statistics in training and
with the source statistics in evaluation, and the two disagree.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cnnlab.errors import ConfigError

FROZEN = "_cnnlab_frozen"


def init_and_load(model: nn.Module, cfg, *, head_used: bool = True) -> None:
    """--init by name (lsuv needs data and is applied by its task), then --weights.

    ``head_used`` False: ``model`` is the backbone of a task head (detection, segmentation, captions, ...),
    whose own classifier is never run, so a reset classifier is not worth a note."""
    if cfg.init not in ("default", "lsuv"):
        from cnnlab.nn.init import init_weights

        init_weights(model, cfg.init, std=cfg.init_std)
    if cfg.weights:
        from cnnlab.models.weights import load_weights

        report = load_weights(model, resolve_weights(cfg.weights, cfg.model))
        notes = [n for n, on in (("new classifier head for this data's classes", head_used and report.get("head_reset")),
                                 (_adapted_note(model), report.get("input_adapted"))) if on]
        print(f"loaded {cfg.weights}" + (f" ({'; '.join(notes)})" if notes else ""))


def _adapted_note(model: nn.Module) -> str:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    c = conv.in_channels if conv is not None else 0
    return ("RGB first conv summed over R, G, B for grey input" if c == 1 else
            f"RGB first conv tiled to {c} input channels")


def resolve_weights(spec: str, model: str) -> str:
    """A name (imagenet) resolves to its local file; a run folder stands for its best checkpoint; a file is itself."""
    from cnnlab.models.pretrained import is_named, resolve_pretrained

    if is_named(model, spec):
        return str(resolve_pretrained(model, spec))
    path = Path(spec)
    if path.is_dir():
        from cnnlab.engine.checkpoint import find_checkpoint

        return str(find_checkpoint(path, "best"))
    return spec


def freeze_stages(model: nn.Module, n: int) -> None:
    """Stop gradients in the first ``n`` stages and mark their batch norms to stay in eval mode."""
    stages = model.stages() if hasattr(model, "stages") else []
    if n > len(stages):
        raise ConfigError(f"--freeze {n}: model has only {len(stages)} stages to freeze")
    for stage in stages[:n]:
        for p in stage.parameters():
            p.requires_grad_(False)
        for m in stage.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                setattr(m, FROZEN, True)
                m.eval()


def train_mode(model: nn.Module) -> None:
    """model.train(), except frozen batch norms, which stay in eval mode."""
    model.train()
    for m in model.modules():
        if getattr(m, FROZEN, False):
            m.eval()


__all__ = ["init_and_load", "freeze_stages", "train_mode", "resolve_weights"]
