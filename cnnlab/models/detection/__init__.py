"""Detectors on any zoo backbone (DESIGN's backbone contract): YOLO with anchor boxes, SSD, and
sliding windows (with their convolutional implementation). Each takes a backbone module, returns raw
head outputs from ``forward``, and has ``loss(outputs, targets)`` and ``detect(outputs) -> list[dict]``
(boxes f32[N,4] xyxy px, scores f32[N], labels i64[N]) so the ``detect`` task treats them alike."""

from cnnlab.models.detection.sliding_window import CourseWindowNet, SlidingWindowDetector
from cnnlab.models.detection.ssd import SSD
from cnnlab.models.detection.yolo import YOLO

DETECTORS = ("yolo", "ssd", "sliding_window")

__all__ = ["YOLO", "SSD", "SlidingWindowDetector", "CourseWindowNet", "DETECTORS"]
