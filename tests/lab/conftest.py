"""Lab tests run tiny experiments: one thread is faster there and does not fight other jobs for the 2 cores."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
