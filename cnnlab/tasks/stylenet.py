"""Fast style transfer (Johnson et al. 2016): train a feed-forward net to paint content images in one style.

    cnnlab train stylenet --style starry_night.jpg --data photos/      # a folder of content images (any layout)
    cnnlab stylize photo.jpg --net runs/stylenet-... --out out.png     # one forward pass

The loss is the perceptual loss of Gatys' method, measured by the same frozen extractor (vgg16_hed by default):
J = alpha * content(y, x) + beta * style(y, s) + gamma * TV(y) for y = net(x), with Johnson's layers (content
relu2_2; style relu1_2, relu2_2, relu3_3, relu4_3). Images are resized to cover --img-size and centre-cropped,
flipped at random for training; validation = --val-fraction of the files (fixed seed); the best checkpoint has the
lowest validation loss. Batches: ``images f32[B,3,S,S]`` in [0, 1]. The checkpoint holds only the transformer net.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks import register_task
from cnnlab.tasks.base import DataBundle, Task

JOHNSON_CONTENT = "relu2_2"
JOHNSON_STYLE = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass
class StyleNetConfig(TrainConfig):
    style: str = opt("", "the style image (a painting)", group="data")
    data: str = opt("", "a folder of content images (searched recursively)", group="data")
    img_size: int | None = opt(160, "train on square crops of this size (the net then works at any size)",
                               group="data", min=16)
    style_size: int | None = opt(None, "resize the style image's longer side to this (default: --img-size * 2)",
                                 group="data", min=16)
    val_fraction: float | None = opt(0.1, "hold out this fraction of the images for validation", group="data",
                                     min=0, max=1, max_open=True)
    extractor: str = opt("vgg16_hed", "the loss network: vgg16_hed, mobilenet_v2 or a classify run folder", group="model")
    content_layer: str | None = opt(None, f"content layer (default: {JOHNSON_CONTENT} for vgg16_hed, else the "
                                    "extractor's)", group="model")
    style_layers: str | None = opt(None, f"comma-separated style layers (default: {','.join(JOHNSON_STYLE)} for "
                                   "vgg16_hed, else the extractor's)", group="model")
    content_weight: float = opt(1.0, "alpha, the weight of the content loss", group="regularization", min=0)
    style_weight: float | None = opt(None, "beta, the weight of the style loss (default: the extractor's)",
                                     group="regularization", min=0)
    tv_weight: float | None = opt(None, "gamma, the weight of total variation (default: the extractor's)",
                                  group="regularization", min=0)
    model: str = opt("transformer_net", "the image transformation network", group="model", choices=("transformer_net",))
    width: float = opt(0.5, "channel multiplier of the net (1.0 = Johnson's 32-64-128; 0.5 is 4x cheaper)",
                       group="model", min=0, min_open=True)
    residual_blocks: int = opt(5, "residual blocks at 1/4 resolution", group="model", min=0)
    epochs: int = opt(2, "number of passes over the content images", group="optimization", min=1)
    batch_size: int = opt(4, "images per step", group="optimization", min=1)
    optimizer: str = opt("adam", "sgd, momentum, nesterov, adam, adamw", group="optimization",
                         choices=("sgd", "momentum", "nesterov", "adam", "adamw"))
    lr: float | None = opt(1e-3, "learning rate", group="optimization", min=0, min_open=True)
    schedule: str = opt("none", "none, step, exp, inv (1/t), cosine, onecycle", group="optimization",
                        choices=("none", "step", "exp", "inv", "cosine", "onecycle"))
    weight_decay: float = opt(0.0, "weight decay", group="regularization", min=0)

    def validate(self) -> "StyleNetConfig":
        super().validate()
        if not self.style:
            raise ConfigError("--style is required: the style image, e.g. --style starry_night.jpg")
        if not Path(self.style).is_file():
            raise DataError(f"--style {self.style}: no such file; pass the path of an image")
        if not self.data:
            raise ConfigError("--data is required: a folder of content images (photos)")
        if not Path(self.data).is_dir():
            raise DataError(f"--data {self.data}: not a folder; pass a folder of content images")
        return self


class ContentImages(torch.utils.data.Dataset):
    """Image files as {"images": f32 (3, S, S) in [0, 1]}: resized to cover S, centre-cropped, flipped when ``flip``."""

    def __init__(self, paths: list[str], size: int, flip: bool, seed: int = 0):
        self.paths, self.size, self.flip = paths, size, flip
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from cnnlab.data.images import load_image

        x = load_image(self.paths[i], channels=3, size=(self.size, self.size)).float() / 255  # (3, S, S)
        if self.flip and self.rng.random() < 0.5:
            x = x.flip(-1)
        return {"images": x}


def image_files(root: str | Path) -> list[str]:
    from cnnlab.data.images import is_image_file

    files = sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and is_image_file(p.name)
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"--data {root}: holds no image files (.jpg, .png, ...)")
    return files


def load_style(path: str | Path, longer_side: int) -> torch.Tensor:
    """A style image as (1, 3, h, w) in [0, 1], its longer side resized to ``longer_side``."""
    from torchvision.transforms.v2 import functional as TF

    from cnnlab.data.images import load_image

    img = load_image(path, channels=3)  # (3, H, W) uint8
    h, w = img.shape[-2:]
    scale = longer_side / max(h, w)
    img = TF.resize(img, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
    return (img.float() / 255)[None]


@register_task
class StyleNetTask(Task):
    name = "stylenet"
    Config = StyleNetConfig
    monitor, mode = "loss", "min"
    progress_keys = ("loss", "style", "content")
    summary_keys = ("loss", "content", "style", "tv")
    required_meta = ("width",)
    examples = """examples:
  cnnlab train stylenet --style starry_night.jpg --data photos/ --epochs 2
  cnnlab stylize photo.jpg --net runs/stylenet-... --out painted.png"""

    def __init__(self, cfg, meta=None):
        super().__init__(cfg, meta)
        self._cost = None  # (StyleCost, device): the frozen extractor and style targets, built on first use

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: StyleNetConfig) -> DataBundle:
        files = image_files(cfg.data)
        if cfg.limit:
            files = files[: cfg.limit]
        order = list(range(len(files)))
        random.Random(cfg.seed).shuffle(order)
        n_val = int(round(len(files) * (cfg.val_fraction or 0)))
        n_val = min(n_val, len(files) - 1)
        val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
        if cfg.limit_test:
            val_idx = val_idx[: cfg.limit_test]
        size = cfg.img_size or 160
        train = ContentImages([files[i] for i in train_idx], size, flip=True, seed=cfg.seed)
        val = ContentImages([files[i] for i in val_idx], size, flip=False) if val_idx else None
        meta = {"model": "transformer_net", "width": cfg.width, "residual_blocks": cfg.residual_blocks,
                "img_size": [size, size], "style": str(cfg.style), "extractor": cfg.extractor, "in_chans": 3}
        return DataBundle(train, val, None, meta=meta, source=f"{cfg.data} (style {cfg.style})")

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models.style.transformer import TransformerNet

        return TransformerNet(width=meta["width"], residual_blocks=meta.get("residual_blocks", 5))

    # ------------------------------------------------------------------ the perceptual loss
    def cost(self, device: torch.device):
        """The perceptual loss (a StyleCost with the style's Gram matrices), built once per device."""
        if self._cost is None or self._cost[1] != device:
            from cnnlab.models.style.extractors import get_extractor
            from cnnlab.models.style.gatys import StyleCost

            cfg = self.cfg
            ext = get_extractor(cfg.extractor).to(device)
            vgg = ext.name == "vgg16_hed"
            content_layer = cfg.content_layer or (JOHNSON_CONTENT if vgg else ext.content_layer)
            style_layers = ([s.strip() for s in cfg.style_layers.split(",") if s.strip()] if cfg.style_layers
                            else list(JOHNSON_STYLE if vgg else ext.style_layers))
            size = cfg.style_size or 2 * (cfg.img_size or 160)
            style = load_style(cfg.style, size).to(device)
            probe = torch.zeros(1, 3, 32, 32, device=device)  # content targets come per batch; this only builds
            cost = StyleCost.build(ext, probe, style, content_layer=content_layer, style_layers=style_layers,
                                   content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                                   tv_weight=cfg.tv_weight)
            self._cost = (cost, device)
        return self._cost[0]

    def _losses(self, model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        cost = self.cost(images.device)
        with torch.no_grad():
            cost.content_target = cost.extractor(images, [cost.content_layer])[cost.content_layer]  # (B, C, h, w)
        return cost(model(images))  # loss, content, style, tv

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._losses(model, batch["images"])

    def validation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        parts = self._losses(model, batch["images"])
        n = batch["images"].shape[0]
        return {f"{k}_sum": v.detach() * n for k, v in parts.items()} | {"n": n}

    def eval_loader(self, cfg, data, split, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import DictLoader

        return DictLoader(split, cfg.batch_size, shuffle=False, seed=cfg.seed, rank=rank, world_size=world_size,
                          collate=data.collate, num_workers=cfg.num_workers)

    # ------------------------------------------------------------------ using a trained net
    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        import numpy as np

        from cnnlab.engine.plots import plt  # matplotlib with the Agg backend

        shown = data.val if data.val is not None else data.train
        xs = torch.stack([shown[i]["images"] for i in range(min(4, len(shown)))]).to(device)  # (n, 3, S, S)
        with torch.no_grad():
            ys = model(xs)
        fig, axes = plt.subplots(2, len(xs), figsize=(2.5 * len(xs), 5), squeeze=False)
        for j in range(len(xs)):
            for row, img in ((0, xs[j]), (1, ys[j])):
                axes[row, j].imshow(np.clip(img.permute(1, 2, 0).cpu().numpy(), 0, 1))
                axes[row, j].axis("off")
        axes[0, 0].set_title("content", loc="left")
        axes[1, 0].set_title("stylized", loc="left")
        (run_dir / "plots").mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(run_dir / "plots" / "stylized.png", dpi=100)
        plt.close(fig)
        lines = ["Stylized validation images: `plots/stylized.png`.", ""]
        if final:
            lines.insert(0, f"Validation perceptual loss {final.get('loss', float('nan')):.4g} (content "
                            f"{final.get('content', float('nan')):.4g}, style {final.get('style', float('nan')):.4g}).")
        return lines
