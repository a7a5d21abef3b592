"""What the web page calls: one image (bytes) in, the JSON of ``cnnlab predict`` out, plus a picture.

A ``Predictor`` holds one model in memory: a run folder of an image task (classify, localize, landmarks,
detect, segment) or a pretrained zoo model (``mobilenet_v2`` with ImageNet weights). For classifiers it
adds a Grad-CAM overlay of the top class; for the other tasks the task's own drawing (boxes, points,
mask). Uploads are checked the way ``cnnlab predict`` checks files (not an image, truncated, a
decompression bomb): a bad one raises ``BadImage`` with one line and an HTTP status, the model stays up.
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import CnnlabError, ConfigError

IMAGE_TASKS = ("classify", "localize", "landmarks", "detect", "segment")


class BadImage(Exception):
    """An upload the model cannot take; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _png_data_url(arr: np.ndarray) -> str:
    """(H, W, 3) float in [0, 1] or uint8 -> 'data:image/png;base64,...'."""
    from PIL import Image

    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _user_message(e: Exception, tmp: str, name: str) -> str:
    """A loader's one line about a temporary file, said about the upload (and without command-line advice)."""
    msg = str(e).replace(tmp, name)
    msg = re.sub(r";?\s*(delete it |re-export the file |downscale it )?or pass --skip-bad", "", msg)
    return msg


class Predictor:
    """``predict(data, filename) -> dict``; thread-safe (one request at a time reaches the model)."""

    def __init__(self, run_dir: str | None = None, model: str | None = None, weights: str | None = None,
                 topk: int = 5, gradcam: bool = True):
        self.topk, self.gradcam = topk, gradcam
        self.lock = threading.Lock()
        if model:
            if run_dir:
                raise ConfigError("give a run folder or --model with --weights, not both")
            if not weights:
                raise ConfigError(f"--model {model} needs --weights (imagenet, or a weights file)")
            from cnnlab.explain.common import from_pretrained

            self.subject = from_pretrained(model, weights)
            self.task = None
            self.name, self.kind = f"{model} ({weights})", "classify"
            self.classes = self.subject.classes
        elif run_dir:
            from cnnlab.engine.evaluate import load_task

            self.task, self.net, meta, _ = load_task(run_dir)
            if self.task.name not in IMAGE_TASKS or meta.get("on_features"):
                raise ConfigError(f"{run_dir}: a {self.task.name} run; cnnlab serve shows predictions on images of "
                                  f"{', '.join(IMAGE_TASKS)} runs")
            self.kind = self.task.name
            self.name = f"{meta.get('model', self.kind)} ({Path(run_dir).name})"
            self.classes = list(meta.get("classes") or [])
            self.subject = None
            if self.kind == "classify" and gradcam:
                from cnnlab.explain.common import from_run

                self.subject = from_run(run_dir)
        else:
            raise ConfigError("give a run folder (cnnlab serve RUN_DIR) or --model with --weights "
                              "(cnnlab serve --model mobilenet_v2 --weights imagenet)")

    def info(self) -> dict[str, Any]:
        return {"model": self.name, "task": self.kind, "classes": len(self.classes)}

    def predict(self, data: bytes, filename: str = "upload") -> dict[str, Any]:
        name = os.path.basename(filename or "upload") or "upload"
        if not data:
            raise BadImage(f"{name}: the upload is empty; choose an image file")
        suffix = Path(name).suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", Path(name).suffix.lower()) else ".img"
        fd, tmp = tempfile.mkstemp(prefix="cnnlab-serve-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            with self.lock:
                return self._predict_file(tmp, name)
        except CnnlabError as e:
            text = _user_message(e, tmp, name)
            raise BadImage(text, 413 if "decompression-bomb" in text or "decompression bomb" in text else 400) from None
        finally:
            os.unlink(tmp)

    # ------------------------------------------------------------------ the model
    def _predict_file(self, path: str, name: str) -> dict[str, Any]:
        if self.task is None:  # pretrained ImageNet classifier: exactly `cnnlab predict --model ... --weights ...`
            from cnnlab.cli.evaluate import predict_pretrained_loaded

            row = predict_pretrained_loaded(self.subject.model, self.classes, path, self.topk)
            row["image"] = name
            if self.gradcam:
                row["overlay"] = self._gradcam(path, self.classes.index(row["top"][0]["class"]))
            return row
        x, original = self.task.prepare(path)
        with torch.no_grad():
            kwargs = {"topk": self.topk} if self.kind == "classify" else {}
            pred = self.task.predict(self.net, x[None], [original], **kwargs)[0]
        row = {"image": name, **pred}
        if self.kind == "classify":
            if self.subject is not None:
                row["overlay"] = self._gradcam(path, self.classes.index(row["top"][0]["class"]))
        elif hasattr(self.task, "draw"):
            out = Path(path).with_suffix(".drawn.png")
            try:
                self.task.draw(original, pred, out)
                if out.exists():
                    from PIL import Image

                    row["drawing"] = _png_data_url(np.asarray(Image.open(out).convert("RGB")))
            finally:
                out.unlink(missing_ok=True)
        return row

    def _gradcam(self, path: str, target: int) -> str:
        from cnnlab.explain.common import overlay
        from cnnlab.explain.gradcam import grad_cam

        x = self.subject.load(path)
        m = grad_cam(self.subject, x, target)
        return _png_data_url(overlay(x[0], m))
