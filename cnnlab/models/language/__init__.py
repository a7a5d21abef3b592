"""Recurrent networks: the course's cells, a multilayer wrapper and the character-level language model."""

from cnnlab.models.language.cells import GRUCell, LSTMCell, RNNCell, StackedRNN, detach_state
from cnnlab.models.language.charlm import CharLM, next_char_distribution, sample_ids

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "StackedRNN", "detach_state", "CharLM", "next_char_distribution",
           "sample_ids"]
