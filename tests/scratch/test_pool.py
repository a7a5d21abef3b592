import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ShapeError
from cnnlab.scratch import pool
from tests.scratch.helpers import close, t


@pytest.mark.parametrize("ph,pw,stride", [(2, 2, 2), (3, 3, 2), (2, 3, 1), (3, 2, 3)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch(kind, ph, pw, stride, rng):
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 10.0  # distinct values: the max is unique
    fwd, bwd = getattr(pool, f"{kind}_pool_forward"), getattr(pool, f"{kind}_pool_backward")
    out, cache = fwd(x, ph, pw, stride)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    tx = t(x)
    torch_pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    tout = torch_pool(tx, (ph, pw), stride)
    tout.backward(torch.tensor(dout))
    assert close(out, tout) and close(dx, tx.grad)


def test_max_pool_hand_example():
    x = np.array([[1.0, 1.0, 2.0, 4.0], [5.0, 6.0, 7.0, 8.0], [3.0, 2.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0]])[None, None]
    out, cache = pool.max_pool_forward(x)  # the course's 2x2 stride-2 example
    assert out[0, 0].tolist() == [[6.0, 8.0], [3.0, 4.0]]
    dx = pool.max_pool_backward(np.ones((1, 1, 2, 2)), cache)[0, 0]
    assert dx.sum() == 4 and dx[1, 1] == 1 and dx[1, 3] == 1 and dx[2, 0] == 1 and dx[3, 3] == 1


def test_pool_rejects_window_larger_than_input():
    with pytest.raises(ShapeError, match="pool"):
        pool.max_pool_forward(np.zeros((1, 1, 2, 2)), 3, 3, 1)
