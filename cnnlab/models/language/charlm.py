"""Character-level language model: embedding -> stacked RNN/LSTM/GRU -> linear over the vocabulary.

Sampling draws from softmax(logits / temperature) (optionally only the top-k characters); a
temperature of 0 takes the argmax, which falls into loops because the most likely continuation of a
frequent phrase usually leads back to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.models.language.cells import State, StackedRNN


class CharLM(nn.Module):
    """``forward(tokens (B, T), state) -> (logits (B, T, V), state)``."""

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 384, layers: int = 2, cell: str = "lstm",
                 dropout: float = 0.0, tie_weights: bool = False, fused: bool = True):
        super().__init__()
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = nn.Embedding(vocab_size, embed)
        self.rnn = StackedRNN(cell, embed, hidden, layers, dropout=dropout, fused=fused)
        self.drop = nn.Dropout(dropout)
        # weight tying (Press & Wolf 2017): the output layer reuses the embedding matrix, through a projection
        # to the embedding size when hidden != embed
        self.proj = nn.Linear(hidden, embed, bias=False) if tie_weights and hidden != embed else None
        self.head = nn.Linear(embed if tie_weights else hidden, vocab_size)
        if tie_weights:
            self.head.weight = self.embedding.weight

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.embedding(tokens)  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(out), state  # (B, T, V)

    def zero_state(self, batch: int, device=None) -> State:
        return self.rnn.zero_state(batch, device)


def next_char_distribution(logits: Tensor, temperature: float, top_k: int | None = None) -> Tensor:
    """Probabilities (V,) of the next character from logits (V,): softmax(logits / T), top-k kept."""
    logits = logits.float()
    if top_k is not None and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature <= 0:
        probs = torch.zeros_like(logits)
        probs[logits.argmax()] = 1.0
        return probs
    return F.softmax(logits / temperature, dim=-1)


@torch.no_grad()
def sample_ids(model: CharLM, prompt: list[int], n: int, temperature: float = 0.8, top_k: int | None = None,
               generator: torch.Generator | None = None) -> list[int]:
    """``n`` new token ids after ``prompt`` (fed through the model first to build its state)."""
    model.eval()
    device = next(model.parameters()).device
    if not prompt:
        raise ValueError("the prompt must hold at least one character")
    logits, state = model(torch.tensor([prompt], device=device))
    last = logits[0, -1]
    out: list[int] = []
    for _ in range(n):
        probs = next_char_distribution(last, temperature, top_k).cpu()
        nxt = int(torch.multinomial(probs, 1, generator=generator)) if temperature > 0 else int(probs.argmax())
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]], device=device), state)
        last = logits[0, -1]
    return out
