"""Load pretrained weights from a local file: a cnnlab checkpoint or a torchvision state dict.

Offline by design: you download torchvision's ``resnet18-f37072fd.pth`` (or any ``.pth``/``.pt``
state dict) once, then ``create_model("resnet18", weights="resnet18-f37072fd.pth")``.
- ``.safetensors``: a cnnlab checkpoint, the model's state-dict keys as-is.
- anything else: ``torch.load(..., weights_only=True)`` (never unpickles arbitrary objects);
  ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and DDP's ``module.`` prefix are removed.
A model with ``convert_state_dict(sd)`` maps foreign keys to its own first.

Transfer learning: when only the classifier's shapes differ (another number of classes) the
model keeps its fresh head and the report says ``head_reset``. RGB weights for a model with
another ``in_chans`` get their first conv adapted as timm does (summed over RGB for grey, tiled and
scaled by 3 / in_chans otherwise; ``input_adapted``). Any other missing, unexpected
or mis-shaped tensor raises ModelError naming it: silently half-loaded weights are worse than none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ModelError

# BatchNorm's step counter: absent from old checkpoints and irrelevant to the forward pass.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, by name; ModelError naming the file if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} not found; pass the path of a .safetensors or .pth file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # SafetensorError, OSError, ... all mean "not a usable file"
            raise ModelError(f"weights file {path} is not a readable safetensors file ({_short(e)}); re-save or re-download it") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # corrupt zip, truncated pickle, or a pickle with arbitrary objects
            raise ModelError(f"weights file {path} is not a readable torch state dict ({_short(e)}); re-save it with torch.save(model.state_dict())") from None
    return _unwrap(obj, path)


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"weights file {path} holds no state dict (found {type(obj).__name__}); save model.state_dict()")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"weights file {path}: entry {bad[0]!r} is not a tensor; save model.state_dict()")
    if all(k.startswith("module.") for k in obj):  # saved from a DistributedDataParallel wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's final layer (``get_classifier()``) and of any auxiliary classifiers."""
    heads = [model.get_classifier()] if hasattr(model, "get_classifier") else []
    heads += model.aux_classifiers() if hasattr(model, "aux_classifiers") else []
    keys: set[str] = set()
    for prefix, module in model.named_modules():
        if any(module is h for h in heads):
            keys |= {f"{prefix}.{k}" if prefix else k for k in module.state_dict()}
    return keys


def adapt_input_conv(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RGB weights for a model with another number of input channels: the first conv's kernel summed over
    RGB for grey input (a grey image is R = G = B, so the response is the same), or the RGB kernel tiled and
    scaled by 3 / in_chans for more channels (timm's adapt_input_conv)."""
    first = next((k for k, v in own.items() if v.ndim == 4), None)
    if first is None or first not in state:
        return state
    w, want = state[first], own[first]
    if w.shape == want.shape or w.shape[0] != want.shape[0] or w.shape[2:] != want.shape[2:] or w.shape[1] != 3:
        return state
    c = want.shape[1]
    if c == 1:
        w = w.sum(1, keepdim=True)
    else:
        w = w.repeat(1, (c + 2) // 3, 1, 1)[:, :c] * (3 / c)
    return dict(state, **{first: w})


def load_weights(model: nn.Module, path: str | Path, *, reset_head_on_mismatch: bool = True) -> dict[str, Any]:
    """Load ``path`` into ``model`` in place.

    Returns {"loaded": tensors loaded, "head_reset": bool, "input_adapted": bool (RGB first conv summed or
    tiled for the model's in_chans), "path": str}."""
    state = read_state_dict(path)
    if hasattr(model, "convert_state_dict"):
        state = model.convert_state_dict(state)
    own = model.state_dict()
    head = classifier_keys(model)
    adapted = adapt_input_conv(state, own)
    input_adapted, state = adapted is not state, adapted

    unexpected = sorted(k for k in state if k not in own)
    if unexpected:
        raise ModelError(f"weights file {path} has tensor {unexpected[0]!r} {tuple(state[unexpected[0]].shape)} "
                         f"that {type(model).__name__} does not have ({len(unexpected)} unexpected); is it for another model?")
    missing = sorted(k for k in own if k not in state and k not in head and not k.endswith(OPTIONAL_SUFFIXES))
    if missing:
        raise ModelError(f"weights file {path} lacks tensor {missing[0]!r} {tuple(own[missing[0]].shape)} "
                         f"({len(missing)} missing); is it for another model?")
    first = next((k for k, v in own.items() if v.ndim == 4), None)
    for k, v in state.items():
        if (k == first and v.shape != own[k].shape and v.shape[0] == own[k].shape[0] and v.shape[2:] == own[k].shape[2:]
                and v.shape[1] in (1, 3)):
            raise ModelError(f"weights file {path}: tensor {k!r} has shape {tuple(v.shape)} but the model expects "
                             f"{tuple(own[k].shape)}: the weights are for {'grey' if v.shape[1] == 1 else 'RGB'} images; "
                             f"pass --channels {v.shape[1]}")
        if v.shape != own[k].shape and k not in head:
            raise ModelError(f"weights file {path}: tensor {k!r} has shape {tuple(v.shape)} but the model expects "
                             f"{tuple(own[k].shape)}; build the model with the options the weights were trained with")

    head_reset = any(k not in state or state[k].shape != own[k].shape for k in head)
    if head_reset:
        if not reset_head_on_mismatch:
            k = next(k for k in sorted(head) if k not in state or state[k].shape != own[k].shape)
            found = tuple(state[k].shape) if k in state else "nothing"
            raise ModelError(f"weights file {path}: classifier tensor {k!r} is {found} but the model expects "
                             f"{tuple(own[k].shape)}; pass the num_classes the weights were trained with")
        state = {k: v for k, v in state.items() if k not in head}
    model.load_state_dict(state, strict=False)
    return {"loaded": len(state), "head_reset": head_reset, "input_adapted": input_adapted, "path": str(path)}
