"""Tasks: one file each, registered by name; `cnnlab train <name>` dispatches on the registry.

    @register_task
    class Localize(Task):
        name = "localize"
        Config = LocalizeConfig
        ...

The registry itself lives in cnnlab/engine/registry.py (the engine depends on no task); see
cnnlab/tasks/base.py for the protocol and docs/tasks.md for a worked example.
"""

from cnnlab.engine.registry import get_task, list_tasks, register_task

__all__ = ["register_task", "get_task", "list_tasks"]
