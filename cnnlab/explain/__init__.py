"""Looking inside networks (CS231n "visualizing and understanding"): filters, activations, maximally
activating patches, nearest neighbours, t-SNE, occlusion, saliency, guided backprop, Grad-CAM,
SmoothGrad, class visualization, DeepDream and fooling images. One file per method; ``common``
holds the Subject (a classifier working on [0, 1] pixels), layer lookup, hooks and figures."""

from cnnlab.explain.common import Subject, from_pretrained, from_run, get_layer

__all__ = ["Subject", "from_pretrained", "from_run", "get_layer"]
