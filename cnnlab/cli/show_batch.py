"""`cnnlab show-batch`: a grid of augmented training images, exactly as a training run would see them.

Takes the flags of `cnnlab train classify` (or `--config config.json`), builds the data and the
training loader the same way, draws the first batch of epoch ``--epoch`` (augmentation undone only
for the normalization, so colours look right) and writes a PNG. Nothing is trained, no run folder is made.
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnlab show-batch --data fashion-mnist --augment standard --png batch.png
  cnnlab show-batch --data ~/photos/pets --img-size 96 --augment 'hflip,crop=8,jitter=0.4,erase=0.5'
  cnnlab show-batch --config runs/classify-resnet9-x/config.json --epoch 3"""


def register(sub: argparse._SubParsersAction) -> None:
    from cnnlab.cli.train import add_config_flags
    from cnnlab.tasks.classify import ClassifyConfig

    p = sub.add_parser("show-batch", help="draw a batch of augmented training images (classification) to a PNG",
                       description="Draw the first batch of a training epoch, augmented as `cnnlab train classify` with "
                                   "the same flags would augment it, with each image's class.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                       argument_default=argparse.SUPPRESS)
    add_config_flags(p, ClassifyConfig)
    p.add_argument("--config", metavar="FILE", help="start from a config.json (e.g. a run's); flags given win")
    p.add_argument("--png", metavar="FILE.png", default="batch.png", help="the image to write (default: batch.png)")
    p.add_argument("--count", type=int, default=32, metavar="N", help="images to draw, at most one batch (default: 32)")
    p.add_argument("--epoch", type=int, default=0, metavar="N",
                   help="the epoch whose first batch to draw (augmentation differs per epoch; default: 0)")
    p.set_defaults(func=run_show_batch)


def run_show_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from cnnlab.cli.train import config_from_args
    from cnnlab.engine import plots
    from cnnlab.engine.run import setup_environment
    from cnnlab.errors import ConfigError
    from cnnlab.tasks.classify import setup

    png = Path(args.png)
    if png.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise ConfigError(f"--png {png}: end it in .png (or .jpg, .pdf, .svg)")
    if args.count < 1 or args.epoch < 0:
        raise ConfigError(f"--count {args.count} / --epoch {args.epoch}: --count must be at least 1, --epoch at least 0")
    cfg = config_from_args(args, "classify")
    if cfg.on_features:
        raise ConfigError("--on-features trains on feature vectors, not images: there is no batch of images to show")
    setup_environment(cfg)
    task, data = setup(cfg)
    loader = task.train_loader(task.cfg, data)
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(args.epoch)
    try:
        batch = next(iter(loader))
    except StopIteration:
        raise ConfigError(f"the training split ({len(data.train)} images) gives no batch of --batch-size "
                          f"{cfg.batch_size}; lower --batch-size") from None
    x, y = batch["images"][:args.count].float().cpu(), batch["labels"][:args.count].cpu()  # (N, C, H, W)
    norm = task.normalization()
    if norm is not None:
        x = norm.inverse(x)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    classes = task.meta["classes"]
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        plots.plot_image_grid(images, [classes[int(c)] for c in y], png,
                              title=f"{data.source}: epoch {args.epoch}, augment {cfg.augment}")
    except OSError as e:
        raise ConfigError(f"--png {png}: cannot write it ({e.strerror or e}); choose a writable path") from None
    print(f"wrote {png}: {len(images)} training images of {tuple(images.shape[1:])}, augment {cfg.augment!r}")
    return 0
