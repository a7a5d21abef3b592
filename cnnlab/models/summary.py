"""Per-layer summary of a model: output shape, activation size, parameters and multiply-adds.

    s = summary(create_model("lenet5"), (3, 32, 32))
    print(format_summary(s))        # the course's LeNet-5 table, with totals
    count_macs(model, (3, 224, 224)) # multiply-adds of one forward pass for one image

Multiply-adds (MACs) are counted for convolution and linear layers only: one per weight per
output position, biases, pooling, normalisation and activations not counted. That is the
convention of the published figures (torchvision's "GFLOPS": AlexNet 0.71 G, VGG-16 15.47 G,
ResNet-50 4.09 G, ...); a FLOP count is about 2 x MACs. A module may define
``count_macs(inputs, output) -> int`` to report its own cost.

The forward pass runs on the meta device (shapes only, no arithmetic, no copy of the weights),
so summarising VGG-16 at 224x224 takes milliseconds; a model that cannot run on meta is run
once for real on a zero input of batch size 1.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from cnnlab.errors import CnnlabError, ConfigError, ShapeError

# Layers that keep the shape and have no parameters: hidden from the printed table by default.
ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout, nn.Identity, nn.Flatten, nn.Unflatten,
)  # fmt: skip
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class LayerRow:
    """One call of one leaf module; shapes exclude the batch dimension."""

    name: str  # module path, e.g. "features.0"; "relu#2" for the second call of a shared module
    kind: str  # class name, e.g. "Conv2d"
    detail: str  # e.g. "f=5 s=1 p=0, 3->8"
    output_shape: tuple[int, ...]  # (C, H, W) for images
    activation_size: int  # number of values in the output
    params: int  # parameters of this module (0 on repeated calls of a shared module)
    macs: int  # multiply-adds of this call
    elementwise: bool  # hidden from the table unless all layers are asked for


@dataclass
class ModelSummary:
    input_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    output_shape: tuple[int, ...] = ()
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0

    @property
    def input_size(self) -> int:
        return _numel(self.input_shape)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = self.input_size
        return d


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-adds of one call of a leaf module (0 for anything but conv, transposed conv, linear)."""
    if hasattr(module, "count_macs"):
        return int(module.count_macs(inputs, output))
    per_sample = output.numel() // max(output.shape[0], 1) if output.dim() > 1 else output.numel()
    if isinstance(module, _CONV):
        return per_sample * (module.in_channels // module.groups) * _numel(module.kernel_size)
    if isinstance(module, _CONV_T):
        x = inputs[0]
        in_per_sample = x.numel() // max(x.shape[0], 1)
        return in_per_sample * (module.out_channels // module.groups) * _numel(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    if isinstance(module, nn.Bilinear):
        return per_sample * module.in1_features * module.in2_features
    return 0


def _detail(m: nn.Module) -> str:
    if isinstance(m, _CONV + _CONV_T):
        k = "x".join(map(str, m.kernel_size))
        s = m.stride[0] if len(set(m.stride)) == 1 else "x".join(map(str, m.stride))
        p = m.padding if isinstance(m.padding, str) else (m.padding[0] if len(set(m.padding)) == 1 else m.padding)
        g = f" g={m.groups}" if m.groups > 1 else ""
        return f"f={k} s={s} p={p}{g}, {m.in_channels}->{m.out_channels}"
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return f"f={m.kernel_size} s={m.stride}"
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"out={m.output_size}"
    if isinstance(m, nn.Linear):
        return f"{m.in_features}->{m.out_features}"
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return f"{m.num_features}"
    return ""


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out if isinstance(out, torch.Tensor) else None


def summary(model: nn.Module, input_size: tuple[int, ...] | list[int], dtype: torch.dtype = torch.float32) -> ModelSummary:
    """Run one forward pass on a (1, *input_size) input and record every leaf module's call.

    ``input_size`` is one example without the batch dimension, (C, H, W) for images. The model
    is summarised in eval mode (GoogLeNet's auxiliary heads and dropout are off) and its mode
    is restored afterwards; its weights are not changed.
    """
    input_shape = tuple(int(s) for s in input_size)
    if not input_shape or any(s < 1 for s in input_shape):
        raise ShapeError(f"input size {input_shape} must be positive sizes without the batch dimension, e.g. (3, 224, 224)")
    result = ModelSummary(input_shape=input_shape)
    calls: dict[int, int] = {}  # module id -> calls so far (shared modules run more than once)

    def hook_for(name: str):
        def hook(module, inputs, output):
            out = _first_tensor(output)
            if out is None:
                return
            calls[id(module)] = calls.get(id(module), 0) + 1
            first_call = calls[id(module)] == 1
            result.rows.append(
                LayerRow(
                    name=name if first_call else f"{name}#{calls[id(module)]}",
                    kind=type(module).__name__,
                    detail=_detail(module),
                    output_shape=tuple(out.shape[1:]),
                    activation_size=out.numel() // max(out.shape[0], 1),
                    params=sum(p.numel() for p in module.parameters()) if first_call else 0,
                    macs=layer_macs(module, inputs, out),
                    elementwise=isinstance(module, ELEMENTWISE),
                )
            )

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook_for(n or type(m).__name__)) for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        out = _forward_meta(model, input_shape, dtype)
        if out is None:  # forget what the partial meta run recorded, then run for real
            result.rows.clear()
            calls.clear()
            out = _forward_real(model, input_shape, dtype)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    out = _first_tensor(out)
    result.output_shape = tuple(out.shape[1:]) if out is not None else ()
    result.total_params = sum(p.numel() for p in model.parameters())
    result.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result.total_macs = sum(r.macs for r in result.rows)
    return result


def _forward_meta(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype):
    """Shape-only forward with meta stand-ins for the weights; None if the model cannot run on meta."""
    on_meta = any(t.is_meta for t in model.parameters())
    stand_ins = {n: torch.empty_like(t, device="meta") for n, t in model.named_parameters(remove_duplicate=False)}
    stand_ins.update({n: torch.empty_like(t, device="meta") for n, t in model.named_buffers(remove_duplicate=False)})
    x = torch.zeros((1, *input_shape), dtype=dtype, device="meta")
    try:
        with torch.no_grad():
            return functional_call(model, stand_ins, (x,))
    except CnnlabError:  # the model's own check of its input: already a message for people
        raise
    except Exception as e:  # noqa: BLE001  (an op without a meta kernel: fall back to a real run)
        if on_meta:  # no real weights to fall back to: most likely the input does not fit
            raise ShapeError(f"input {'x'.join(map(str, input_shape))} does not fit {type(model).__name__}: {_first_line(e)}") from None
        return None


def _forward_real(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype):
    param = next(model.parameters(), None)
    device = param.device if param is not None and param.device.type != "meta" else torch.device("cpu")
    x = torch.zeros((1, *input_shape), dtype=dtype, device=device)
    try:
        with torch.no_grad():
            return model(x)
    except RuntimeError as e:
        raise ShapeError(f"input {'x'.join(map(str, input_shape))} does not fit {type(model).__name__}: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def count_macs(model: nn.Module, input_size: tuple[int, ...] | list[int]) -> int:
    """Multiply-adds of conv and linear layers for one forward pass of one example of ``input_size``."""
    return summary(model, input_size).total_macs


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared parameters counted once); works on the meta device."""
    return sum(p.numel() for p in model.parameters())


def default_input_size(name: str) -> tuple[int, int, int]:
    """The input a registered model is summarised at when none is given, as (C, H, W).

    Rule: C is the builder's ``in_chans`` default; H = W is the builder's ``img_size`` default
    if it has one (LeNet-5: 32), else 224 for ImageNet models (default ``num_classes`` 1000)
    and 32 for the others (CIFAR-sized: num_classes 10).
    """
    from cnnlab.models.registry import get_model_builder

    params = inspect.signature(get_model_builder(name)).parameters

    def default(key: str, fallback):
        p = params.get(key)
        return p.default if p is not None and p.default is not inspect.Parameter.empty else fallback

    size = default("img_size", None) or (224 if default("num_classes", 1000) == 1000 else 32)
    return (int(default("in_chans", 3)), int(size), int(size))


def summarize_registered(name: str, input_size: tuple[int, ...] | None = None, num_classes: int | None = None) -> ModelSummary:
    """Build registered model ``name`` on the meta device (no memory, no init cost) and summarise it.

    ``input_size`` (C, H, W) defaults to ``default_input_size(name)``; C sets the model's
    ``in_chans`` and a square H x W its ``img_size`` where the builder takes one (LeNet-5's
    first fully connected layer depends on it). ``num_classes`` defaults to the builder's.
    """
    from cnnlab.models.registry import create_model, get_model_builder

    params = inspect.signature(get_model_builder(name)).parameters
    shape = tuple(input_size) if input_size is not None else default_input_size(name)
    kwargs: dict = {}
    if num_classes is None:
        p = params.get("num_classes")
        num_classes = p.default if p is not None and p.default is not inspect.Parameter.empty else 1000
    if len(shape) == 3:
        kwargs["in_chans"] = shape[0]
        if "img_size" in params:
            if shape[1] != shape[2]:
                raise ConfigError(f"model {name!r} is built for square inputs; use --input {shape[0]}x{shape[1]}x{shape[1]}")
            kwargs["img_size"] = shape[1]
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, **kwargs)
    except (RuntimeError, NotImplementedError):  # an init op without a meta kernel: build for real
        model = create_model(name, num_classes=num_classes, **kwargs)
    return summary(model, shape)


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def format_summary(s: ModelSummary, all_layers: bool = False, title: str | None = None) -> str:
    """The summary as a text table; shape-preserving parameter-free layers shown only with ``all_layers``."""
    rows = [r for r in s.rows if all_layers or not r.elementwise]
    header = ("layer", "type", "output shape", "activations", "params", "MACs")
    table = [header, ("input", "", "x".join(map(str, s.input_shape)), f"{s.input_size:,}", "", "")]
    for r in rows:
        kind = f"{r.kind}({r.detail})" if r.detail else r.kind
        table.append((r.name, kind, "x".join(map(str, r.output_shape)), f"{r.activation_size:,}", f"{r.params:,}", f"{r.macs:,}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {3, 4, 5}
    lines = []
    if title:
        lines.append(title)
    for i, row in enumerate(table):
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * len(lines[-1]))
    lines.append("-" * max(len(line) for line in lines[-len(table):]))
    act_total = s.input_size + sum(r.activation_size for r in rows)
    lines.append(f"total params: {s.total_params:,} ({_human(s.total_params)}), trainable: {s.trainable_params:,}")
    lines.append(f"total multiply-adds: {s.total_macs:,} ({_human(s.total_macs)} MACs, ~{_human(2 * s.total_macs)} FLOPs) per example")
    lines.append(f"activations (input + rows shown): {act_total:,} values per example, output {'x'.join(map(str, s.output_shape))}")
    return "\n".join(lines)
