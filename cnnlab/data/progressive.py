"""Progressive resizing: train the early epochs on smaller images, the last ones at full size.

A convolutional network with global pooling accepts any input size, and its cost per image
grows with the pixel count, so the early, coarse part of training can run on downscaled
images at a fraction of the cost (fast.ai's DAWNBench entries; FFCV's ResNet-50 recipe).
The spec ``"MIN:FRACTION"`` starts at MIN pixels (the shorter side) and grows linearly to
the full size over the first FRACTION of the epochs; the remaining epochs, and every
evaluation, use the full size. An epoch's size is a pure function of the epoch number, so a
resumed run trains on exactly the same sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError, ShapeError

FLAG = "--progressive-resize"


@dataclass(frozen=True)
class ProgressiveResize:
    min_size: int  # shorter side of the first epoch's images, in pixels
    fraction: float  # share of the epochs over which the size grows to full

    def size(self, epoch: int, epochs: int, full: int) -> int:
        """Shorter side for 0-based ``epoch`` of ``epochs`` when the images' shorter side is ``full``."""
        ramp = self.fraction * epochs
        if epoch >= ramp or self.min_size >= full:
            return full
        return int(round(self.min_size + (full - self.min_size) * epoch / ramp))

    def sizes(self, epochs: int, full: int) -> list[int]:
        """The shorter side of every epoch: ``sizes(epochs, full)[e]`` for e = 0 .. epochs - 1."""
        return [self.size(e, epochs, full) for e in range(epochs)]


def parse_progressive(spec: str | None) -> ProgressiveResize | None:
    """``"none"``/``None`` -> None; ``"16:0.5"`` -> start at 16 px, full size after half of the epochs."""
    if spec is None or str(spec).strip().lower() in ("", "none", "off"):
        return None
    text = str(spec).strip()
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        min_size, fraction = int(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"{FLAG} {text!r}: expected MIN:FRACTION, e.g. 16:0.5 (start at 16 px, full size after "
                          "half of the epochs), or none") from None
    if min_size < 4:
        raise ConfigError(f"{FLAG} {text!r}: the smallest size must be at least 4 pixels")
    if not 0 < fraction <= 1:
        raise ConfigError(f"{FLAG} {text!r}: FRACTION is a share of the epochs, above 0 and at most 1")
    return ProgressiveResize(min_size, fraction)


def scaled_size(h: int, w: int, short: int) -> tuple[int, int]:
    """(H, W) scaled so that the shorter side is ``short``, keeping the aspect ratio."""
    if min(h, w) == short:
        return h, w
    f = short / min(h, w)
    return max(1, int(round(h * f))), max(1, int(round(w * f)))


def resize_batch(x: torch.Tensor, short: int) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C, H', W') with shorter side ``short``: bilinear, antialiased when shrinking."""
    h, w = x.shape[-2:]
    size = scaled_size(h, w, short)
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < h)


def check_model_accepts(model: torch.nn.Module, in_chans: int, img_size: tuple[int, int], short: int,
                        model_name: str, spec: str, device: torch.device | str = "cpu") -> None:
    """Raise a ConfigError naming the model when it cannot take the smallest progressive size."""
    size = scaled_size(img_size[0], img_size[1], short)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, *size, device=device))
    except (RuntimeError, ShapeError) as e:
        raise ConfigError(f"{FLAG} {spec}: model {model_name} does not accept {size[0]}x{size[1]} inputs "
                          f"({str(e).splitlines()[0][:120]}); use a model with global pooling (e.g. resnet9) "
                          "or a larger MIN") from None
    finally:
        model.train(was_training)
