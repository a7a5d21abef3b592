"""Metrics: each an evaluator with update(...) / compute() that the trainer can all-reduce.
Classification in ``classification.py``; detection (COCO AP via pycocotools, VOC AP50) in
``detection.py``; segmentation (mIoU, per-class IoU, pixel accuracy) in ``segmentation.py``."""
