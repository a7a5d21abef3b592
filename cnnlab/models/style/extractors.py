"""Feature extractors for style transfer: named layers of a frozen network, on RGB pixels in [0, 1].

    ext = get_extractor("vgg16_hed")          # or "mobilenet_v2", or a run folder of `cnnlab train classify`
    feats = ext(x01, ["relu4_2", "relu1_1"])  # {"relu4_2": (B, 512, H/8, W/8), "relu1_1": (B, 64, H, W)}

The extractor normalizes pixels the way its network was trained (VGG/HED: BGR 0-255 minus the Caffe mean;
mobilenet_v2: ImageNet mean/std; a run folder: its stored statistics) and stops the forward pass once the
last requested layer has been computed (the deeper layers cost time and are not needed). Layer names are
``model.named_modules()`` names; VGG also takes the paper's names (conv1_1, relu1_1, pool1, ...).
Each extractor carries its default content/style layers and loss weights, chosen so that `cnnlab stylize`
works with no flags (docs/style.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from cnnlab.errors import ConfigError


class _Stop(Exception):
    """Raised by a hook once every requested layer is recorded: the rest of the forward pass is skipped."""


class FeatureExtractor(nn.Module):
    """``ext(x01, layers) -> {layer: features}``: a frozen network, its input normalization, layer aliases."""

    def __init__(self, net: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], *, name: str,
                 content_layer: str, style_layers: Sequence[str], content_weight: float, style_weight: float,
                 tv_weight: float, aliases: dict[str, str] | None = None, in_chans: int = 3):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.normalize = normalize
        self.name = name
        self.aliases = dict(aliases or {})
        self.in_chans = in_chans
        self.content_layer, self.style_layers = content_layer, list(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self._modules_by_name = dict(net.named_modules())
        for layer in [content_layer, *style_layers]:
            self.module_name(layer)

    def train(self, mode: bool = True):  # the network stays in eval mode (frozen batch norm) whatever the caller does
        super().train(mode)
        self.net.eval()
        return self

    def module_name(self, layer: str) -> str:
        """A layer name (or alias) -> the module's name; one-line error listing some valid names."""
        name = self.aliases.get(layer, layer)
        if name and name in self._modules_by_name:
            return name
        some = list(self.aliases)[:8] or [n for n in self._modules_by_name if n][:8]
        raise ConfigError(f"layer {layer!r} is not in the {self.name} extractor; valid names include {', '.join(some)}, ...")

    def forward(self, x01: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        if x01.ndim != 4 or x01.shape[1] != 3:
            raise ConfigError(f"the extractor takes RGB images (B, 3, H, W) in [0, 1], got shape {tuple(x01.shape)}")
        x = x01.mean(1, keepdim=True) if self.in_chans == 1 else x01  # grey networks see the luminance
        wanted = {self.module_name(n): n for n in layers}
        out: dict[str, torch.Tensor] = {}

        def hook(module_name: str):
            def record(_m, _inp, y):
                out[wanted[module_name]] = y[0] if isinstance(y, (tuple, list)) else y
                if len(out) == len(wanted):
                    raise _Stop
            return record

        handles = [self._modules_by_name[m].register_forward_hook(hook(m)) for m in wanted]
        try:
            self.net(self.normalize(x))
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in layers if n not in out]
        if missing:
            raise ConfigError(f"layer {missing[0]!r} of the {self.name} extractor never ran in the forward pass; pick another")
        return out


# ---------------------------------------------------------------------------- the three kinds
VGG_CONTENT = "relu4_2"  # Gatys et al.
VGG_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
MOBILENET_CONTENT = "features.10"  # stride 16, 64 channels
MOBILENET_STYLE = ("features.1", "features.3", "features.6", "features.10", "features.13")  # strides 2, 4, 8, 16, 16


def vgg16_hed_extractor(weights: str | Path | None = None, pool: str = "max") -> FeatureExtractor:
    from cnnlab.models.style.vgg_hed import bgr_caffe, layer_names, vgg16_hed

    net = vgg16_hed(weights, pool=pool)
    aliases = {k: f"features.{i}" for k, i in layer_names().items()}
    return FeatureExtractor(net, bgr_caffe, name="vgg16_hed", aliases=aliases, content_layer=VGG_CONTENT,
                            style_layers=VGG_STYLE, content_weight=1.0, style_weight=1e-2, tv_weight=1e2)


def mobilenet_v2_extractor() -> FeatureExtractor:
    from cnnlab.models import create_model
    from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD

    net = create_model("mobilenet_v2", weights="imagenet")
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return FeatureExtractor(net, lambda x: (x - mean.to(x)) / std.to(x), name="mobilenet_v2",
                            content_layer=MOBILENET_CONTENT, style_layers=MOBILENET_STYLE, content_weight=1.0,
                            style_weight=30.0, tv_weight=0.05)


def run_extractor(run_dir: str | Path) -> FeatureExtractor:
    """The network of an image-classifier run folder; style layers = its feature stages, content = the middle one."""
    from cnnlab.engine.evaluate import load_task

    task, model, meta, _ = load_task(run_dir)
    if task.name != "classify" or meta.get("on_features"):
        raise ConfigError(f"{run_dir}: a style extractor must be an image classifier run (this is a {task.name} run)")
    norm = task.normalization() or (lambda x: x)
    stages = [f["module"] for f in getattr(model, "feature_info", [])] or [n for n, m in model.named_modules()
                                                                            if isinstance(m, nn.Conv2d)]
    if not stages:
        raise ConfigError(f"{run_dir}: its model has no convolutional layers to take style from")
    return FeatureExtractor(model, norm, name=str(run_dir), content_layer=stages[len(stages) // 2],
                            style_layers=stages, content_weight=1.0, style_weight=30.0, tv_weight=0.05,
                            in_chans=int(meta.get("in_chans", 3)))


EXTRACTORS = ("vgg16_hed", "mobilenet_v2")


def get_extractor(name: str, weights: str | Path | None = None) -> FeatureExtractor:
    """vgg16_hed (``weights``: an explicit HED .h5 / converted .safetensors), mobilenet_v2, or a run folder."""
    if name == "vgg16_hed":
        return vgg16_hed_extractor(weights)
    if name == "mobilenet_v2":
        return mobilenet_v2_extractor()
    if Path(name).is_dir():
        return run_extractor(name)
    raise ConfigError(f"--extractor {name!r}: choose vgg16_hed, mobilenet_v2 or a run folder of `cnnlab train classify`")
