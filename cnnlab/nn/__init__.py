"""Building blocks torch lacks: maxout, unpooling, transposed-conv arithmetic, FFT convolution,
edge-detector filters, weight initialization by name, and a conv with a fast weight gradient on tiny maps."""

from cnnlab.nn.edges import EDGE_KERNELS, detect_edges, edge_conv2d, edge_kernel
from cnnlab.nn.fft_conv import FFTConv2d, fft_conv2d
from cnnlab.nn.init import INIT_SCHEMES, activation_stats, init_weights, lsuv_init
from cnnlab.nn.maxout import Maxout, MaxoutConv2d, maxout
from cnnlab.nn.small_map_conv import SmallMapConv2d
from cnnlab.nn.transposed import transposed_conv1d, transposed_conv2d
from cnnlab.nn.unpool import (
    BedOfNailsUnpool2d,
    NearestUnpool2d,
    SwitchMaxPool2d,
    SwitchMaxUnpool2d,
    bed_of_nails_unpool,
    max_unpool,
    nearest_unpool,
)

__all__ = [
    "EDGE_KERNELS", "detect_edges", "edge_conv2d", "edge_kernel",
    "FFTConv2d", "fft_conv2d",
    "INIT_SCHEMES", "activation_stats", "init_weights", "lsuv_init",
    "Maxout", "MaxoutConv2d", "maxout",
    "SmallMapConv2d",
    "transposed_conv1d", "transposed_conv2d",
    "BedOfNailsUnpool2d", "NearestUnpool2d", "SwitchMaxPool2d", "SwitchMaxUnpool2d",
    "bed_of_nails_unpool", "max_unpool", "nearest_unpool",
]  # fmt: skip
