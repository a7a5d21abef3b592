"""cnnlab: the CNNs-for-visual-recognition curriculum as one offline-first PyTorch library."""

__version__ = "0.1.0"


def create_model(*args, **kwargs):
    """Build a registered model by name (see cnnlab.models.registry.create_model)."""
    from cnnlab.models import create_model as _create

    return _create(*args, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, optionally filtered by a glob pattern."""
    from cnnlab.models import list_models as _list

    return _list(pattern)


def load_run(run_dir, which: str = "best"):
    """Load a training run folder: returns (model, metadata) ready for evaluation."""
    from cnnlab.engine.checkpoint import load_run as _load

    return _load(run_dir, which=which)


__all__ = ["__version__", "create_model", "list_models", "load_run"]
