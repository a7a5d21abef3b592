"""cnnlab.scratch: the course's mechanics re-implemented in NumPy, each checked against torch.

The teaching engine: a small autodiff graph (graph), layers as forward/backward pairs with
caches (layers, conv, pool, norm, rnn), losses and penalties (losses), numerical gradient
checks (gradcheck, checks), the course's update rules (optim), the Solver and its sanity
checks (solver, sanity), kNN / linear classifiers (classifiers), the two-layer and conv
nets (nets), random search (search), data (data) and training recipes (recipes).
Depends only on NumPy (scikit-learn just for its bundled digits).
"""

from cnnlab.scratch.graph import Value
from cnnlab.scratch.gradcheck import grad_check_sparse, numerical_gradient, numerical_gradient_array, rel_error
from cnnlab.scratch.solver import Solver

__all__ = ["Value", "Solver", "rel_error", "numerical_gradient", "numerical_gradient_array", "grad_check_sparse"]
