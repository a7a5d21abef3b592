"""Show, Attend and Tell (Xu et al. 2015): soft ("deterministic") attention, and hard ("stochastic") as an option.

Annotation vectors a_i (i = 1..L) are the CNN map's locations, projected to ``att_feat`` dims.
At every step, from the previous hidden state h_{t-1}:
    e_ti = w^T tanh(W_a a_i + W_h h_{t-1} + b)          additive (Bahdanau) attention scores
    alpha_t = softmax_i(e_t)                              (B, L), sums to 1
    beta_t = sigmoid(f_beta(h_{t-1}))                     the gating scalar (paper section 4.2.1)
    z_t = beta_t * sum_i alpha_ti a_i                     the context vector
    h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})    the course's LSTM cell (cells.lstm_step)
    p(y_t) ∝ exp(L_o dropout(E y_{t-1} + L_h h_t + L_z z_t))   the deep output layer (eq. 7)
h_0, c_0 come from the mean annotation. Training adds the doubly stochastic penalty
lambda * sum_i (1 - sum_t alpha_ti)^2, which asks every location to be looked at about once.

``hard=True`` is the paper's stochastic ("hard") attention: z_t = a_s with one location
s_t ~ Multinoulli(alpha_t) while training (the argmax location in eval mode), trained with
REINFORCE: the task adds -(log p(y|s) - b) * sum_t log alpha_{t,s_t} - lambda_e * H[alpha_t], b a moving
average of log p(y|s) (``baseline``); ``hard_terms()`` gives the step's log alpha_s and entropies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.models.captioning.base import Captioner
from cnnlab.models.language.cells import LSTMCell


def doubly_stochastic_penalty(alphas: Tensor, mask: Tensor) -> Tensor:
    """Mean over the batch of sum_i (1 - sum_t alpha_ti)^2; alphas (B, T, L), mask (B, T) of real steps."""
    total = (alphas * mask[..., None].to(alphas.dtype)).sum(1)  # (B, L)
    return ((1.0 - total) ** 2).sum(1).mean()


class ShowAttendTell(Captioner):
    has_attention = True

    def __init__(self, backbone: nn.Module, vocab_size: int, embed_dim: int = 128, hidden: int = 256,
                 att_dim: int = 256, att_feat: int = 256, dropout: float = 0.3, frozen: bool = True,
                 hard: bool = False, **_unused):
        super().__init__(backbone, vocab_size, frozen)
        self.hidden, self.hard = hidden, hard
        if hard:
            self.register_buffer("baseline", torch.zeros(()))  # moving average of log p(y | s, a)
        self._hard: list[tuple[Tensor, Tensor]] = []
        self.proj = nn.Linear(self.feat_dim, att_feat)  # a_i: the annotation vectors
        self.init_h = nn.Linear(att_feat, hidden)
        self.init_c = nn.Linear(att_feat, hidden)
        self.att_a = nn.Linear(att_feat, att_dim)  # W_a (+ b)
        self.att_h = nn.Linear(hidden, att_dim, bias=False)  # W_h
        self.att_w = nn.Linear(att_dim, 1)  # w
        self.f_beta = nn.Linear(hidden, 1)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.cell = LSTMCell(embed_dim + att_feat, hidden)
        self.L_h = nn.Linear(hidden, embed_dim)
        self.L_z = nn.Linear(att_feat, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.L_o = nn.Linear(embed_dim, vocab_size)

    def start(self, feats: Tensor):
        a = F.relu(self.proj(feats))  # (B, L, A)
        mean = a.mean(1)
        self._hard = []
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))  # (B, H) each
        return state, (a, self.att_a(a))  # memory: annotations and their attention projection (B, L, att_dim)

    def attend(self, h: Tensor, memory) -> tuple[Tensor, Tensor]:
        """(context z (B, A) before gating, alpha (B, L)) for hidden state h (B, H)."""
        a, a_proj = memory
        e = self.att_w(torch.tanh(a_proj + self.att_h(h)[:, None])).squeeze(-1)  # (B, L)
        alpha = e.softmax(-1)
        return torch.bmm(alpha[:, None], a)[:, 0], alpha  # (B, A)

    def step(self, words: Tensor, state, memory):
        h, c = state
        z, alpha = self.attend(h, memory)
        if self.hard:
            a = memory[0]
            s = torch.multinomial(alpha.detach(), 1)[:, 0] if self.training else alpha.argmax(-1)  # (B,)
            z = a[torch.arange(len(s), device=a.device), s]  # (B, A): one location, not a mean
            logs = alpha.clamp_min(1e-12).log()
            self._hard.append((logs.gather(1, s[:, None])[:, 0], -(alpha * logs).sum(-1)))
        z = torch.sigmoid(self.f_beta(h)) * z  # gating scalar beta_t
        y = self.embed(words)  # (B, E)
        h, c = self.cell(torch.cat([y, z], 1), (h, c))
        logits = self.L_o(self.drop(y + self.L_h(h) + self.L_z(z)))  # (B, V)
        return logits, (h, c), alpha

    def hard_terms(self) -> tuple[Tensor, Tensor]:
        """(log alpha of the sampled location (B, T), attention entropy (B, T)) of the last teacher-forced pass."""
        log_ps, entropy = zip(*self._hard)
        return torch.stack(log_ps, 1), torch.stack(entropy, 1)
