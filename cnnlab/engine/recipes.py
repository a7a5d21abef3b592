"""Named training recipes: bundles of settings measured on this kind of laptop CPU.

``--recipe NAME`` fills these in; flags given explicitly on the command line win.
The figures behind them are in benchmarks/ and the README's "Speed" section.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # Fashion-MNIST to 93% in under two minutes on 2 cores: ResNet-9 (Page 2018) at width 16 in bf16 autocast,
    # 4 epochs of one-cycle, label smoothing, flips, flip TTA. Exploration on seed 0: 93.61% in 98 s; the
    # earlier convnet_bn width 16 x 6 epochs in bf16 reached 92.98% in 79 s.
    "fast": dict(model="resnet9", model_kwargs={"width": 16}, epochs=4, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip", channels_last=True,
                 precision="bf16", eval_tta="flip"),
    # Fashion-MNIST towards 95% in under twenty minutes on 2 cores: ResNet-9 (Page 2018) at width 24 in bf16 autocast
    # (about 2x fp32 on a CPU with AMX / AVX-512 BF16), padded crops and random erasing, 25 epochs of one-cycle.
    # Measured with 22 epochs: 94.76% and 94.79% (seeds 0, 1) in about 1050-1120 s; SmallMapConv2d's faster
    # weight gradient in layer 3 then bought 3 more epochs. Width 32 x 16 epochs: 94.92% (seed 0), ~1.4x the time.
    "best": dict(model="resnet9", model_kwargs={"width": 24}, epochs=25, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip,crop=2,erase=0.5",
                 channels_last=True, precision="bf16", eval_tta="flip"),
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is unknown; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])
