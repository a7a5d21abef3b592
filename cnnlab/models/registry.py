"""The model registry: every architecture is a builder function registered by name.

    @register_model
    def lenet5(num_classes: int = 10, in_chans: int = 3, img_size: int = 32) -> nn.Module: ...

    model = create_model("lenet5", num_classes=10, in_chans=1, img_size=28)

Builders take explicit keyword arguments. ``create_model`` forwards only the
arguments a builder accepts for the generic ones (``img_size``, ``drop_rate``),
so a task can pass what it knows about the data to any model.
"""

from __future__ import annotations

import fnmatch
import inspect
from pathlib import Path
from typing import Callable

from torch import nn

from cnnlab.errors import ModelError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# Keyword arguments every task may pass; a builder that does not take one ignores it.
_OPTIONAL_KWARGS = ("img_size", "drop_rate")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model builder under its function name."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by a glob pattern ("resnet*")."""
    _import_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    _import_families()
    if name not in _REGISTRY:
        close = [n for n in _REGISTRY if n.startswith(name[:3])][:6]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ModelError(f"unknown model {name!r}{hint}; run `cnnlab models` to list them")
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    weights: str | Path | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model; ``weights`` loads a cnnlab checkpoint, a torchvision state dict, or named
    weights ("imagenet" for mobilenet_v2, resolved offline: see pretrained.py)."""
    builder = get_model_builder(name)
    if "pretrained" in kwargs:
        from cnnlab.models.pretrained import list_pretrained, names_for

        named = names_for(name)
        hint = f"weights={named[0]!r} (or a file path)" if named else f"weights=PATH (named weights: {', '.join(list_pretrained())})"
        raise ModelError(f"create_model({name!r}) has no pretrained= option: use {hint}")
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in _OPTIONAL_KWARGS:
        if key in kwargs and key not in params and not takes_any:
            kwargs.pop(key)
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        raise ModelError(f"model {name!r} has no option {unknown[0]!r}; it takes: {', '.join(p for p in params)}")
    try:
        model = builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except (ValueError, TypeError, RuntimeError) as e:  # impossible architecture settings (width=-4, ...)
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in _OPTIONAL_KWARGS)
        raise ModelError(f"cannot build {name!r}" + (f" with {given}" if given else "") + f": {e}") from None
    if weights is not None:
        from cnnlab.models.pretrained import resolve_weights
        from cnnlab.models.weights import load_weights

        load_weights(model, resolve_weights(name, weights))  # a name ("imagenet") -> its local file
    return model


def _import_families() -> None:
    import cnnlab.models  # noqa: F401  (importing the package registers every family)
