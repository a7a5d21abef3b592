"""`cnnlab features RUN_DIR --out DIR`: penultimate-layer features of every split, saved to disk."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnlab features runs/classify-resnet18-x --data ~/photos/pets --out feats/pets
  cnnlab train classify --on-features feats/pets --epochs 30 --optimizer adam"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="precompute a run's penultimate-layer features for a dataset",
                       description="Run a trained network as a fixed feature extractor over every split of --data and save "
                                   "the features (safetensors) for `cnnlab train classify --on-features DIR`.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="an image classification run folder (the feature extractor)")
    p.add_argument("--data", help="dataset (default: the run's own); its images are sized and normalized like the run's")
    p.add_argument("--data-root", help="folder of the IDX files for a named --data")
    p.add_argument("--val-fraction", type=float, help="hold out this fraction of --data's training images for validation "
                   "(default: the run's own setting)")
    p.add_argument("--limit", type=int, help="use at most N training images")
    p.add_argument("--out", required=True, help="folder to write features.safetensors and features.json")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
    p.set_defaults(func=run_features)


def run_features(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError
    from cnnlab.tasks.classify_features import extract_features, save_features

    out = Path(args.out)
    if (out / "features.safetensors").exists():
        raise ConfigError(f"--out {out} already holds features; choose a new folder")
    task, model, meta, _ = load_task(args.run_dir)
    if task.name != "classify" or meta.get("on_features"):
        raise ConfigError(f"{args.run_dir}: features come from an image classifier run")
    cfg = task.cfg
    changes = dict(channels=meta["in_chans"], img_size=meta["img_size"][0], limit=args.limit, skip_bad=args.skip_bad)
    if args.data:
        changes.update(data=args.data, data_root=args.data_root)
    if args.val_fraction is not None:
        changes["val_fraction"] = args.val_fraction
    import dataclasses

    cfg = dataclasses.replace(cfg, **changes)
    data = task.build_data(cfg)
    splits = {}
    for name in ("train", "val", "test"):
        ds = getattr(data, name)
        if ds is not None:
            loader = task.eval_loader(cfg, data, ds)
            splits[name] = extract_features(model, loader, next(model.parameters()).device, desc=f"{name} features")
    out.mkdir(parents=True, exist_ok=True)
    dim = splits["train"][0].shape[1]
    from cnnlab.engine.checkpoint import model_state

    classes = list(data.meta["classes"])  # the classes of the data the features are of (--data may have others)
    save_features(out, splits, {"source_run": str(args.run_dir), "model": meta["model"],
                                "model_kwargs": dict(meta.get("model_kwargs", {})), "in_chans": meta["in_chans"],
                                "img_size": list(meta["img_size"]), "normalization": meta.get("normalization"),
                                "classes": classes, "feature_dim": dim, "data_source": data.source},
                  backbone=model_state(model))
    print(f"wrote {out / 'features.safetensors'}: " + ", ".join(f"{k} {len(v[1])}x{dim}" for k, v in splits.items()))
    return 0
