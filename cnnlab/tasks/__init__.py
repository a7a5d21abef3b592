"""Tasks: one file each, registered by name; `cnnlab train <name>` dispatches on the registry.

    @register_task
    class Localize(Task):
        name = "localize"
        Config = LocalizeConfig
        ...

See cnnlab/tasks/base.py for the protocol and docs/tasks.md for a worked example.
"""

from __future__ import annotations

import importlib
import importlib.util

from cnnlab.errors import ConfigError

_TASKS: dict[str, type] = {}
BUILTIN = ("classify", "localize", "landmarks")


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"cnnlab.tasks.{name}") is not None


def register_task(cls: type) -> type:
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls
    return cls


def _import_builtin() -> None:
    for name in BUILTIN:
        if _available(name):
            importlib.import_module(f"cnnlab.tasks.{name}")


def list_tasks() -> list[str]:
    _import_builtin()
    return sorted(_TASKS)


def get_task(name: str) -> type:
    """The task class registered as ``name``."""
    _import_builtin()
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


__all__ = ["register_task", "get_task", "list_tasks"]
