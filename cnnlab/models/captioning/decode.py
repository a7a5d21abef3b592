"""Inference for any captioner: greedy decoding and beam search with length normalization.

Greedy: y_t = argmax p(y | y_<t, image) until <END> or ``max_len`` words.
Beam search keeps the K partial captions of highest total log-probability; a beam that has
emitted <END> is finished and carries its score unchanged. The winner is the finished beam
with the highest length-normalized score  log p(y) / |y|^alpha  (alpha = 0: raw sum, which
favours short captions; alpha = 1: mean log-probability per word; |y| counts <END>).
With K = 1 the search is greedy decoding exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnlab.models.captioning.base import select


@torch.no_grad()
def greedy_decode(model, feats: Tensor, start: int, end: int, max_len: int = 20) -> tuple[list[list[int]], list[Tensor | None]]:
    """(word ids per image without <START>/<END>, attention (n_words + 1, L) per image or None)."""
    b = feats.shape[0]
    state, memory = model.start(feats)
    words = torch.full((b,), start, dtype=torch.long, device=feats.device)
    done = torch.zeros(b, dtype=torch.bool, device=feats.device)
    out, alphas = [], []
    for _ in range(max_len + 1):
        logits, state, alpha = model.step(words, state, memory)
        words = logits.argmax(-1)  # (B,)
        out.append(torch.where(done, torch.full_like(words, end), words))
        alphas.append(alpha)
        done |= words == end
        if bool(done.all()):
            break
    seqs = torch.stack(out, 1).tolist()  # (B, T)
    att = torch.stack(alphas, 1) if alphas[0] is not None else None  # (B, T, L)
    captions, maps = [], []
    for i, s in enumerate(seqs):
        n = s.index(end) if end in s else len(s)
        captions.append(s[:min(n, max_len)])
        maps.append(att[i, :n + 1].cpu() if att is not None else None)
    return captions, maps


@torch.no_grad()
def beam_search(model, feats: Tensor, start: int, end: int, beam: int = 3, max_len: int = 20, alpha: float = 1.0
                ) -> tuple[list[list[int]], list[Tensor | None], list[float]]:
    """(best caption per image, its attention (n_words + 1, L) or None, its normalized log-probability)."""
    b, k = feats.shape[0], beam
    state, memory = model.start(feats)
    rep = torch.arange(b, device=feats.device).repeat_interleave(k)  # (B*K,) image of each beam
    state, memory = select(state, rep), select(memory, rep)
    scores = torch.full((b, k), float("-inf"), device=feats.device)
    scores[:, 0] = 0.0  # all beams start equal: keep one so the first step does not pick duplicates
    words = torch.full((b * k,), start, dtype=torch.long, device=feats.device)
    finished = torch.zeros(b * k, dtype=torch.bool, device=feats.device)
    lengths = torch.zeros(b * k, device=feats.device)
    history = torch.zeros(b * k, 0, dtype=torch.long, device=feats.device)
    att_hist: Tensor | None = None
    for _ in range(max_len + 1):
        logits, new_state, att = model.step(words, state, memory)
        logp = logits.float().log_softmax(-1)  # (B*K, V)
        v = logp.shape[-1]
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, end] = 0.0  # a finished beam only repeats <END>, at no cost
        logp = torch.where(finished[:, None], frozen, logp)
        total = (scores.reshape(-1, 1) + logp).reshape(b, k * v)  # (B, K*V)
        scores, flat = total.topk(k, dim=1)  # (B, K)
        src = (flat // v + torch.arange(b, device=feats.device)[:, None] * k).reshape(-1)  # (B*K,) parent beam
        words = (flat % v).reshape(-1)
        was_done = finished[src]
        lengths = lengths[src] + (~was_done).float()
        finished = was_done | (words == end)
        history = torch.cat([history[src], words[:, None]], 1)
        state, memory = select(new_state, src), select(memory, src)
        if att is not None:
            step_att = att[src] * (~was_done).float()[:, None]
            att_hist = step_att[:, None] if att_hist is None else torch.cat([att_hist[src], step_att[:, None]], 1)
        if bool(finished.all()):
            break
    norm = scores.reshape(-1) / lengths.clamp(min=1) ** alpha  # (B*K,)
    norm = torch.where(finished, norm, norm - 1e4)  # unfinished beams (hit max_len) only when nothing finished
    best = norm.reshape(b, k).argmax(1) + torch.arange(b, device=feats.device) * k  # (B,)
    captions, maps, best_scores = [], [], []
    for i in best.tolist():
        s = history[i].tolist()
        n = s.index(end) if end in s else len(s)
        captions.append(s[:min(n, max_len)])
        maps.append(att_hist[i, :n + 1].cpu() if att_hist is not None else None)
        best_scores.append(float(scores.reshape(-1)[i] / lengths[i].clamp(min=1) ** alpha))
    return captions, maps, best_scores
