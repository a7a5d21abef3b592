"""`cnnlab train TASK ...`: one subcommand per registered task, its flags generated from the task's Config.

A field's metadata (``cnnlab.engine.config.opt``) gives the flag, its help, its group in
``--help`` (data, model, optimization, regularization, run) and its range; defaults come from
the dataclass, then a ``--recipe`` or ``--config FILE``, then the flags actually given.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from cnnlab.engine.config import GROUPS, base_type, flag_name
from cnnlab.errors import ConfigError

EXAMPLES = {
    "classify": """examples:
  cnnlab train classify --data fashion-mnist --model lenet5 --epochs 10
  cnnlab train classify --data fashion-mnist --recipe fast          # the 2-minute recipe
  cnnlab train classify --data ~/photos/pets --model resnet18 --img-size 64 --augment standard
  cnnlab train classify --data ~/photos/pets --model mobilenet_v2 --weights imagenet --img-size 96 --freeze 4
  cnnlab train classify --resume runs/classify-lenet5-20261123-120000     # continue a stopped run
  torchrun --nproc-per-node 2 -m cnnlab train classify --data fashion-mnist --model convnet_bn""",
}
RESUME_OVERRIDES = ("epochs", "stop_after", "threads", "quiet", "num_workers", "device")


def register(sub: argparse._SubParsersAction) -> None:
    from cnnlab.tasks import get_task, list_tasks

    train = sub.add_parser("train", help="train a model on a task (classify, localize, landmarks, ...)",
                           description="Train a model on a task; writes a run folder.",
                           epilog=EXAMPLES["classify"], formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = train.add_subparsers(dest="task", metavar="TASK")
    for name in list_tasks():
        task_cls = get_task(name)
        doc = (getattr(task_cls, "description", None)  # several tasks in one module say which each is
               or task_cls.__module__ and __import__(task_cls.__module__, fromlist=["_"]).__doc__ or name).strip()
        p = tasks.add_parser(name, help=doc.splitlines()[0], description=doc.split("\n\n")[0] +
                             "\n\nWrites config.json, metrics.csv, checkpoints, plots, report.md and summary.json to the run folder.",
                             epilog=EXAMPLES.get(name, getattr(task_cls, "examples", "")),
                             formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=argparse.SUPPRESS)
        add_config_flags(p, task_cls.Config)
        p.add_argument("--config", metavar="FILE", help="start from a config.json (e.g. another run's); flags given win")
        p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint "
                       f"(flags taken: {', '.join('--' + o.replace('_', '-') for o in RESUME_OVERRIDES)})")
        p.set_defaults(func=run_train, task_name=name)
    train.set_defaults(func=lambda args: train.print_help() or 2)


def add_config_flags(p: argparse.ArgumentParser, config_cls: type) -> None:
    """One flag per field of ``config_cls``, in its metadata group, with its default in the help text."""
    hints = typing.get_type_hints(config_cls)
    groups = {g: p.add_argument_group(f"{g} options") for g in GROUPS}
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        group = groups.get(meta.get("group", "run"), groups["run"])
        kind = base_type(hints[f.name])
        flag = flag_name(f)
        default = getattr(defaults, f.name)
        help_ = (meta.get("help") or "").replace("%", "%%")
        if kind is bool:
            if default:  # a switch that turns a default-on setting off (--no-tensorboard)
                group.add_argument(flag, dest=f.name, action="store_false", help=help_ + " (on by default)")
            else:
                group.add_argument(flag, dest=f.name, action="store_true", help=help_)
        elif kind is dict:
            group.add_argument(flag, dest="model_args", action="append", metavar="KEY=VALUE",
                               help="extra model constructor argument, e.g. --model-arg width=64 (repeatable)")
        else:
            shown = "(required)" if default == "" else f"(default: {'auto' if default is None else default})"
            group.add_argument(flag, dest=f.name, type=_typed(kind, flag), metavar=f.name.upper() if kind is str else "N",
                               help=f"{help_} {shown}")


def _typed(kind, flag: str):
    def convert(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None

    convert.__name__ = kind.__name__
    return convert if kind in (int, float) else kind


def config_from_args(args: argparse.Namespace, task_name: str | None = None):
    """The task's Config from defaults, then --config FILE or the recipe, then the flags actually given."""
    from cnnlab.engine.checkpoint import read_json
    from cnnlab.tasks import get_task

    task_name = task_name or getattr(args, "task_name", "classify")
    config_cls = get_task(task_name).Config
    names = {f.name for f in dataclasses.fields(config_cls)}
    given = {n: getattr(args, n) for n in names if hasattr(args, n)}
    values: dict = {}
    if getattr(args, "config", None):
        saved = read_json(args.config)
        if not isinstance(saved, dict):
            raise ConfigError(f"--config {args.config}: must hold a JSON object of settings")
        values.update({k: v for k, v in saved.items() if k in names and k not in ("out", "task")})
    if given.get("recipe"):
        from cnnlab.engine.recipes import recipe

        task_recipes = getattr(get_task(task_name), "recipes", None)  # a task with its own named recipes
        values.update(dict(task_recipes[given["recipe"]]) if task_recipes else recipe(given["recipe"]))
    values.update(given)
    if getattr(args, "model_args", None):
        kwargs = dict(values.get("model_kwargs", {}))
        for item in args.model_args:
            if "=" not in item or not item.split("=", 1)[0]:
                raise ConfigError(f"--model-arg {item!r} must look like KEY=VALUE")
            key, value = item.split("=", 1)
            kwargs[key] = _parse_value(value)
        values["model_kwargs"] = kwargs
    values["task"] = task_name
    _model_from_weights_run(values, given)
    return config_cls(**values).validate()


def _model_from_weights_run(values: dict, given: dict) -> None:
    """--weights RUN_DIR without --model: the run's model and its options (not its image size or dropout)."""
    from cnnlab.engine.checkpoint import find_checkpoint, read_json

    weights = values.get("weights")
    if not weights or not Path(weights).is_dir() or "model" in given:
        return
    meta = read_json(find_checkpoint(weights, "best").with_suffix(".json"))
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        return  # load_weights names what is wrong with the folder
    values["model"] = meta["model"]
    if not given.get("model_kwargs") and "model_args" not in given:
        kwargs = meta.get("model_kwargs") if isinstance(meta.get("model_kwargs"), dict) else {}
        values["model_kwargs"] = {k: v for k, v in kwargs.items() if k not in ("img_size", "drop_rate")}


def _parse_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run_train(args: argparse.Namespace) -> int:
    from cnnlab.engine.pipeline import train

    if getattr(args, "resume", None):
        from cnnlab.engine.run import read_config

        cfg = read_config(args.resume)
        if cfg.task != args.task_name:
            raise ConfigError(f"--resume {args.resume} is a {cfg.task} run; resume it with `cnnlab train {cfg.task} --resume ...`")
        changes = {k: getattr(args, k) for k in RESUME_OVERRIDES if hasattr(args, k)}
        changes.setdefault("stop_after", None)
        cfg = dataclasses.replace(cfg, **changes).validate()
        _, result, _ = train(cfg, resume=Path(args.resume))
    else:
        _, result, _ = train(config_from_args(args))
    if result.status == "evaluation-interrupted":  # 128 + the signal's number, as if it had killed us
        return 143 if result.signal == "SIGTERM" else 130
    return 130 if result.status == "interrupted" else 0
