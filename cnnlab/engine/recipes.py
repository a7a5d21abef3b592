"""Named training recipes: bundles of settings measured on this kind of laptop CPU.

``--recipe NAME`` fills these in; flags given explicitly on the command line win.
The speed recipes train on the whole training split with no model selection (``val_fraction=0``:
the last epoch is kept), so their figures stay comparable with the published ones.
The figures behind them are in benchmarks/ and the README's "Speed" section.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # Fashion-MNIST to 93% in under two minutes on 2 cores: ResNet-9 (Page 2018) at width 16 in bf16 autocast
    # (precision auto: bf16 where the CPU has AVX-512 BF16/AMX; fp32 on AVX2-only CPUs, where emulated bf16
    # trained ~9x slower than fp32 and 4 epochs take about 8 minutes on 2 cores),
    # 4 epochs of one-cycle, label smoothing, flips, flip TTA. Measured (3 seeds, 2-core Xeon VM): 93.59 +- 0.12%
    # in 97 +- 8 s of training, 93% after 89 +- 17 s.
    "fast": dict(model="resnet9", model_kwargs={"width": 16}, epochs=4, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip", channels_last=True,
                 precision="auto", eval_tta="flip", val_fraction=0.0),
    # Fashion-MNIST to 94.9% in under twenty minutes on 2 cores: ResNet-9 (Page 2018) at width 24 in bf16 autocast
    # (about 2x fp32 on a CPU with AMX / AVX-512 BF16), with max-pool before BN-ReLU in the downsampling blocks
    # (pool_first, airbench's order) and progressive resizing from 20 px over the first half, padded crops and
    # random erasing, 26 epochs of one-cycle. Measured (3 seeds, 2-core Xeon VM): 94.94 +- 0.04% after
    # 1003-1164 s. The Page-order, full-size 25 epochs reached 95.02% but took 1204-1507 s there.
    "best": dict(model="resnet9", model_kwargs={"width": 24, "pool_first": True}, epochs=26, batch_size=128, optimizer="nesterov", lr=0.1,
                 weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, augment="hflip,crop=2,erase=0.5",
                 progressive_resize="20:0.5", channels_last=True, precision="auto", eval_tta="flip", val_fraction=0.0),
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is unknown; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def resolved_recipes(device: str = "cpu") -> dict[str, dict[str, Any]]:
    """RECIPES with ``precision="auto"`` resolved for ``device`` (what a run there computes in; benchmarks report it)."""
    import torch

    from cnnlab.engine.run import resolve_precision

    return {name: dict(r, precision=resolve_precision(r.get("precision", "fp32"), torch.device(device)))
            for name, r in RECIPES.items()}
