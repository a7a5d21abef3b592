"""Image captioning: a CNN encoder and an LSTM decoder that emits one word at a time until <END>.

``show_tell`` (Vinyals et al. 2015): the pooled CNN features set the LSTM's initial state.
``show_attend_tell`` (Xu et al. 2015): soft attention over the L locations of the CNN's feature
map at every step, a gating scalar beta, doubly stochastic attention regularization.
Both take any zoo backbone (``forward_features``), frozen (features computed once) or trained
jointly; ``decode`` holds greedy and beam search for either.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models.captioning.base import Captioner
from cnnlab.models.captioning.decode import beam_search, greedy_decode
from cnnlab.models.captioning.show_attend_tell import ShowAttendTell, doubly_stochastic_penalty
from cnnlab.models.captioning.show_tell import ShowTell

CAPTIONERS: dict[str, type[Captioner]] = {"show_tell": ShowTell, "show_attend_tell": ShowAttendTell}


def create_captioner(name: str, backbone: nn.Module, vocab_size: int, **kwargs) -> Captioner:
    """The captioner ``name`` (show_tell, show_attend_tell) on ``backbone``."""
    if name not in CAPTIONERS:
        raise ValueError(f"captioner {name!r}: choose one of {', '.join(CAPTIONERS)}")
    return CAPTIONERS[name](backbone, vocab_size, **kwargs)


__all__ = ["CAPTIONERS", "Captioner", "ShowAttendTell", "ShowTell", "beam_search", "create_captioner",
           "doubly_stochastic_penalty", "greedy_decode"]
