"""What every captioner shares: the CNN encoder (any zoo backbone, frozen or trained) and the decoding API.

A captioner exposes, for teacher forcing and for search alike:
    encode(images (B, C, H, W)) -> feats (B, L, D)            the backbone's map, locations flattened
    forward(feats, inputs (B, T)) -> (logits (B, T, V), alphas (B, T, L) or None)   teacher forcing
    start(feats) -> (state, memory)                          initial state; memory = what every step reads
    step(words (B,), state, memory) -> (logits (B, V), state, alpha (B, L) or None)
State and memory are tuples of tensors with the batch first, so search can reorder them by indexing.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn


def backbone_channels(backbone: nn.Module) -> int:
    """Channels of ``forward_features``'s map (the zoo's contract: ``num_features`` or the last feature_info)."""
    channels = getattr(backbone, "num_features", None)
    return int(channels if channels is not None else backbone.feature_info[-1]["num_chs"])


def select(tree, idx: Tensor):
    """Index dim 0 of every tensor in a (nested) tuple: reorders beams."""
    if isinstance(tree, tuple):
        return tuple(select(t, idx) for t in tree)
    return tree.index_select(0, idx)


class Captioner(nn.Module, metaclass=abc.ABCMeta):
    """Backbone + decoder; ``frozen`` backbones stay in eval mode and get no gradient (their features can be cached)."""

    has_attention = False

    def __init__(self, backbone: nn.Module, vocab_size: int, frozen: bool = True):
        super().__init__()
        self.backbone, self.vocab_size = backbone, vocab_size
        self.feat_dim = backbone_channels(backbone)
        self.set_frozen(frozen)

    def set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.backbone.eval()

    def train(self, mode: bool = True) -> "Captioner":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # batch-norm statistics stay ImageNet's
        return self

    def encode(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, L, D), L = h * w locations of the backbone's last map."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            fmap = self.backbone.forward_features(images).float()  # (B, D, h, w)
        return fmap.flatten(2).transpose(1, 2)  # (B, h*w, D)

    @abc.abstractmethod
    def start(self, feats: Tensor):
        """Decoder state and memory before the first word (each decoder defines it: ShowTell, ShowAttendTell)."""

    @abc.abstractmethod
    def step(self, words: Tensor, state, memory):
        """One word in, next-word logits and the new state out (each decoder defines it)."""

    def forward(self, feats: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing, one step at a time (subclasses may fuse): inputs (B, T) word ids -> logits (B, T, V)."""
        state, memory = self.start(feats)
        logits, alphas = [], []
        for t in range(inputs.shape[1]):
            lg, state, alpha = self.step(inputs[:, t], state, memory)
            logits.append(lg)
            alphas.append(alpha)
        return torch.stack(logits, 1), (torch.stack(alphas, 1) if alphas and alphas[0] is not None else None)
