"""Captioning metrics against hand-computed values and nltk's corpus_bleu."""

import math
import random
import warnings

import pytest
import torch

from cnnlab.metrics.captioning import attention_in_box, box_chance, corpus_bleu, exact_match, sentence_bleu


def test_bleu_of_a_perfect_caption_is_one():
    refs = [[["a", "red", "circle", "on", "grass"]]]
    assert corpus_bleu(refs, [["a", "red", "circle", "on", "grass"]]) == pytest.approx(
        {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0})


def test_bleu_by_hand():
    # hyp a b c d vs ref a b c e: p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1; lengths equal, BP = 1
    m = corpus_bleu([[list("abce")]], [list("abcd")])
    assert m["bleu1"] == pytest.approx(0.75)
    assert m["bleu2"] == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert m["bleu3"] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    assert m["bleu4"] == 0.0  # no 4-gram matches, no smoothing


def test_clipping_brevity_penalty_and_closest_reference():
    # "the the the" vs "the cat": 'the' counts at most once -> p1 = 1/3; c = 3 > r = 2, no penalty
    assert corpus_bleu([[["the", "cat"]]], [["the", "the", "the"]])["bleu1"] == pytest.approx(1 / 3)
    # c = 2, references of 3 and 6 words: the closest is 3, BP = exp(1 - 3/2)
    m = corpus_bleu([[["a", "b", "x"], list("abcdef")]], [["a", "b"]])
    assert m["bleu1"] == pytest.approx(math.exp(1 - 3 / 2))
    # corpus level: counts are summed before dividing (2 of 2 and 0 of 2 unigrams -> 2/4, not a mean of ratios)
    m = corpus_bleu([[["a", "b"]], [["c", "d"]]], [["a", "b"], ["x", "y"]])
    assert m["bleu1"] == pytest.approx(0.5)


def test_bleu_matches_nltk_on_random_corpora():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(0)
    words = "a red blue circle star on of grass".split()
    for _ in range(40):
        refs = [[[rng.choice(words) for _ in range(rng.randint(3, 9))] for _ in range(rng.randint(1, 4))]
                for _ in range(rng.randint(1, 6))]
        # nltk counts a hypothesis shorter than n as one n-gram (max(1, .)); Papineni and we count none: same from 4 words
        hyps = [[rng.choice(words) for _ in range(rng.randint(4, 10))] for _ in refs]
        ours = corpus_bleu(refs, hyps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n in range(1, 5):
                assert ours[f"bleu{n}"] == pytest.approx(nltk_bleu.corpus_bleu(refs, hyps, weights=(1 / n,) * n), abs=1e-12)


def test_sentence_bleu_ranks_and_exact_match():
    refs = [["a", "red", "circle", "on", "grass"]]
    good, bad = sentence_bleu(refs, ["a", "red", "circle", "on", "grass"]), sentence_bleu(refs, ["a", "blue", "star"])
    assert good == pytest.approx(1.0) and 0 <= bad < good
    assert exact_match([refs, [["x"]]], [["a", "red", "circle", "on", "grass"], ["y"]]) == 0.5


def test_attention_in_box():
    size, grid = (8, 8), (2, 2)  # four 4x4 cells
    uniform = torch.full((4,), 0.25)
    box = [1.0, 2.0, 7.0, 6.0]
    assert attention_in_box(uniform, grid, box, size) == pytest.approx(box_chance(box, size)) == pytest.approx(24 / 64)
    top_left = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # cell (0, 0) spans x, y in [0, 4); the box covers x in [1, 4), y in [2, 4) of it: 6 of its 16 pixels
    assert attention_in_box(top_left, grid, box, size) == pytest.approx(6 / 16)
    assert attention_in_box(top_left, grid, [0, 0, 4, 4], size) == pytest.approx(1.0)
