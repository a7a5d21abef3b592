import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.scratch import norm
from tests.scratch.helpers import close, t


@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm_train_forward_backward_and_running_stats_match_torch(spatial, rng):
    shape = (4, 3, 5, 6) if spatial else (8, 3)
    fwd, bwd = ((norm.spatial_batchnorm_forward, norm.spatial_batchnorm_backward) if spatial
                else (norm.batchnorm_forward, norm.batchnorm_backward))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    bn_param = {"mode": "train", "momentum": 0.9, "eps": 1e-5}
    run_mean, run_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(3):  # a few steps so the running averages are really compared
        x = 2.0 * rng.standard_normal(shape) + 1.5
        out, cache = fwd(x, gamma, beta, bn_param)
        dout = rng.standard_normal(shape)
        dx, dgamma, dbeta = bwd(dout, cache)
        tx, tg, tb = t(x), t(gamma), t(beta)
        tout = F.batch_norm(tx, run_mean, run_var, tg, tb, training=True, momentum=0.1, eps=1e-5)
        tout.backward(torch.tensor(dout))
        assert close(out, tout)
        assert close(dx, tx.grad) and close(dgamma, tg.grad) and close(dbeta, tb.grad)
    assert close(bn_param["running_mean"], run_mean) and close(bn_param["running_var"], run_var)
    x = rng.standard_normal(shape)
    test_out, _ = fwd(x, gamma, beta, dict(bn_param, mode="test"))
    assert close(test_out, F.batch_norm(t(x, False), run_mean, run_var, t(gamma, False), t(beta, False), training=False))


def test_batchnorm_train_output_is_normalised(rng):
    x = 5.0 * rng.standard_normal((200, 4)) + 3.0
    out, _ = norm.batchnorm_forward(x, np.ones(4), np.zeros(4), {"mode": "train"})
    assert np.allclose(out.mean(0), 0, atol=1e-12) and np.allclose(out.std(0), 1, atol=1e-4)


def test_batchnorm_bad_mode_is_a_config_error(rng):
    with pytest.raises(ConfigError, match="mode"):
        norm.batchnorm_forward(rng.standard_normal((4, 2)), np.ones(2), np.zeros(2), {"mode": "eval"})


def test_dropout_train_matches_torch_with_the_same_mask(rng):
    x = rng.standard_normal((50, 40))
    out, cache = norm.dropout_forward(x, keep_prob=0.7, train=True, seed=1)
    mask = out != 0
    tx = t(x)
    tout = tx * torch.tensor(mask) / 0.7  # inverted dropout: torch's F.dropout(p=0.3) formula
    dout = rng.standard_normal(x.shape)
    tout.backward(torch.tensor(dout))
    assert close(out, tout) and close(norm.dropout_backward(dout, cache), tx.grad)


def test_dropout_keeps_the_right_fraction_and_the_expectation(rng):
    x = np.ones((400, 500))
    out, _ = norm.dropout_forward(x, keep_prob=0.3, seed=0)
    assert abs(np.mean(out != 0) - 0.3) < 0.005  # 200k Bernoulli draws: sd 0.001
    assert abs(out.mean() - 1.0) < 0.02  # inverted scaling keeps E[out] = x
    assert set(np.unique(out)) == {0.0, 1.0 / 0.3}


def test_dropout_test_mode_is_identity(rng):
    x = rng.standard_normal((3, 4))
    out, cache = norm.dropout_forward(x, keep_prob=0.5, train=False)
    assert out is x and np.array_equal(norm.dropout_backward(x, cache), x)


def test_dropout_rejects_bad_keep_prob():
    with pytest.raises(ConfigError, match="keep_prob"):
        norm.dropout_forward(np.ones(3), keep_prob=0.0)
