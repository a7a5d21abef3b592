"""`cnnlab evaluate`, `cnnlab predict`, `cnnlab ensemble`: use a finished run folder of any task."""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

from cnnlab.errors import ConfigError, DataError

EVAL_EXAMPLES = """examples:
  cnnlab evaluate runs/classify-lenet5-20261123-120000
  cnnlab evaluate RUN_DIR --tta flip            average over each image and its mirror
  cnnlab evaluate RUN_DIR --tta ten-crop        AlexNet's 10 crops
  cnnlab evaluate RUN_DIR --data ~/photos/test  another folder with the same class subfolders, evaluated whole"""

PREDICT_EXAMPLES = """examples:
  cnnlab predict runs/classify-lenet5-20261123-120000 shoe.jpg shirt.png
  cnnlab predict RUN_DIR photos/ 'more/*.jpg' --topk 3 --json
  cnnlab predict RUN_DIR photos/ --out predictions.csv
  cnnlab predict RUN_DIR photos/ --grid predictions.png      a picture of the predictions
  cnnlab predict --model mobilenet_v2 --weights imagenet coffee.jpg    ImageNet classes, no run folder
  cnnlab predict runs/localize-x photo.png      boxes as JSON, drawings in predictions/"""

ENSEMBLE_EXAMPLES = """examples:
  cnnlab ensemble runs/classify-a runs/classify-b runs/classify-c    average several runs
  cnnlab ensemble runs/classify-a                                    one run's --snapshots"""

TTA = ["none", "flip", "ten-crop"]


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("evaluate", help="metrics of a run's checkpoint on a split (accuracy, IoU, PCK, ...)",
                       description="Evaluate a run's best checkpoint on its test split (or --split), or on other data. "
                                   "Plots go to RUN_DIR/evaluations/ (or --out), never over the training run's own.",
                       epilog=EVAL_EXAMPLES, formatter_class=fmt)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `cnnlab train`")
    p.add_argument("--tta", choices=TTA, help="test-time augmentation (classification; default: the run's own setting)")
    p.add_argument("--split", choices=["test", "val", "train", "test_novel"],
                   help="split of the run's own data to evaluate (default: test, or val when the data has no test split; "
                        "test_novel: caption scenes' held-out colour-shape pairs)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"],
                   help="best (chosen on validation) or last (the latest epoch) (default: best)")
    p.add_argument("--data", help="evaluate on other data with the same classes (a folder is evaluated whole)")
    p.add_argument("--data-root", help="folder of the IDX files")
    p.add_argument("--out", help="folder for the evaluation's plots (default: RUN_DIR/evaluations/<split>-...)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="predictions for image files (a run folder, or --model with --weights)",
                       description="Predict with a run's best checkpoint, or with a pretrained model (--model, --weights). "
                                   "IMAGE may be files, folders or glob patterns.",
                       epilog=PREDICT_EXAMPLES, formatter_class=fmt)
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR|IMAGE", help="a run folder, then images (or only images with --model)")
    p.add_argument("--model", help="a registered model with pretrained --weights instead of a run folder")
    p.add_argument("--weights", help="with --model: imagenet, or a weights file")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--tta", choices=TTA, help="test-time augmentation (classification; default: the run's own setting)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--out", help="also write the predictions to a .csv or .jsonl file")
    p.add_argument("--grid", metavar="FILE.png", help="classifiers: also draw the images in a grid titled "
                   "'predicted p (true)' (the true class is the image's folder name when that is a class)")
    p.add_argument("--data", help="detection: predict every image of this folder's --split (with --coco-json)")
    p.add_argument("--split", choices=["test", "val", "train"], help="with --data: the split (default: test, else val)")
    p.add_argument("--coco-json", metavar="FILE.json", help="detection: write the predictions on --data (or the run's own "
                   "data) in COCO results format, boxes in the original images' pixels")
    p.add_argument("--draw", metavar="DIR", default="predictions",
                   help="folder for drawn predictions of tasks that draw (boxes, points) (default: predictions)")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("ensemble", help="average the softmax outputs of several runs (or one run's snapshots)",
                       description="Evaluate each member and the ensemble of their averaged class probabilities.",
                       epilog=ENSEMBLE_EXAMPLES, formatter_class=fmt)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="several classification run folders, or one run trained with --snapshots")
    p.add_argument("--tta", choices=TTA, help="test-time augmentation of every member (default: the first run's setting)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="split to evaluate (default: test)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run_ensemble)


def run_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.engine.evaluate import evaluate_run, evaluation_folder

    m, info, task = evaluate_run(args.run_dir, split=args.split, which=args.checkpoint, data=args.data,
                                 data_root=args.data_root, tta=args.tta)
    scalars = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    name = f"{info['split'] if not args.data else 'data'}-{args.checkpoint}" + (f"-tta_{info['tta']}" if info.get("tta") else "")
    folder = evaluation_folder(args.run_dir, args.out, name)
    plots = task.evaluation_plots(m, folder) if hasattr(task, "evaluation_plots") else []
    from cnnlab.engine.checkpoint import atomic_write_json

    atomic_write_json(folder / "metrics.json", dict(info, **scalars))
    if args.json:
        print(json.dumps(dict(info, **m)))
        return 0
    print(f"split: {info['split']} ({info['images']} images)   checkpoint: {info['checkpoint']}"
          + (f"   tta: {info['tta']}" if info.get("tta") else ""))
    print("   ".join(f"{k}: {v:.4f}" for k, v in scalars.items()  # per-class entries: print_details' table
                     if k != "count" and not (hasattr(task, "print_details") and k.startswith(("ap50_", "iou_")))))
    if hasattr(task, "print_details"):
        task.print_details(m)
    for path in plots:
        print(f"plot: {path}")
    print(f"metrics: {folder / 'metrics.json'}")
    return 0


def expand_images(patterns: list[str]) -> list[str]:
    """Files, folders (their image files, sorted) and glob patterns -> image paths; one line for what matches nothing."""
    from cnnlab.data.images import is_image_file

    paths: list[str] = []
    for item in patterns:
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*") if p.is_file() and is_image_file(p.name))
            if not found:
                raise DataError(f"{item}: a folder with no image files (.png, .jpg, ...)")
            paths += found
        elif any(c in item for c in "*?["):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise DataError(f"{item}: no file matches this pattern")
            paths += found
        else:
            paths.append(item)
    return paths


def run_predict(args: argparse.Namespace) -> int:
    import torch

    if args.topk < 1:
        raise ConfigError(f"--topk {args.topk}: must be at least 1")
    if args.model:
        return _predict_pretrained(args)
    if args.weights:
        raise ConfigError("--weights goes with --model (e.g. --model mobilenet_v2 --weights imagenet); a run folder has its own")
    if args.coco_json or args.data:
        return _predict_dataset(args)
    if len(args.inputs) < 2:
        raise ConfigError("give a run folder and at least one image: cnnlab predict RUN_DIR IMAGE [...]")
    from cnnlab.engine.evaluate import load_task

    run_dir, images = args.inputs[0], expand_images(args.inputs[1:])
    task, model, meta, _ = load_task(run_dir)
    if args.grid and task.name != "classify":
        raise ConfigError(f"--grid draws classifiers' predictions; {run_dir} is a {task.name} run: use --draw DIR")
    if args.grid and Path(args.grid).suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise ConfigError(f"--grid {args.grid}: end it in .png (or .jpg, .pdf, .svg)")
    drawn = []
    if args.tta and hasattr(task.cfg, "eval_tta"):
        task.cfg.eval_tta = args.tta
    rows = []
    for path in images:
        x, original = task.prepare(path)
        with torch.no_grad():
            kwargs = {"topk": args.topk} if task.name == "classify" else {}
            pred = task.predict(model, x[None], [original], **kwargs)[0]
        row = {"image": path, **pred}
        if hasattr(task, "draw") and task.name != "classify":
            out = Path(args.draw) / (Path(path).stem + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            task.draw(original, pred, out)
            row["drawing"] = str(out)
        rows.append(row)
        if args.grid:
            drawn.append(original)
        _print_row(row, args.json)
    _write_rows(rows, args.out)
    if args.grid:
        _draw_grid(args.grid, drawn, rows, list(meta["classes"]))
    return 0


def _predict_dataset(args: argparse.Namespace) -> int:
    """``predict RUN_DIR --data DIR --coco-json out.json``: a whole split's detections in COCO results format."""
    from cnnlab.engine.evaluate import load_task

    if not args.coco_json:
        raise ConfigError("--data goes with --coco-json FILE.json (or evaluate the folder: cnnlab evaluate RUN_DIR --data DIR)")
    if not args.coco_json.endswith(".json"):
        raise ConfigError(f"--coco-json {args.coco_json}: end it in .json")
    if len(args.inputs) != 1:
        raise ConfigError("with --coco-json give only the run folder: cnnlab predict RUN_DIR --data DIR --coco-json out.json")
    task, model, _, _ = load_task(args.inputs[0])
    if not hasattr(task, "coco_predictions"):
        raise ConfigError(f"--coco-json: {args.inputs[0]} is a {task.name} run; COCO results are written for detect runs")
    path, n_images, n_dets, split = task.coco_predictions(model, args.coco_json, args.data, args.split)
    print(f"wrote {n_dets} detections on {n_images} {split} images to {path} (COCO results format)")
    return 0


def _draw_grid(path: str, images: list, rows: list[dict], classes: list[str]) -> None:
    """The predicted class and its probability over each image, '(true)' below when the image's folder names a class."""
    import numpy as np

    from cnnlab.engine import plots

    index = {c: i for i, c in enumerate(classes)}
    size = max(max(im.shape[-2:]) for im in images)
    import torch.nn.functional as F

    same = [F.interpolate(im[None].float(), size=(size, size), mode="nearest")[0].byte() if tuple(im.shape[-2:]) != (size, size)
            else im for im in images]
    chans = max(im.shape[0] for im in same)
    arr = np.stack([im.expand(chans, -1, -1).numpy() for im in same])  # (N, C, H, W) uint8
    pred = [index[r["top"][0]["class"]] for r in rows]
    probs = [r["top"][0]["prob"] for r in rows]
    true = [index.get(Path(r["image"]).parent.name) for r in rows]
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        plots.plot_prediction_grid(arr, pred, probs, classes, Path(path), true=true,
                                   title="predicted probability (true class, from the folder name); wrong in red")
    except OSError as e:
        raise ConfigError(f"--grid {path}: cannot write it ({e.strerror or e}); choose a writable path") from None
    print(f"wrote {path}")


def _predict_pretrained(args: argparse.Namespace) -> int:
    if not args.weights:
        raise ConfigError(f"--model {args.model} needs --weights (imagenet, or a weights file)")
    rows = predict_pretrained(args.model, args.weights, expand_images(args.inputs), args.topk)
    for row in rows:
        _print_row(row, args.json)
    _write_rows(rows, args.out)
    return 0


def predict_pretrained(model_name: str, weights: str, paths, topk: int = 5) -> list[dict]:
    """Top-k classes of a pretrained model (ImageNet preprocessing and class names travel with the weights)."""
    from cnnlab.models import create_model
    from cnnlab.models.pretrained import pretrained_meta

    classes = pretrained_meta(model_name, weights)["classes"]
    model = create_model(model_name, num_classes=len(classes), weights=weights).eval()
    return [predict_pretrained_loaded(model, classes, path, topk) for path in paths]


def predict_pretrained_loaded(model, classes: list[str], path, topk: int = 5) -> dict:
    """One image's top-k row from an ImageNet model already in memory (what `cnnlab serve` calls per request)."""
    import torch

    from cnnlab.data.images import load_image
    from cnnlab.models.pretrained import imagenet_preprocess

    x = imagenet_preprocess(load_image(path, channels=3))[None]  # (1, 3, 224, 224)
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    p, idx = probs.topk(min(topk, len(classes)))
    return {"image": str(path), "top": [{"class": classes[int(i)], "prob": round(float(q), 6)} for q, i in zip(p, idx)]}


def _print_row(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row))
    elif "top" in row:
        print(f"{row['image']}: " + ", ".join(f"{t['class']} {t['prob']:.3f}" for t in row["top"]))
    elif "caption" in row and "greedy" in row:  # captioning: beam and greedy captions, the attention drawing
        print(f"{row['image']}: {row['caption']!r} (beam {row['beam']}, score {row['score']}); greedy: {row['greedy']!r}"
              + (f"; attention: {row['drawing']}" if "drawing" in row else ""))
    else:
        print(json.dumps(row))


def _write_rows(rows: list[dict], out: str | None) -> None:
    if not out:
        return
    from cnnlab.engine.checkpoint import atomic_write_bytes

    if out.endswith(".csv"):
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["image", "rank", "class", "prob"] if "top" in rows[0] else ["image", "prediction"])
        for r in rows:
            if "top" in r:
                for k, t in enumerate(r["top"], 1):
                    w.writerow([r["image"], k, t["class"], t["prob"]])
            else:
                w.writerow([r["image"], json.dumps({k: v for k, v in r.items() if k != "image"})])
        atomic_write_bytes(out, buf.getvalue().encode())
    elif out.endswith((".jsonl", ".json")):
        atomic_write_bytes(out, "".join(json.dumps(r) + "\n" for r in rows).encode())
    else:
        raise ConfigError(f"--out {out}: end it in .csv or .jsonl")
    print(f"wrote {out}")


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
    print(f"ensemble of {len(r['members'])} (tta {r['tta']}): {args.split} accuracy {r['ensemble_acc']:.4f} "
          f"(best member {best:.4f}, {r['ensemble_acc'] - best:+.4f})")
    return 0
