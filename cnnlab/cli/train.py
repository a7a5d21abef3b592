"""`cnnlab train classify ...`: every flag is a field of cnnlab.engine.config.TrainConfig."""

from __future__ import annotations

import argparse

from cnnlab.errors import ConfigError

EXAMPLES = """examples:
  cnnlab train classify --data fashion-mnist --model lenet5 --epochs 10
  cnnlab train classify --data fashion-mnist --recipe fast          # the 2-minute recipe
  cnnlab train classify --data ~/photos/pets --model resnet18 --img-size 64 --augment standard
  cnnlab train classify --data ~/photos/pets --model resnet18 --weights resnet18.pth --freeze 3
  cnnlab train classify --resume runs/classify-lenet5-20261123-120000     # continue a stopped run
  torchrun --nproc-per-node 2 -m cnnlab train classify --data fashion-mnist --model convnet_bn"""

# (flag, field, type, help); bools are switches. Defaults come from TrainConfig or the recipe.
OPTIONS: list[tuple[str, str, object, str]] = [
    ("--data", "data", str, "fashion-mnist, mnist, digits, or a folder of images (one subfolder per class)"),
    ("--data-root", "data_root", str, "folder of the IDX files (default: the Debian package's folder)"),
    ("--model", "model", str, "registered model name (see `cnnlab models`)"),
    ("--img-size", "img_size", int, "resize images to this square size (image folders)"),
    ("--channels", "channels", int, "1 (grey) or 3 (RGB); default: from the data"),
    ("--val-fraction", "val_fraction", float, "hold out this fraction of training images for validation"),
    ("--limit", "limit", int, "use at most N training images (quick runs)"),
    ("--limit-test", "limit_test", int, "use at most N validation/test images"),
    ("--skip-bad", "skip_bad", bool, "skip unreadable images (counted in the log) instead of stopping"),
    ("--augment", "augment", str, "none, flip-crop, standard, alexnet, or e.g. 'hflip,crop=4,scale=0.35-1,jitter=0.4,pca=0.1,rotate=10,shear=5'"),
    ("--progressive-resize", "progressive_resize", str, "MIN:FRACTION, e.g. 16:0.5: train the first epochs on MIN-pixel images, growing linearly to full size over FRACTION of the epochs (models with global pooling); default none"),
    ("--normalize", "normalize", str, "channel (per-channel mean/std), image (mean image) or none"),
    ("--epochs", "epochs", int, "number of passes over the training set"),
    ("--batch-size", "batch_size", int, "images per step"),
    ("--optimizer", "optimizer", str, "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, lbfgs (full batch)"),
    ("--lr", "lr", float, "peak learning rate (default depends on the optimizer)"),
    ("--momentum", "momentum", float, "momentum for momentum/nesterov"),
    ("--weight-decay", "weight_decay", float, "L2 weight decay (not on biases and norm parameters)"),
    ("--decay-norm-and-bias", "decay_norm_and_bias", bool, "apply weight decay to biases and norm parameters too"),
    ("--l1", "l1", float, "L1 penalty on weights (with --weight-decay: elastic net)"),
    ("--schedule", "schedule", str, "none, step, exp, inv (1/t), cosine, onecycle"),
    ("--step-size", "step_size", float, "epochs between decays for --schedule step"),
    ("--gamma", "gamma", float, "decay factor for step (per step) and exp (per epoch)"),
    ("--decay-k", "decay_k", float, "k of the 1/t schedule: lr / (1 + k * epoch)"),
    ("--warmup-epochs", "warmup_epochs", float, "linear warm-up length in epochs"),
    ("--grad-clip", "grad_clip", float, "clip the gradient norm to this value"),
    ("--label-smoothing", "label_smoothing", float, "label smoothing of the cross-entropy (e.g. 0.1)"),
    ("--drop-rate", "drop_rate", float, "dropout rate before the classifier"),
    ("--init", "init", str, "weight initialization: default, small, xavier, he, lsuv (data-dependent)"),
    ("--init-std", "init_std", float, "standard deviation for --init small"),
    ("--ema", "ema", float, "keep an exponential moving average of the weights (decay per step, e.g. 0.999)"),
    ("--weights", "weights", str, "start from a cnnlab checkpoint or torchvision state-dict file"),
    ("--freeze", "freeze", int, "freeze the first N stages of the model (transfer learning)"),
    ("--on-features", "on_features", str, "train a softmax head on features from `cnnlab features`"),
    ("--seed", "seed", int, "random seed (runs are seeded by default)"),
    ("--deterministic", "deterministic", bool, "bit-exact runs (deterministic algorithms)"),
    ("--device", "device", str, "auto, cpu, cuda, cuda:N"),
    ("--channels-last", "channels_last", bool, "channels_last memory format"),
    ("--precision", "precision", str, "fp32, or bf16: the training step's forward in bfloat16 autocast (fast on CPUs with AVX-512 BF16/AMX); evaluation stays fp32"),
    ("--compile", "compile", bool, "torch.compile the model"),
    ("--threads", "threads", int, "CPU threads for torch"),
    ("--num-workers", "num_workers", int, "data-loading processes (image folders too big for memory)"),
    ("--skip-nonfinite", "skip_nonfinite", bool, "skip batches whose loss is NaN/inf instead of stopping"),
    ("--stop-after", "stop_after", int, "train this many epochs now, then stop resumably (the schedule still spans --epochs)"),
    ("--snapshots", "snapshots", bool, "keep a checkpoint of every epoch (for `cnnlab ensemble`)"),
    ("--tta", "eval_tta", str, "test-time augmentation of every evaluation (per epoch and final): none or flip"),
    ("--out", "out", str, "run folder (default: runs/<task>-<model>-<time>)"),
    ("--recipe", "recipe", str, "named recipe: fast (about 2 minutes: 93.6%% on Fashion-MNIST) or best (under 20 minutes: 94.9%%)"),
    ("--quiet", "quiet", bool, "no progress bars"),
]


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model on a task", description="Train a model; writes a run folder.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = train.add_subparsers(dest="task", metavar="TASK")
    p = tasks.add_parser("classify", help="image classification", epilog=EXAMPLES,
                         description="Train an image classifier. Writes config.json, metrics.csv, checkpoints, plots and summary.json to the run folder.",
                         formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=argparse.SUPPRESS)
    for flag, name, typ, help_ in OPTIONS:
        if typ is bool:
            p.add_argument(flag, dest=name, action="store_true", help=help_)
        else:
            p.add_argument(flag, dest=name, type=typ, help=help_, metavar=name.upper() if typ is str else None)
    p.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE",
                   help="extra model constructor argument, e.g. --model-arg width=64 (repeatable)")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="do not write TensorBoard event files")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint (other flags taken: --epochs, --stop-after, --threads, --quiet)")
    p.set_defaults(func=run_train)
    train.set_defaults(func=lambda args: train.print_help() or 2)


def config_from_args(args: argparse.Namespace):
    """TrainConfig from defaults, then the recipe, then the flags actually given."""
    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.recipes import recipe

    given = {name: getattr(args, name) for _, name, _, _ in OPTIONS if hasattr(args, name)}
    values: dict = {}
    if given.get("recipe"):
        values.update(recipe(given["recipe"]))
    values.update(given)
    if getattr(args, "model_args", None):
        kwargs = dict(values.get("model_kwargs", {}))
        for item in args.model_args:
            if "=" not in item:
                raise ConfigError(f"--model-arg {item!r} must look like KEY=VALUE")
            key, value = item.split("=", 1)
            kwargs[key] = _parse_value(value)
        values["model_kwargs"] = kwargs
    if hasattr(args, "tensorboard"):
        values["tensorboard"] = args.tensorboard
    return TrainConfig(**values).validate()


def _parse_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run_train(args: argparse.Namespace) -> int:
    from cnnlab.tasks.classify_pipeline import train_classifier

    if getattr(args, "resume", None):
        from cnnlab.engine.run import read_config

        cfg = read_config(args.resume)
        cfg.epochs = getattr(args, "epochs", cfg.epochs)
        cfg.quiet = getattr(args, "quiet", cfg.quiet)
        cfg.threads = getattr(args, "threads", cfg.threads)
        cfg.stop_after = getattr(args, "stop_after", None)
        _, result, _ = train_classifier(cfg, resume=args.resume)
    else:
        cfg = config_from_args(args)
        _, result, _ = train_classifier(cfg)
    return 130 if result.status == "interrupted" else 0
