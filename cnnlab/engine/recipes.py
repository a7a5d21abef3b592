"""Named training recipes: bundles of settings measured on this kind of laptop CPU.

``--recipe NAME`` fills these in; flags given explicitly on the command line win.
The figures behind them are in benchmarks/ and the README's "Speed" section.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # Fashion-MNIST in about two minutes on 2 cores: a small BN conv net in channels_last
    # (about 0.7 of the matmul peak per step here), one-cycle, label smoothing, flips, flip TTA.
    "fast": dict(model="convnet_bn", model_kwargs={"width": 16}, epochs=6, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip", channels_last=True,
                 eval_tta="flip"),
    # Fashion-MNIST towards 95% in about twenty minutes on 2 cores: ResNet-9 (Page 2018) at width 24, padded
    # crops; one exploratory 13-epoch run reached 94.45% (94.50% with flip TTA) in 1223 s, so 12 epochs here.
    "best": dict(model="resnet9", model_kwargs={"width": 24}, epochs=12, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip,crop=2", channels_last=True,
                 eval_tta="flip"),
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is unknown; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])
