"""Errors meant for people: each one line that names the thing and the fix.

The CLI prints ``error: <message>`` for any CnnlabError and exits with status 2;
everything else is a bug and keeps its traceback.
"""


class CnnlabError(Exception):
    """Base class for user-facing errors (bad input, unknown names, impossible settings)."""


class DataError(CnnlabError):
    """A dataset, image or label file is missing, corrupt or not usable."""


class ModelError(CnnlabError):
    """Unknown model name, incompatible weights or an impossible architecture setting."""


class ShapeError(CnnlabError):
    """An input has the wrong shape for the operation or model."""


class ConfigError(CnnlabError):
    """A command-line option or configuration value is invalid."""


class CheckpointError(CnnlabError):
    """A run folder or checkpoint is missing, incomplete or corrupt."""


class TrainingError(CnnlabError):
    """Training cannot go on (for example a non-finite loss)."""
