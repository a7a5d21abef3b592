"""Data augmentation settings: presets and a one-line spec, e.g. "hflip,crop=4,jitter=0.4".

The transforms themselves live in ``batch_augment`` (whole-batch tensor ops for data in
memory: BatchAugment, pca_lighting_basis) and ``sample_transforms`` (per-image
torchvision.transforms.v2 for data on disk: build_sample_transform, PCALighting). Those two
import this module, never the other way round; their names are also reachable from here
(``from cnnlab.data.augment import BatchAugment``) through a lazy module ``__getattr__``, so
parsing a spec imports neither torch nor torchvision.

Spec tokens (comma-separated, any order; a preset name may come first and be extended):
    hflip            random horizontal flip (p = 0.5)
    crop=P           random crop after zero-padding P pixels on each side
    scale=LO-HI      random-resized crop of LO..HI of the area, aspect 3/4..4/3, resized back
    jitter=S         brightness, contrast and saturation factors drawn from [1-S, 1+S]
    pca=S            AlexNet PCA lighting noise, alpha ~ N(0, S) (paper: 0.1)
    rotate=D         rotation by up to +-D degrees
    shear=D          horizontal shear by up to +-D degrees
    erase=P          random erasing (Zhong et al. 2017) with probability P: a rectangle of 2-40% of the
                     area, aspect 0.3..3.3, filled with uniform noise (paper: P = 0.5)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = False
    crop_padding: int = 0  # random crop with zero padding (pixels)
    scale: tuple[float, float] | None = None  # random-resized-crop area range, e.g. (0.35, 1.0)
    color_jitter: float = 0.0  # brightness/contrast/saturation strength
    pca_lighting: float = 0.0  # AlexNet PCA lighting noise std (paper: 0.1)
    rotation: float = 0.0  # max degrees
    shear: float = 0.0  # max degrees
    erase: float = 0.0  # random-erasing probability per image (Zhong et al. 2017: 0.5)

    @property
    def enabled(self) -> bool:
        return self != AugmentConfig()

    @property
    def geometric(self) -> bool:
        """Whether an affine resampling (scale, rotation or shear) is needed."""
        return self.scale is not None or self.rotation > 0 or self.shear > 0


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "flip": AugmentConfig(hflip=True),
    # CIFAR-style: pad 4 pixels and take a random crop, flip half the images (ResNet paper)
    "flip-crop": AugmentConfig(hflip=True, crop_padding=4),
    # Inception/ResNet ImageNet-style: random-resized crop, flip, colour jitter
    "standard": AugmentConfig(hflip=True, scale=(0.35, 1.0), color_jitter=0.4),
    # AlexNet: random 224-of-256 crops (about 77 % of the area), flips, PCA lighting with std 0.1
    "alexnet": AugmentConfig(hflip=True, scale=(0.766, 1.0), pca_lighting=0.1),
    # handwriting: no flips (a mirrored 2 is not a 2), small shifts, rotations and shears
    "digits": AugmentConfig(crop_padding=2, rotation=10.0, shear=5.0),
}

_KEYS = {"crop": "crop_padding", "scale": "scale", "jitter": "color_jitter", "pca": "pca_lighting",
         "rotate": "rotation", "shear": "shear", "erase": "erase"}


def parse_augment(spec: str | AugmentConfig | None) -> AugmentConfig:
    """A preset name, a spec like "hflip,crop=4,scale=0.35-1,jitter=0.4,pca=0.1,rotate=10,shear=5", or both."""
    if isinstance(spec, AugmentConfig):
        return spec
    if spec is None or not spec.strip():
        return AugmentConfig()
    cfg = AugmentConfig()
    for i, token in enumerate(t.strip() for t in spec.split(",")):
        if token in AUGMENT_PRESETS and i == 0:
            cfg = AUGMENT_PRESETS[token]
        elif token == "hflip":
            cfg = dataclasses.replace(cfg, hflip=True)
        elif "=" in token and token.split("=", 1)[0].strip() in _KEYS:
            key, value = (s.strip() for s in token.split("=", 1))
            cfg = dataclasses.replace(cfg, **{_KEYS[key]: _parse_value(key, value, spec)})
        else:
            raise ConfigError(f"--augment {spec!r}: unknown item {token!r}; use a preset ({', '.join(AUGMENT_PRESETS)}) "
                              "first and/or items like hflip,crop=4,scale=0.35-1,jitter=0.4,pca=0.1,rotate=10,shear=5,erase=0.5")
    return cfg


def _parse_value(key: str, value: str, spec: str):
    def bad(rule: str) -> ConfigError:
        return ConfigError(f"--augment {spec!r}: {key}={value} {rule}")

    try:
        if key == "scale":
            lo, hi = (float(v) for v in value.split("-"))
            if not 0 < lo <= hi <= 1:
                raise bad("needs 0 < LO <= HI <= 1 (a range of areas, e.g. scale=0.35-1)")
            return (lo, hi)
        if key == "crop":
            pad = int(value)
            if pad < 0:
                raise bad("must be a number of pixels >= 0")
            return pad
        x = float(value)
    except ValueError:
        raise bad("is not a number" if key != "scale" else "must look like scale=0.35-1") from None
    limits = {"jitter": (0, 1), "pca": (0, 10), "rotate": (0, 180), "shear": (0, 89), "erase": (0, 1)}
    lo, hi = limits[key]
    if not lo <= x <= hi:
        raise bad(f"must be in [{lo}, {hi}]")
    return x


def augment_to_spec(cfg: AugmentConfig) -> str:
    """The spec string that ``parse_augment`` turns back into ``cfg`` ("none" when nothing is on)."""
    if not cfg.enabled:
        return "none"
    items = ["hflip"] if cfg.hflip else []
    if cfg.crop_padding:
        items.append(f"crop={cfg.crop_padding}")
    if cfg.scale is not None:
        items.append(f"scale={_num(cfg.scale[0])}-{_num(cfg.scale[1])}")
    for key, value in (("jitter", cfg.color_jitter), ("pca", cfg.pca_lighting), ("rotate", cfg.rotation), ("shear", cfg.shear),
                       ("erase", cfg.erase)):
        if value:
            items.append(f"{key}={_num(value)}")
    return ",".join(items)


def _num(x: float) -> str:
    """Shortest text that reads back as exactly ``x`` (10 -> "10", 0.35 -> "0.35")."""
    return f"{x:g}" if float(f"{x:g}") == x else repr(float(x))


# Lazy re-exports: importing them at the top would make a cycle with the two modules that import this one.
_REEXPORTS = {"BatchAugment": "cnnlab.data.batch_augment", "pca_lighting_basis": "cnnlab.data.batch_augment",
              "PCALighting": "cnnlab.data.sample_transforms", "build_sample_transform": "cnnlab.data.sample_transforms"}

__all__ = ["AugmentConfig", "AUGMENT_PRESETS", "parse_augment", "augment_to_spec", *_REEXPORTS]


def __getattr__(name: str):
    if name in _REEXPORTS:
        import importlib

        return getattr(importlib.import_module(_REEXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
