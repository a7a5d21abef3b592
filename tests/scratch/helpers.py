"""Small helpers for the scratch tests: float64 torch tensors and a 1e-6 comparison."""

import numpy as np
import torch


def t(a, grad: bool = True) -> torch.Tensor:
    """float64 torch leaf tensor from a NumPy array."""
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def close(a, b, tol: float = 1e-6) -> bool:
    """Same shape and equal within tol (absolute and relative)."""
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return np.asarray(a).shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol)
