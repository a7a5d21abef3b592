"""Pure tensor and shape functions with shape docstrings (conv arithmetic, boxes, ...)."""
