"""Captioning metrics: corpus BLEU-1..4, exact-match rate, and attention correctness.

BLEU (Papineni et al. 2002), corpus level: clipped n-gram counts are summed over all
hypotheses before dividing (not an average of sentence scores),
    p_n = sum_hyp sum_ngram min(count_hyp, max_ref count_ref) / sum_hyp (number of n-grams of hyp)
    BP = 1 if c > r else exp(1 - r / c)   c = total hypothesis length, r = sum over hypotheses of
                                           the reference length closest to it (ties: the shorter)
    BLEU-N = BP * exp(sum_{n<=N} (1/N) log p_n)     (0 when some p_n = 0; no smoothing)
as ``nltk.translate.bleu_score.corpus_bleu`` with uniform weights.

Attention correctness (after Liu et al. 2017): for a word that names an object whose box is
known, the share of that step's attention mass that falls inside the box; the attention map is
a grid of cells over the image, each cell's weight spread evenly over its pixels. Its chance
level is the box's share of the image (uniform attention).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import torch

Tokens = Sequence[str] | Sequence[int]


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _closest_ref_length(refs: Sequence[Tokens], hyp_len: int) -> int:
    return min((len(r) for r in refs), key=lambda r: (abs(r - hyp_len), r))


def corpus_bleu(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens], max_n: int = 4) -> dict[str, float]:
    """{"bleu1": .., ..., "bleuN": ..} over a corpus; references[i] is the list of reference token lists of hypothesis i."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference lists for {len(hypotheses)} hypotheses")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        hyp_len += len(hyp)
        ref_len += _closest_ref_length(refs, len(hyp)) if refs else 0
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most: Counter = Counter()
            for r in refs:
                most |= _ngrams(r, n)  # element-wise max over references
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0)
    out, log_sum = {}, 0.0
    for n in range(1, max_n + 1):
        p = matches[n - 1] / totals[n - 1] if totals[n - 1] else 0.0
        log_sum = log_sum + math.log(p) if p > 0 and log_sum > -math.inf else -math.inf
        out[f"bleu{n}"] = bp * math.exp(log_sum / n) if log_sum > -math.inf else 0.0
    return out


def sentence_bleu(references: Sequence[Tokens], hypothesis: Tokens, max_n: int = 4) -> float:
    """BLEU-N of one hypothesis with add-one smoothing of p_n for n > 1 (ranks single captions; corpus scores use corpus_bleu)."""
    if not hypothesis:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        counts = _ngrams(hypothesis, n)
        most: Counter = Counter()
        for r in references:
            most |= _ngrams(r, n)
        m = sum(min(c, most[g]) for g, c in counts.items())
        t = max(0, len(hypothesis) - n + 1)
        p = (m + (n > 1)) / (t + (n > 1)) if t + (n > 1) else 0.0
        if p == 0:
            return 0.0
        log_sum += math.log(p)
    r = _closest_ref_length(references, len(hypothesis))
    bp = 1.0 if len(hypothesis) > r else math.exp(1 - r / len(hypothesis))
    return bp * math.exp(log_sum / max_n)


def exact_match(references: Sequence[Sequence[Tokens]], hypotheses: Sequence[Tokens]) -> float:
    """Share of hypotheses equal to one of their references, token for token."""
    if not hypotheses:
        return 0.0
    return sum(any(list(h) == list(r) for r in refs) for refs, h in zip(references, hypotheses)) / len(hypotheses)


def attention_in_box(alpha: torch.Tensor, grid: tuple[int, int], box: Sequence[float], size: tuple[int, int]) -> float:
    """Share of attention ``alpha`` (L = gh * gw cells, summing to 1) inside ``box`` (xyxy pixels of an image (H, W))."""
    gh, gw = grid
    h, w = size
    a = alpha.reshape(gh, gw).double()
    edges_y = torch.linspace(0, h, gh + 1, dtype=torch.float64)
    edges_x = torch.linspace(0, w, gw + 1, dtype=torch.float64)
    oy = (torch.minimum(edges_y[1:], torch.tensor(float(box[3]))) - torch.maximum(edges_y[:-1], torch.tensor(float(box[1])))).clamp(min=0)
    ox = (torch.minimum(edges_x[1:], torch.tensor(float(box[2]))) - torch.maximum(edges_x[:-1], torch.tensor(float(box[0])))).clamp(min=0)
    share = (oy / (h / gh))[:, None] * (ox / (w / gw))[None, :]  # (gh, gw) fraction of each cell inside the box
    return float((a * share).sum())


def box_chance(box: Sequence[float], size: tuple[int, int]) -> float:
    """The box's share of the image: what uniform attention puts inside it."""
    h, w = size
    return max(0.0, (min(box[2], w) - max(box[0], 0))) * max(0.0, (min(box[3], h) - max(box[1], 0))) / (h * w)
