import pytest
import torch

from cnnlab.models.language import CharLM, next_char_distribution, sample_ids


def test_temperature_and_top_k():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    p1 = next_char_distribution(logits, 1.0)
    torch.testing.assert_close(p1, torch.softmax(logits, 0))
    cold, hot = next_char_distribution(logits, 0.5), next_char_distribution(logits, 2.0)
    assert cold[0] > p1[0] > hot[0]  # lower temperature sharpens
    torch.testing.assert_close(cold, torch.softmax(logits / 0.5, 0))
    top2 = next_char_distribution(logits, 1.0, top_k=2)
    assert top2[2] == 0 and top2[3] == 0
    torch.testing.assert_close(top2[:2], torch.softmax(logits[:2], 0))
    argmax = next_char_distribution(logits, 0.0)
    assert argmax.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_sampling_is_reproducible_with_a_seed():
    torch.manual_seed(0)
    model = CharLM(12, embed=8, hidden=16, layers=1)
    a = sample_ids(model, [1, 2, 3], 40, 1.0, generator=torch.Generator().manual_seed(5))
    b = sample_ids(model, [1, 2, 3], 40, 1.0, generator=torch.Generator().manual_seed(5))
    c = sample_ids(model, [1, 2, 3], 40, 1.0, generator=torch.Generator().manual_seed(6))
    assert a == b and a != c and len(a) == 40 and all(0 <= i < 12 for i in a)


def test_top_1_sampling_is_greedy():
    torch.manual_seed(0)
    model = CharLM(12, embed=8, hidden=16, layers=1)
    greedy = sample_ids(model, [4], 20, 0.0)
    top1 = sample_ids(model, [4], 20, 1.0, top_k=1, generator=torch.Generator().manual_seed(1))
    assert greedy == top1


def test_empty_prompt_is_refused():
    with pytest.raises(ValueError):
        sample_ids(CharLM(5, 4, 4, 1), [], 3)
