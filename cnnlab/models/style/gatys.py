"""Neural style transfer by optimizing pixels (Gatys, Ecker & Bethge, CVPR 2016).

    J(x) = alpha * J_content(x) + beta * J_style(x) + gamma * TV(x)
    J_content = mean (F_l(x) - F_l(c))^2 on one layer l;  J_style = sum_l w_l ||G(F_l(x)) - G(F_l(s))||_F^2

The generated image x (RGB in [0, 1], starting from the content image or from noise) is optimized with
L-BFGS (one function evaluation per step, no line search) or Adam, and clipped to [0, 1] after every step;
since L-BFGS without a line search can overshoot, the image with the lowest J seen is returned. The targets
(content features, style Gram matrices) are computed once. Every step's three losses are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from cnnlab.errors import ConfigError
from cnnlab.models.style.extractors import FeatureExtractor
from cnnlab.ops.gram import content_loss, gram_matrix, style_loss, total_variation

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")


@dataclass
class StyleCost:
    """The fixed targets of one (content, style) pair and the weights of J; ``cost(x)`` -> dict of () tensors."""

    extractor: FeatureExtractor
    content_layer: str
    style_layers: list[str]
    content_target: torch.Tensor  # (1, C, h, w)
    style_grams: dict[str, torch.Tensor]  # layer -> (1, C, C)
    content_weight: float
    style_weight: float
    tv_weight: float
    layer_weights: dict[str, float] | None = field(default=None)

    @classmethod
    @torch.no_grad()
    def build(cls, extractor: FeatureExtractor, content: torch.Tensor, style: torch.Tensor, *,
              content_layer: str | None = None, style_layers: Sequence[str] | None = None,
              content_weight: float | None = None, style_weight: float | None = None,
              tv_weight: float | None = None) -> "StyleCost":
        content_layer = content_layer or extractor.content_layer
        style_layers = list(style_layers or extractor.style_layers)
        c = extractor(content, [content_layer])[content_layer]
        s = extractor(style, style_layers)
        grams = {n: gram_matrix(s[n]) for n in style_layers}
        pick = lambda v, d: d if v is None else v  # noqa: E731
        return cls(extractor, content_layer, style_layers, c, grams, pick(content_weight, extractor.content_weight),
                   pick(style_weight, extractor.style_weight), pick(tv_weight, extractor.tv_weight))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.extractor(x, [self.content_layer, *self.style_layers])
        jc = content_loss(feats[self.content_layer], self.content_target.expand_as(feats[self.content_layer]))
        js = style_loss(feats, self.style_grams, self.layer_weights)
        tv = total_variation(x)
        total = self.content_weight * jc + self.style_weight * js + self.tv_weight * tv
        return {"loss": total, "content": jc, "style": js, "tv": tv}


def gatys_transfer(extractor: FeatureExtractor, content: torch.Tensor, style: torch.Tensor, steps: int = 200, *,
                   optimizer: str = "lbfgs", lr: float | None = None, init: str = "content", seed: int = 0,
                   content_layer: str | None = None, style_layers: Sequence[str] | None = None,
                   content_weight: float | None = None, style_weight: float | None = None,
                   tv_weight: float | None = None,
                   callback: Callable[[int, dict[str, float]], None] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Stylize ``content`` (1, 3, H, W) in [0, 1] with ``style`` (1, 3, h, w): (image (1, 3, H, W), history).

    history: one dict per step (step 0 = the starting image) of loss, content, style, tv (floats)."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {optimizer!r}: choose {' or '.join(OPTIMIZERS)}")
    if init not in INITS:
        raise ConfigError(f"--init {init!r}: choose {' or '.join(INITS)}")
    if steps < 0:
        raise ConfigError(f"--steps {steps}: must be at least 0")
    cost = StyleCost.build(extractor, content, style, content_layer=content_layer, style_layers=style_layers,
                           content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    if init == "content":
        x = content.detach().clone().contiguous()
    else:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(content.shape, generator=g).to(content).contiguous()  # (1, 3, H, W) uniform noise
    x.requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=lr or 1.0, max_iter=1, history_size=50, tolerance_grad=0.0,
                                tolerance_change=0.0)  # small losses (mobilenet) must not stop it early
    else:
        opt = torch.optim.Adam([x], lr=lr or 0.02)

    history: list[dict] = []
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        parts = cost(x)
        parts["loss"].backward()
        last.update(parts)
        return parts["loss"]

    def record(step: int, parts: dict[str, torch.Tensor]) -> None:
        row = {k: float(v.detach()) for k, v in parts.items()}
        history.append({"step": step, **row})
        if callback:
            callback(step, row)

    best, best_loss = x.detach().clone(), float("inf")  # L-BFGS without line search can overshoot: keep the best
    for step in range(steps):
        before = x.detach().clone()
        opt.step(closure)  # evaluates J at the current x (recorded as this step's losses), then moves x
        record(step, last)
        if history[-1]["loss"] < best_loss:
            best, best_loss = before, history[-1]["loss"]
        with torch.no_grad():  # pixels stay pixels (left alone, L-BFGS wanders far outside [0, 1])
            x.clamp_(0, 1)
    with torch.no_grad():
        final = cost(x.clamp(0, 1))
        if steps and float(final["loss"]) > best_loss:  # the last step overshot: return the best image seen
            x = best.clamp(0, 1)
            final = cost(x)
        record(steps, final)  # the returned (clipped) image's losses
    return x.detach().clamp(0, 1), history
