"""Shared fixtures for the scratch tests: one BLAS / torch thread while they run.

The scratch engine multiplies small matrices; on the shared 2-core machine extra BLAS
threads only contend (measured 6x slower). Limits are restored after each test.
"""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(old)


@pytest.fixture
def rng():
    return np.random.default_rng(0)

