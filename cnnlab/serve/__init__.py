"""`cnnlab serve`: a web page and a JSON API over a run folder or a pretrained model."""

from cnnlab.serve.predictor import BadImage, Predictor

__all__ = ["BadImage", "Predictor", "build_app"]


def build_app(*args, **kwargs):
    from cnnlab.serve.app import build_app as _build

    return _build(*args, **kwargs)
