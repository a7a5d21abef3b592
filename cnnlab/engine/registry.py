"""The task registry: tasks register here, and the engine finds them by name.

The engine owns the registry (as ``cnnlab.models.registry`` owns the models'), so it depends on
no task: ``@register_task`` in a task's module adds it, and the built-in task modules are
imported by name the first time a task is looked up. ``cnnlab.tasks`` re-exports these functions.
"""

from __future__ import annotations

import importlib
import importlib.util

from cnnlab.errors import ConfigError

_TASKS: dict[str, type] = {}
BUILTIN_MODULES = ("cnnlab.tasks.classify", "cnnlab.tasks.localize", "cnnlab.tasks.landmarks", "cnnlab.tasks.detect",
                   "cnnlab.tasks.segment", "cnnlab.tasks.charlm", "cnnlab.tasks.verify", "cnnlab.tasks.stylenet",
                   "cnnlab.tasks.generate", "cnnlab.tasks.caption")


def register_task(cls: type) -> type:
    """Class decorator: register a Task subclass under its ``name``."""
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls
    return cls


def _import_builtin() -> None:
    for module in BUILTIN_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def list_tasks() -> list[str]:
    _import_builtin()
    return sorted(_TASKS)


def get_task(name: str) -> type:
    """The task class registered as ``name``."""
    _import_builtin()
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(sorted(_TASKS))}")
    return _TASKS[name]
