"""Show and Tell (Vinyals et al. 2015): the image sets the LSTM's state, then words in, words out.

    v = mean over locations of the CNN map                     (B, D)
    h_0 = tanh(W_h v), c_0 = tanh(W_c v)
    x_t = W_e y_{t-1}; h_t = LSTM(x_t, h_{t-1}); p(y_t) = softmax(W_o dropout(h_t))
(The paper feeds v as the first input; setting the initial state from it is the common variant
the course describes, and it leaves every step the same shape.) Teacher forcing runs the whole
sequence through ``StackedRNN``'s fused kernel; search steps the same parameters one word at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.models.captioning.base import Captioner
from cnnlab.models.language.cells import StackedRNN


class ShowTell(Captioner):
    def __init__(self, backbone: nn.Module, vocab_size: int, embed_dim: int = 128, hidden: int = 256,
                 dropout: float = 0.3, frozen: bool = True, **_unused):
        super().__init__(backbone, vocab_size, frozen)
        self.hidden = hidden
        self.init_h = nn.Linear(self.feat_dim, hidden)
        self.init_c = nn.Linear(self.feat_dim, hidden)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = StackedRNN("lstm", embed_dim, hidden, layers=1, fused=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def start(self, feats: Tensor):
        v = feats.mean(1)  # (B, D)
        h, c = torch.tanh(self.init_h(v)), torch.tanh(self.init_c(v))  # (B, H) each
        return (h, c), ()

    def step(self, words: Tensor, state, memory):
        h, c = state
        out, (h2, c2) = self.lstm(self.embed(words)[:, None], (h[None], c[None]))  # (B, 1, H)
        return self.out(self.drop(out[:, 0])), (h2[0], c2[0]), None  # (B, V)

    def forward(self, feats: Tensor, inputs: Tensor) -> tuple[Tensor, None]:
        (h, c), _ = self.start(feats)
        out, _ = self.lstm(self.embed(inputs), (h[None], c[None]))  # (B, T, H), fused over time
        return self.out(self.drop(out)), None  # (B, T, V)
