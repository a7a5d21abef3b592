"""Semantic segmentation models, one family per file, built by name for ``cnnlab train segment``.

| name            | file              | what it is                                                         |
|-----------------|-------------------|--------------------------------------------------------------------|
| sliding_window  | sliding_window.py | a patch classifier applied around every (stride-th) pixel          |
| full_res        | fcn.py            | convolutions at the input's resolution only                       |
| fcn32s/16s/8s   | fcn.py            | backbone + 1x1 scores + learned upsampling with skip fusion        |
| encdec          | encdec.py         | encoder-decoder, no skips; upsample nearest, bed_of_nails, max_unpool, transposed or bilinear |
| unet            | unet.py           | U-Net: skips by concatenation; on a zoo backbone, or the paper's own encoder (backbone none) |

They are not classifiers, so they are not in the model zoo (``cnnlab models``): ``create_segmenter``
builds them, taking the backbone (any zoo model) already made.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models.segmentation.encdec import UPSAMPLES, EncoderDecoder
from cnnlab.models.segmentation.fcn import FCN, FullResolutionFCN
from cnnlab.models.segmentation.sliding_window import SlidingWindowSegmenter
from cnnlab.models.segmentation.unet import BackboneUNet, UNet

ARCHITECTURES = ("unet", "fcn8s", "fcn16s", "fcn32s", "encdec", "full_res", "sliding_window")
NEEDS_BACKBONE = ("fcn8s", "fcn16s", "fcn32s")  # unet takes one too, or none (its own encoder)
OWN_ENCODER = ("encdec", "full_res", "sliding_window")  # never use a zoo backbone


def create_segmenter(arch: str, num_classes: int, backbone: nn.Module | None = None, in_chans: int = 3,
                     upsample: str = "max_unpool", **kwargs) -> nn.Module:
    """The segmentation network ``arch`` (see the table above); ``backbone`` for unet and fcn*."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown segmentation model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if arch in NEEDS_BACKBONE and backbone is None:
        raise ValueError(f"{arch} needs a backbone (any zoo model, e.g. mobilenet_v2)")
    if arch == "unet":
        return BackboneUNet(backbone, num_classes, in_chans, **kwargs) if backbone is not None else \
            UNet(num_classes, in_chans, **kwargs)
    if arch.startswith("fcn"):
        return FCN(backbone, num_classes, variant=arch[3:], **kwargs)
    if arch == "encdec":
        return EncoderDecoder(num_classes, in_chans, upsample=upsample, **kwargs)
    if arch == "full_res":
        return FullResolutionFCN(num_classes, in_chans, **kwargs)
    return SlidingWindowSegmenter(num_classes, in_chans, **kwargs)


__all__ = ["ARCHITECTURES", "NEEDS_BACKBONE", "OWN_ENCODER", "UPSAMPLES", "create_segmenter", "BackboneUNet", "UNet",
           "FCN", "FullResolutionFCN", "EncoderDecoder", "SlidingWindowSegmenter"]
