"""Metrics: each an evaluator with update(...) / compute() that the trainer can all-reduce."""
