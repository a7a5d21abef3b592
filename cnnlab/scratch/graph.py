"""Reverse-mode automatic differentiation on NumPy arrays: the course's computational graph.

A ``Value`` holds an array, the gradient of the final output with respect to it, and a
closure that applies the local chain rule (upstream gradient times local gradient) to push
that gradient to its inputs. ``backward()`` visits the nodes in reverse topological order,
exactly how the course reads its circuit diagrams from right to left:

    x, y, z = Value(-2.0), Value(5.0), Value(-4.0)
    f = (x + y) * z          # f = -12
    f.backward()             # x.grad = y.grad = z = -4, z.grad = x + y = 3
"""

from __future__ import annotations

import numpy as np


def _as_array(data) -> np.ndarray:
    arr = np.asarray(data)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes broadcasting added or stretched, so it has ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Value:
    """A node of the graph: ``data`` (array), ``grad`` (same shape) and how to backprop."""

    def __init__(self, data, parents: tuple = (), op: str = ""):
        self.data = _as_array(data)
        self.grad = np.zeros_like(self.data)
        self._parents = parents
        self._backward = lambda: None
        self.op = op

    def __repr__(self) -> str:
        return f"Value(data={self.data!r}, grad={self.grad!r}, op={self.op!r})"

    @property
    def shape(self) -> tuple:
        return self.data.shape

    # ---- binary ops (broadcasting like NumPy; gradients summed back to each shape) ----
    def __add__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # an add gate distributes the upstream gradient unchanged
            self.grad = self.grad + _unbroadcast(out.grad, self.shape)
            other.grad = other.grad + _unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():  # a multiply gate swaps its inputs
            self.grad = self.grad + _unbroadcast(out.grad * other.data, self.shape)
            other.grad = other.grad + _unbroadcast(out.grad * self.data, other.shape)

        out._backward = _backward
        return out

    def __matmul__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data @ other.data, (self, other), "@")  # (N, D) @ (D, M) -> (N, M)

        def _backward():
            self.grad = self.grad + out.grad @ other.data.T  # (N, M) @ (M, D)
            other.grad = other.grad + self.data.T @ out.grad  # (D, N) @ (N, M)

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad = self.grad + out.grad * exponent * self.data ** (exponent - 1)

        out._backward = _backward
        return out

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other) -> Value:
        return self + (-other if isinstance(other, Value) else Value(-_as_array(other)))

    def __truediv__(self, other) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return self * other**-1.0

    def __radd__(self, other) -> Value:
        return self + other

    def __rmul__(self, other) -> Value:
        return self * other

    def __rsub__(self, other) -> Value:
        return Value(other) - self

    def __rtruediv__(self, other) -> Value:
        return Value(other) / self

    # ---- unary ops ----
    def _unary(self, value: np.ndarray, local_grad: np.ndarray, op: str) -> Value:
        out = Value(value, (self,), op)

        def _backward():
            self.grad = self.grad + out.grad * local_grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        e = np.exp(self.data)
        return self._unary(e, e, "exp")

    def log(self) -> Value:
        return self._unary(np.log(self.data), 1.0 / self.data, "log")

    def tanh(self) -> Value:
        t = np.tanh(self.data)
        return self._unary(t, 1.0 - t * t, "tanh")

    def sigmoid(self) -> Value:
        s = 0.5 * (1.0 + np.tanh(0.5 * self.data))  # stable form of 1 / (1 + exp(-x))
        return self._unary(s, s * (1.0 - s), "sigmoid")

    def relu(self) -> Value:
        return self._unary(np.maximum(self.data, 0), (self.data > 0).astype(self.data.dtype), "relu")

    def sum(self, axis=None, keepdims: bool = False) -> Value:
        out = Value(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():  # every input element contributed once: broadcast the gradient back
            g = out.grad
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            self.grad = self.grad + np.broadcast_to(g, self.shape)

        out._backward = _backward
        return out

    def mean(self, axis=None, keepdims: bool = False) -> Value:
        count = self.data.size if axis is None else np.prod([self.shape[a] for a in np.atleast_1d(axis)])
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def reshape(self, *shape) -> Value:
        out = Value(self.data.reshape(*shape), (self,), "reshape")

        def _backward():
            self.grad = self.grad + out.grad.reshape(self.shape)

        out._backward = _backward
        return out

    # ---- the backward pass ----
    def backward(self, grad=None) -> None:
        """Fill ``.grad`` of every node this value depends on (d self / d node)."""
        order: list[Value] = []
        seen: set[int] = set()
        stack = [(self, False)]
        while stack:  # iterative post-order DFS: deep graphs (RNNs) do not hit the recursion limit
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data) if grad is None else _as_array(grad).astype(self.data.dtype)
        for node in reversed(order):
            node._backward()
