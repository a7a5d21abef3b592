"""Named training recipes: bundles of settings measured on this kind of laptop CPU.

``--recipe NAME`` fills these in; flags given explicitly on the command line win.
The figures behind them are in benchmarks/ and the README's "Speed" section.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # Fashion-MNIST to 93% in under two minutes on 2 cores: ResNet-9 (Page 2018) at width 16 in bf16 autocast,
    # 4 epochs of one-cycle, label smoothing, flips, flip TTA. Measured (3 seeds, 2-core Xeon VM): 93.59 +- 0.12%
    # in 97 +- 8 s of training, 93% after 89 +- 17 s.
    "fast": dict(model="resnet9", model_kwargs={"width": 16}, epochs=4, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip", channels_last=True,
                 precision="bf16", eval_tta="flip"),
    # Fashion-MNIST towards 95% in twenty minutes on 2 cores: ResNet-9 (Page 2018) at width 24 in bf16 autocast
    # (about 2x fp32 on a CPU with AMX / AVX-512 BF16), padded crops and random erasing, 25 epochs of one-cycle.
    # Measured (3 seeds, 2-core Xeon VM): 95.02 +- 0.06% after 25 epochs, which took 1204-1507 s on that noisy
    # machine (94.66 +- 0.36% at 1200 s). Width 32 x 16 epochs: 94.92% (seed 0), ~1.4x the time.
    "best": dict(model="resnet9", model_kwargs={"width": 24}, epochs=25, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip,crop=2,erase=0.5",
                 channels_last=True, precision="bf16", eval_tta="flip"),
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is unknown; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])
