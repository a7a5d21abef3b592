"""Weight initialization by name, and per-layer activation statistics to see why it matters.

    init_weights(model, "he")                  # Kaiming normal, fan_in, for ReLU nets
    lsuv_init(model, x)                        # data-dependent: orthonormal, then unit output variance per layer
    activation_stats(model, x)                 # [(layer name, mean, std), ...]

The course's experiment: 10 tanh layers of 500 units with N(0, 0.01^2) weights -> the activation
std shrinks by ~0.01*sqrt(500) = 0.22 per layer and is ~0 by the last layer (no gradient
signal); Xavier (std ~ 1/sqrt(fan_in)) keeps tanh activations spread; with ReLU, Xavier halves
the variance per layer and He (std = sqrt(2/fan_in)) keeps it steady.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError

INIT_SCHEMES: tuple[str, ...] = ("default", "small", "xavier", "he", "lsuv")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NONLINEAR = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softplus,
)  # fmt: skip


def init_weights(model: nn.Module, scheme: str = "default", std: float = 0.01) -> nn.Module:
    """Re-initialise every conv and linear layer of ``model`` in place and return it.

    "default" leaves torch's own init untouched; "small" draws N(0, std^2); "xavier" is Glorot
    normal (std = sqrt(2 / (fan_in + fan_out))); "he" is Kaiming normal (fan_in, ReLU gain:
    std = sqrt(2 / fan_in)). Except for "default", biases are set to zero. Norm layers keep
    their init (weight 1, bias 0).
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"unknown init scheme {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}")
    if scheme == "default":
        return model
    if scheme == "lsuv":
        raise ConfigError("init 'lsuv' is data-dependent: call lsuv_init(model, x) with a batch of training images")
    if scheme == "small" and std <= 0:
        raise ConfigError(f"init std must be positive, got {std}")
    for m in model.modules():
        if not isinstance(m, _WEIGHTED):
            continue
        if scheme == "small":
            nn.init.normal_(m.weight, 0.0, std)
        elif scheme == "xavier":
            nn.init.xavier_normal_(m.weight)
        else:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def lsuv_init(model: nn.Module, x: torch.Tensor, tol: float = 0.05, max_iter: int = 10) -> list[tuple[str, float]]:
    """Layer-sequential unit-variance init (Mishkin & Matas, "All you need is a good init", 2016).

    Every conv and linear layer gets an orthonormal weight matrix (rows of the (out, in*k*k) matrix,
    biases zero); then, in forward order, its weight is rescaled by 1/sqrt(var) of its output on the
    batch ``x`` (B, C, H, W) until that variance is within ``tol`` of 1 (at most ``max_iter`` passes per
    layer). Batch-norm statistics are left untouched (the passes run in eval mode). Returns
    [(layer name, output variance after scaling)].
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    if not layers:
        raise ConfigError("lsuv_init: the model has no conv or linear layer")
    for _, m in layers:
        nn.init.orthogonal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    was_training = model.training
    model.eval()
    result: list[tuple[str, float]] = []
    try:
        for name, layer in layers:
            seen: list[torch.Tensor] = []
            handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().float()))
            try:
                var = 1.0
                for _ in range(max_iter):
                    seen.clear()
                    with torch.no_grad():
                        model(x)
                    if not seen:  # a layer the forward pass skips (e.g. an auxiliary head in eval mode)
                        break
                    var = seen[0].var().item()
                    if abs(var - 1.0) < tol or var == 0.0:
                        break
                    with torch.no_grad():
                        layer.weight.div_(var ** 0.5)
                        if layer.bias is not None:
                            layer.bias.div_(var ** 0.5)
                result.append((name, var))
            finally:
                handle.remove()
    finally:
        model.train(was_training)
    return result


def activation_stats(model: nn.Module, x: torch.Tensor) -> list[tuple[str, float, float]]:
    """Mean and std of each layer's output for one forward pass on ``x``, in call order.

    Layers are the nonlinearity modules (ReLU, Tanh, ...), i.e. the activations the course
    plots; a model without such modules reports its conv and linear outputs instead. A module
    called twice appears twice ("relu", "relu#2"). Runs in eval mode without gradients.
    """
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, _NONLINEAR)]
    if not named:
        named = [(n, m) for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    stats: list[tuple[str, float, float]] = []
    calls: dict[str, int] = {}

    def record(name: str):
        def hook(_module, _inputs, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            calls[name] = calls.get(name, 0) + 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            out = out.detach().float()
            stats.append((label, out.mean().item(), out.std().item()))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in named]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return stats
