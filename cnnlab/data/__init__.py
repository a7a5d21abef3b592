"""Data: named datasets and image folders, image decoding, normalization, augmentation, loaders.

See docs/data.md for the folder layout, image rules and augmentation specs.
"""
