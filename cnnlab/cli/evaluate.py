"""`cnnlab evaluate`, `cnnlab predict`, `cnnlab ensemble`: use a finished run folder."""

from __future__ import annotations

import argparse
import json

EVAL_EXAMPLES = """examples:
  cnnlab evaluate runs/classify-lenet5-20261123-120000
  cnnlab evaluate RUN_DIR --tta flip            average over each image and its mirror
  cnnlab evaluate RUN_DIR --tta ten-crop        AlexNet's 10 crops
  cnnlab evaluate RUN_DIR --data ~/photos/test  another folder with the same class subfolders"""

PREDICT_EXAMPLES = """examples:
  cnnlab predict runs/classify-lenet5-20261123-120000 shoe.jpg shirt.png
  cnnlab predict RUN_DIR photos/*.jpg --topk 3 --json"""

ENSEMBLE_EXAMPLES = """examples:
  cnnlab ensemble runs/classify-a runs/classify-b runs/classify-c    average several runs
  cnnlab ensemble runs/classify-a                                    one run's --snapshots"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("evaluate", help="accuracy, top-5, per-class accuracy and confusion matrix of a run",
                       description="Evaluate a run's best checkpoint on its test split (or --split).", epilog=EVAL_EXAMPLES, formatter_class=fmt)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--tta", default="none", choices=["none", "flip", "ten-crop"], help="test-time augmentation")
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--data", help="evaluate on other data with the same classes")
    p.add_argument("--data-root", help="folder of the IDX files")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="top-k classes of image files", description="Classify your own images with a run's best checkpoint.",
                       epilog=PREDICT_EXAMPLES, formatter_class=fmt)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--tta", default="none", choices=["none", "flip", "ten-crop"])
    p.add_argument("--json", action="store_true", help="print predictions as JSON lines")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("ensemble", help="average the softmax outputs of several runs (or one run's snapshots)",
                       description="Evaluate each member and the ensemble of their averaged class probabilities.",
                       epilog=ENSEMBLE_EXAMPLES, formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--tta", default="none", choices=["none", "flip", "ten-crop"])
    p.add_argument("--split", default="test", choices=["test", "val"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_ensemble)


def run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.engine import plots
    from cnnlab.tasks.classify_eval import evaluate_run

    m, meta = evaluate_run(args.run_dir, tta=args.tta, which=args.checkpoint, split=args.split, data=args.data, data_root=args.data_root)
    classes = meta["classes"]
    out = Path(args.run_dir) / "plots" / f"confusion-{args.split}-{args.tta}.png"
    out.parent.mkdir(exist_ok=True)
    plots.plot_confusion(m["confusion"], classes, out)
    topk = next(k for k in m if k.startswith("top"))
    if args.json:
        print(json.dumps({"acc": m["acc"], topk: m[topk], "loss": m["loss"], "count": m["count"], "tta": args.tta,
                          "per_class_acc": dict(zip(classes, m["per_class_acc"])), "confusion": m["confusion"]}))
        return 0
    print(f"{args.split} images: {m['count']}   tta: {args.tta}")
    print(f"top-1 accuracy: {m['acc']:.4f}   {topk} accuracy: {m[topk]:.4f}   loss: {m['loss']:.4f}")
    print("per-class accuracy:")
    width = max(len(c) for c in classes)
    for c, a in zip(classes, m["per_class_acc"]):
        print(f"  {c:<{width}}  {a:.4f}")
    k = len(classes)
    if k <= 20:
        print("confusion matrix (rows: true, columns: predicted):")
        for i, row in enumerate(m["confusion"]):
            print(f"  {classes[i][:width]:<{width}} " + " ".join(f"{v:5d}" for v in row))
    print(f"confusion plot: {out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.engine.checkpoint import load_run
    from cnnlab.errors import ConfigError
    from cnnlab.tasks.classify_eval import prepare_image, tta_probs

    if args.topk < 1:
        raise ConfigError(f"--topk {args.topk}: must be at least 1")
    model, meta = load_run(args.run_dir)
    if meta.get("on_features"):
        raise ConfigError(f"{args.run_dir} is a softmax head on features; predict with the run the features came from")
    classes = meta["classes"]
    for path in args.images:
        x = prepare_image(path, meta)[None]  # (1, C, H, W)
        with torch.no_grad():
            probs = tta_probs(model, x, args.tta)[0]
        p, idx = probs.topk(min(args.topk, len(classes)))
        if args.json:
            print(json.dumps({"image": path, "top": [{"class": classes[i], "prob": round(float(q), 6)} for q, i in zip(p, idx)]}))
        else:
            print(f"{path}: " + ", ".join(f"{classes[i]} {float(q):.3f}" for q, i in zip(p, idx)))
    return 0


def run_ensemble(args: argparse.Namespace) -> int:
    from cnnlab.tasks.classify_eval import evaluate_ensemble

    r = evaluate_ensemble(args.run_dirs, tta=args.tta, split=args.split)
    if args.json:
        print(json.dumps(r))
        return 0
    width = max(len(m["member"]) for m in r["members"])
    for m in r["members"]:
        print(f"  {m['member']:<{width}}  {args.split} accuracy {m['acc']:.4f}")
    best = max(m["acc"] for m in r["members"])
    print(f"ensemble of {len(r['members'])}: {args.split} accuracy {r['ensemble_acc']:.4f} "
          f"(best member {best:.4f}, {r['ensemble_acc'] - best:+.4f})")
    return 0
