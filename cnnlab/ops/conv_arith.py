"""Convolution arithmetic from the course: output sizes, "same" padding, receptive fields, cost.

    conv_output_size(32, f=5)                  # 28: floor((n + 2p - f) / s) + 1
    conv_output_size(7, f=3, s=3, strict=True) # ShapeError: the filter does not tile the input
    same_padding(5)                            # 2
    receptive_field([(3, 1)] * 3)              # 7: three 3x3 convs see a 7x7 patch
    inception_cost_example()                   # 5x5 conv on 28x28x192: ~120M vs ~12.4M multiplies

Multiplies are counted as multiply-adds (one per weight per output position), the convention
of the course and of published model FLOP counts; biases are not counted.
"""

from __future__ import annotations

from cnnlab.errors import ShapeError


def conv_output_size(n: int, f: int, s: int = 1, p: int = 0, dilation: int = 1, strict: bool = False) -> int:
    """Output length of a convolution or pooling window: floor((n + 2p - d(f-1) - 1) / s) + 1.

    With dilation 1 this is the course's floor((n + 2p - f) / s) + 1. ``strict=True`` also
    refuses settings where the window does not tile the padded input exactly (the course's
    "stride 3 on a 7x7 input with a 3x3 filter doesn't fit"), instead of dropping the remainder.
    """
    if n < 1 or f < 1 or s < 1 or dilation < 1:
        raise ShapeError(f"input size {n}, filter {f}, stride {s} and dilation {dilation} must all be >= 1")
    if p < 0:
        raise ShapeError(f"padding {p} is negative; use padding >= 0")
    span = dilation * (f - 1) + 1  # extent of the (dilated) filter
    room = n + 2 * p - span
    if room < 0:
        raise ShapeError(
            f"filter {span} is larger than the padded input {n}+2*{p}={n + 2 * p}; "
            f"use a filter of at most {n + 2 * p} or padding of at least {-(-(span - n) // 2)}"
        )
    if strict and room % s:
        lost = room % s
        raise ShapeError(
            f"(n + 2p - f) = {room} is not a multiple of stride {s}: the filter does not fit evenly and "
            f"the last {lost} pixel(s) would be skipped; change padding or use stride dividing {room}"
        )
    return room // s + 1


def same_padding(f: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1: p = d(f - 1) / 2 (needs an odd filter)."""
    if f < 1 or dilation < 1:
        raise ShapeError(f"filter size {f} and dilation {dilation} must be >= 1")
    span = dilation * (f - 1)
    if span % 2:
        raise ShapeError(
            f"filter size {f} has no symmetric 'same' padding (needs {span} pixels split over two sides); "
            "use an odd filter size"
        )
    return span // 2


def receptive_field(layers: list[tuple[int, ...]]) -> int:
    """Receptive field (in input pixels) of one output unit of a stack of conv/pool layers.

    ``layers`` lists ``(f, s)`` or ``(f, s, dilation)`` from input to output. Each layer adds
    (f - 1) * dilation times the product of the strides before it: three 3x3 stride-1 convs see 7x7.
    """
    rf, jump = 1, 1  # receptive field, distance in input pixels between neighbouring units
    for i, layer in enumerate(layers):
        if not 2 <= len(layer) <= 3:
            raise ShapeError(f"layer {i} is {layer!r}; give (filter, stride) or (filter, stride, dilation)")
        f, s = layer[0], layer[1]
        d = layer[2] if len(layer) == 3 else 1
        if f < 1 or s < 1 or d < 1:
            raise ShapeError(f"layer {i} {layer!r}: filter, stride and dilation must be >= 1")
        rf += (f - 1) * d * jump
        jump *= s
    return rf


def conv_params(f: int, c_in: int, c_out: int, bias: bool = True) -> int:
    """Learnable parameters of a conv layer: (f*f*c_in + 1) * c_out (LeNet-5 CONV1: 608)."""
    return (f * f * c_in + int(bias)) * c_out


def conv_macs(h_out: int, w_out: int, c_in: int, c_out: int, f: int) -> int:
    """Multiply-adds of a conv layer: every output value costs f*f*c_in multiplies."""
    return h_out * w_out * c_out * f * f * c_in


def inception_cost_example(
    h: int = 28, w: int = 28, c_in: int = 192, c_out: int = 32, f: int = 5, bottleneck: int = 16
) -> dict[str, int]:
    """The course's Inception cost example: a 5x5 'same' conv vs a 1x1 bottleneck followed by it.

    28x28x192 -> 5x5 conv, 32 filters -> 28x28x32 costs 28*28*32*5*5*192 = 120,422,400 multiplies;
    a 16-channel 1x1 conv first (2,408,448) and then the 5x5 conv on 16 channels (10,035,200)
    costs 12,443,648: about ten times fewer.
    """
    direct = conv_macs(h, w, c_in, c_out, f)
    reduce = conv_macs(h, w, c_in, bottleneck, 1)  # 1x1: (h, w, c_in) -> (h, w, bottleneck)
    expand = conv_macs(h, w, bottleneck, c_out, f)  # 5x5: (h, w, bottleneck) -> (h, w, c_out)
    return {"direct": direct, "bottleneck_1x1": reduce, "bottleneck_conv": expand, "bottleneck_total": reduce + expand}
