"""What every explanation method shares: the network to explain, its pixels, its layers, and figures.

A ``Subject`` is a classifier in eval mode plus what turns pixels into its input. Every method works in
*pixel space*: images are float ``(B, C, H, W)`` in [0, 1], and ``subject(x)`` normalizes them the way
the network was trained (a run folder's stored statistics, or ImageNet's mean and std), so gradients,
occluders (grey 0.5) and generated images all live where a person can look at them.

    subject = from_pretrained("mobilenet_v2", "imagenet")      # or from_run("runs/classify-...")
    x = subject.load("coffee.jpg")                              # (1, 3, 224, 224) in [0, 1]
    layer = get_layer(subject.model, "features.18")             # one-line error listing valid names
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError, DataError


@dataclass
class Subject:
    """A classifier to explain: ``subject(x01) -> logits`` with x01 float (B, C, H, W) in [0, 1]."""

    model: nn.Module
    classes: list[str]
    size: tuple[int, int]  # (H, W) the network's input size
    in_chans: int
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None  # None: the network takes [0, 1] pixels
    name: str = "model"
    loader: Callable[[str], torch.Tensor] | None = field(default=None, repr=False)  # path -> uint8 (C, H, W)

    def __post_init__(self):
        self.normalize = self.normalize or _identity
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)  # we differentiate with respect to pixels only

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))  # (B, K)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self(x).softmax(1)

    def load(self, path: str | Path) -> torch.Tensor:
        """An image file as (1, C, H, W) float in [0, 1], resized and cropped like the network's inputs."""
        if self.loader is not None:
            img = self.loader(str(path))
        else:
            from cnnlab.data.images import load_image

            img = load_image(path, channels=self.in_chans, size=self.size)
        return (img.float() / 255)[None]

    def target_index(self, target: str | int | None, x: torch.Tensor | None = None) -> int:
        """--target as a class index: a name, an index, or (None) the network's top class for x."""
        if target is None:
            if x is None:
                raise ConfigError("--target is needed here (a class name or index)")
            return int(self.probs(x)[0].argmax())
        return resolve_class(self.classes, target)


def resolve_class(classes: Sequence[str], target: str | int) -> int:
    """A class name (exact, then case-insensitive) or index -> index; one line listing some names otherwise."""
    if isinstance(target, int) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
        i = int(target)
        if not 0 <= i < len(classes):
            raise ConfigError(f"--target {target}: class index out of range 0..{len(classes) - 1}")
        return i
    if target in classes:
        return list(classes).index(target)
    lower = [c.lower() for c in classes]
    if str(target).lower() in lower:
        return lower.index(str(target).lower())
    close = [c for c in classes if str(target).lower() in c.lower()][:5] or list(classes[:5])
    raise ConfigError(f"--target {target!r} is not a class of this model; e.g. {', '.join(map(repr, close))} "
                      f"(or an index 0..{len(classes) - 1})")


def from_run(run_dir: str | Path, which: str = "best") -> Subject:
    """The classifier of a run folder, with the normalization and image size it was trained with."""
    from cnnlab.engine.evaluate import load_task

    task, model, meta, _ = load_task(run_dir, which)
    if task.name != "classify" or meta.get("on_features"):
        raise ConfigError(f"{run_dir}: explain works on image classifier runs (this is a {task.name} run"
                          + (" on features" if meta.get("on_features") else "") + ")")
    norm = task.normalization()
    h, w = meta["img_size"]
    return Subject(model, list(meta["classes"]), (h, w), meta["in_chans"], normalize=norm,
                   name=f"{meta['model']} ({Path(run_dir).name})", loader=lambda p: task.prepare(p)[1])


def from_pretrained(model_name: str, weights: str = "imagenet") -> Subject:
    """A pretrained ImageNet classifier (``mobilenet_v2``): 224 x 224 crops, ImageNet normalization."""
    from cnnlab.data.images import load_image
    from cnnlab.models import create_model
    from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, imagenet_preprocess, pretrained_meta

    meta = pretrained_meta(model_name, weights)
    model = create_model(model_name, num_classes=meta["num_classes"], weights=weights)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def load(path: str) -> torch.Tensor:  # torchvision's resize 256 + centre crop 224, back in uint8 pixels
        x = imagenet_preprocess(load_image(path, channels=3)) * std[0] + mean[0]  # (3, 224, 224) in [0, 1]
        return (x * 255).round().clamp(0, 255).byte()

    return Subject(model, meta["classes"], (224, 224), 3, normalize=lambda x: (x - mean.to(x)) / std.to(x),
                   name=f"{model_name} ({weights})", loader=load)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x.clone()  # a new tensor: a first inplace ReLU must not write into the caller's image (or a grad leaf)


def image_from_array(arr: np.ndarray, size: int = 224) -> torch.Tensor:
    """An (H, W, 3) uint8 photo (skimage/sklearn samples) as ImageNet's (1, 3, 224, 224) input in [0, 1]."""
    from torchvision.transforms.v2 import functional as TF

    img = torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W) uint8
    img = TF.resize(img, [round(size * 256 / 224)], antialias=True)
    img = TF.center_crop(img, [size, size])
    return (img.float() / 255)[None]


# ---------------------------------------------------------------------- layers and hooks
def layer_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` in ``model.named_modules()``; one line with valid names when there is none."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = layer_names(model)
    top = [n for n in names if "." not in n]
    near = [n for n in names if n.startswith(name.rsplit(".", 1)[0] + ".")][:6] if "." in name else []
    some = (near or top)[:8] + (["..."] if len(names) > 8 else [])
    raise ConfigError(f"--layer {name!r} is not a layer of this model; valid names include {', '.join(some)} "
                      "(any name from model.named_modules())")


@contextmanager
def record_output(module: nn.Module, keep_grad: bool = False):
    """Inside the block, ``box["out"]`` is the module's latest output (and ``box["grad"]`` its gradient)."""
    box: dict[str, torch.Tensor] = {}

    def hook(_m, _inp, out):
        out = out[0] if isinstance(out, (tuple, list)) else out
        box["out"] = out
        if keep_grad and out.requires_grad:
            out.register_hook(lambda g: box.__setitem__("grad", g))

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def activation(subject: Subject, x: torch.Tensor, layer: str, grad: bool = False) -> torch.Tensor:
    """The output of ``layer`` for input x (a forward pass stops nowhere: the logits are discarded)."""
    with record_output(get_layer(subject.model, layer)) as box, torch.set_grad_enabled(grad):
        subject(x)
    return box["out"]


def probe_forward(subject: Subject, handles: list) -> None:
    """One no-grad forward pass of a mid-grey image, for the forward hooks in ``handles`` to record the
    network's layers; the hooks are removed afterwards, also when the pass fails."""
    try:
        with torch.no_grad():
            subject(torch.full((1, subject.in_chans, *subject.size), 0.5))
    finally:
        for h in handles:
            h.remove()


def last_spatial_layer(subject: Subject) -> str:
    """The last module (in execution order) whose output is a (B, C, h, w) map with h*w > 1: Grad-CAM's default."""
    order: list[tuple[str, tuple]] = []
    handles = [m.register_forward_hook(lambda m, i, o, n=n: order.append((n, tuple(o.shape)))
                                       if isinstance(o, torch.Tensor) else None)
               for n, m in subject.model.named_modules() if n]
    probe_forward(subject, handles)
    spatial = [n for n, s in order if len(s) == 4 and s[2] * s[3] > 1]
    if not spatial:
        raise ConfigError(f"{subject.name} has no layer with a spatial map (h*w > 1); Grad-CAM needs one: pass --layer")
    return spatial[-1]


def default_layers(subject: Subject, n: int = 3) -> list[str]:
    """n layers spread over the depth (shallow to deep) among the top-level blocks with spatial output."""
    order: list[str] = []
    blocks = [(n_, m) for n_, m in subject.model.named_modules() if n_ and n_.count(".") <= 1
              and not isinstance(m, (nn.ReLU, nn.ReLU6, nn.BatchNorm2d, nn.Dropout))]
    handles = [m.register_forward_hook(lambda m, i, o, n=n_: order.append(n) if isinstance(o, torch.Tensor)
                                       and o.ndim == 4 and o.shape[2] * o.shape[3] > 1 and n not in order else None)
               for n_, m in blocks]
    probe_forward(subject, handles)
    leaves = [name for name in order if not any(o.startswith(name + ".") for o in order)]
    if not leaves:
        raise ConfigError(f"{subject.name} has no layers with spatial output to show; pass --layer")
    idx = np.linspace(0, len(leaves) - 1, min(n, len(leaves))).round().astype(int)
    return [leaves[i] for i in sorted(set(idx.tolist()))]


# ---------------------------------------------------------------------- datasets of images
def load_images(subject: Subject, source: str | Path | None, limit: int = 500, run_dir: str | None = None,
                split: str = "val") -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """(N, C, H, W) in [0, 1], labels (N,) (-1 when unknown) and class names of an image folder or a run's split."""
    if source is None and run_dir is None:
        raise ConfigError("this method needs a dataset: --data FOLDER of images (or a run folder, whose val split is used)")
    if source is None:
        from cnnlab.engine.evaluate import load_task

        task, _, meta, _ = load_task(run_dir)
        import dataclasses

        cfg = dataclasses.replace(task.cfg, img_size=meta["img_size"][0], channels=meta["in_chans"])
        ds, _, _ = task.eval_data(cfg, split)
        n = min(limit, len(ds))
        if hasattr(ds, "images"):
            imgs, labels = ds.images[:n], ds.labels[:n].numpy()
        else:
            items = [ds[i] for i in range(n)]
            imgs, labels = torch.stack([a for a, _ in items]), np.array([b for _, b in items])
        return imgs.float() / 255, labels, list(meta["classes"])
    from cnnlab.cli.evaluate import expand_images

    paths = expand_images([str(source)])[:limit]
    folders = sorted({Path(p).parent.name for p in paths})
    labels = np.array([folders.index(Path(p).parent.name) for p in paths])
    try:
        x = torch.cat([subject.load(p) for p in paths])
    except RuntimeError as e:
        raise DataError(f"--data {source}: cannot stack its images ({e})") from None
    return x, labels, folders


# ---------------------------------------------------------------------- figures
def to_hwc(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) float in [0, 1] -> (H, W, C) or (H, W) numpy for imshow."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a[0] if a.ndim == 4 else a
    a = np.clip(a.transpose(1, 2, 0), 0, 1)
    return a[..., 0] if a.shape[2] == 1 else a


def normalize01(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def save_image(path: str | Path, x: torch.Tensor | np.ndarray) -> Path:
    """An image (C, H, W) in [0, 1] (or already (H, W[, C])) as a PNG."""
    from PIL import Image

    a = to_hwc(x) if (getattr(x, "ndim", 0) >= 3 and np.shape(x)[-3] in (1, 3)) else np.clip(np.asarray(x), 0, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((a * 255).round().astype(np.uint8)).save(path)
    return Path(path)


def heat_rgb(m: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) map -> (H, W, 3) colours of its min-max normalized values."""
    import matplotlib

    return matplotlib.colormaps[cmap](normalize01(m))[..., :3]


def overlay(x: torch.Tensor, m: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the map's colours blended over it: (H, W, 3)."""
    img = to_hwc(x)
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    return (1 - alpha) * img + alpha * heat_rgb(m)


def write_attribution(out: str | Path, x: torch.Tensor, m: np.ndarray, title: str, extra: dict | None = None) -> list[Path]:
    """input.png, map.png, overlay.png, map.npy and a three-panel figure.png for an (H, W) attribution map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "map.npy", m.astype(np.float32))
    paths = [save_image(out / "input.png", x[0]), save_image(out / "map.png", heat_rgb(m)),
             save_image(out / "overlay.png", overlay(x, m))]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, img, t in zip(axes, [to_hwc(x), m, overlay(x, m)], ["input", "map", "overlay"]):
        ax.imshow(img, cmap="jet" if t == "map" else ("gray" if img.ndim == 2 else None))
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "figure.png", dpi=80)
    plt.close(fig)
    return [out / "map.npy", *paths, out / "figure.png"]


def image_grid(images: Sequence[np.ndarray], path: str | Path, cols: int = 8, titles: Sequence[str] | None = None,
               title: str | None = None, cmap: str | None = None, cell: float = 1.2, dpi: int = 80) -> Path:
    """A grid of (H, W[, 3]) images with optional titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + (0.4 if title else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            img = images[k]
            ax.imshow(img, cmap=cmap if img.ndim == 2 else None, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)
