"""`cnnlab explain`: look inside a classifier (a run folder, or --model mobilenet_v2 --weights imagenet)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.errors import ConfigError

METHODS = ["filters", "activations", "patches", "neighbours", "tsne", "occlusion", "saliency", "guided", "gradcam",
           "classviz", "deepdream", "fool"]
ATTRIBUTION = {"occlusion", "saliency", "guided", "gradcam"}
NEEDS_IMAGE = ATTRIBUTION | {"activations", "deepdream", "fool"}
NEEDS_DATA = {"patches", "neighbours", "tsne"}

EXAMPLES = """examples:
  cnnlab explain --model mobilenet_v2 --weights imagenet coffee.jpg --method gradcam --out ex/gradcam
  cnnlab explain --model mobilenet_v2 --weights imagenet coffee.jpg --method saliency --smooth 25 --out ex/sg
  cnnlab explain --model mobilenet_v2 --weights imagenet --method classviz --target espresso --out ex/espresso
  cnnlab explain --model mobilenet_v2 --weights imagenet cat.jpg --method fool --target 'tiger shark' --out ex/fool
  cnnlab explain --model mobilenet_v2 --weights imagenet photo.jpg --method deepdream --layer features.10 --out ex/dream
  cnnlab explain RUN_DIR --method filters --out ex/filters
  cnnlab explain RUN_DIR shoe.png --method activations --layer layer1 --out ex/act
  cnnlab explain RUN_DIR --method patches --out ex/patches          (the run's val split; or --data FOLDER)
  cnnlab explain RUN_DIR --method tsne --out ex/tsne

methods:
  filters      first conv layer's weights as images          activations  a layer's channels for IMAGE (--layer)
  patches      top-9 patches of units of several layers       neighbours   feature-space vs pixel-space neighbours
  tsne         t-SNE and PCA of the features, and a mosaic    occlusion    p(class) as a grey square slides
  saliency     max_c |d score / d pixel|                      guided       guided backprop (ReLU/ReLU6)
  gradcam      Grad-CAM of --layer (default: last map)        classviz     an image of --target by gradient ascent
  deepdream    amplify --layer's activations (octaves)        fool         smallest FGSM flip, iterative flip to --target
attribution methods write input.png, map.png, overlay.png, figure.png and map.npy (H, W) to --out."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="look inside a classifier: filters, activations, saliency, Grad-CAM, fooling, ...",
                       description="Visualize and explain a classifier: a run folder, or a pretrained model (--model with "
                                   "--weights). Images are resized and normalized as the network expects.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="RUN_DIR|IMAGE", help="a run folder then an image (or only the image "
                   "with --model); methods on datasets need no image")
    p.add_argument("--method", required=True, choices=METHODS, help="what to show (see below)")
    p.add_argument("--model", help="a registered model with pretrained --weights instead of a run folder (mobilenet_v2)")
    p.add_argument("--weights", help="with --model: imagenet, or a weights file")
    p.add_argument("--layer", help="layer name from model.named_modules() (activations, gradcam, deepdream; patches: "
                   "comma-separated list); default: a sensible one")
    p.add_argument("--target", help="class name or index (default: the predicted class; fool: the runner-up)")
    p.add_argument("--smooth", type=int, default=0, metavar="N",
                   help="SmoothGrad: average saliency/guided/gradcam over N noisy copies (default: off)")
    p.add_argument("--data", help="patches/neighbours/tsne: a folder of images (default: the run's val split)")
    p.add_argument("--limit", type=int, default=500, help="patches/neighbours/tsne: at most N images (default: 500)")
    p.add_argument("--steps", type=int, help="classviz (default 200) / deepdream per octave (default 10) steps")
    p.add_argument("--lr", type=float, help="classviz (Adam, default 0.02) / deepdream (default 0.02) step size")
    p.add_argument("--l2", type=float, default=1e-2, help="classviz: L2 decay of the image (default: 1e-2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (classviz noise, jitter, SmoothGrad) (default: 0)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--out", required=True, help="folder for the PNGs (and map.npy, result.json)")
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.explain import common

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smooth < 0:
        raise ConfigError(f"--smooth {args.smooth}: must be 0 (off) or a number of noisy copies")
    if args.smooth and args.method not in {"saliency", "guided", "gradcam"}:
        raise ConfigError(f"--smooth goes with saliency, guided or gradcam, not {args.method}")
    inputs = list(args.inputs)
    run_dir = None
    if args.model:
        if not args.weights:
            raise ConfigError(f"--model {args.model} needs --weights (imagenet, or a weights file)")
        subject = common.from_pretrained(args.model, args.weights)
    else:
        if args.weights:
            raise ConfigError("--weights goes with --model (e.g. --model mobilenet_v2 --weights imagenet)")
        if not inputs:
            raise ConfigError("give a run folder (cnnlab explain RUN_DIR [IMAGE] ...) or --model mobilenet_v2 --weights imagenet")
        run_dir = inputs.pop(0)
        subject = common.from_run(run_dir)
    if args.method in NEEDS_IMAGE and len(inputs) != 1:
        raise ConfigError(f"--method {args.method} explains one image: give exactly one IMAGE after "
                          + ("--model's options" if args.model else "the run folder"))
    if args.method not in NEEDS_IMAGE and inputs:
        raise ConfigError(f"--method {args.method} takes no image ({' '.join(inputs)}); "
                          + ("use --data FOLDER for a dataset" if args.method in NEEDS_DATA else "drop it"))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    out.mkdir(parents=True, exist_ok=True)
    x = subject.load(inputs[0]) if inputs else None
    result = METHOD_RUNNERS[args.method](subject, x, args, out, run_dir)
    result = dict({"method": args.method, "model": subject.name}, **result)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "files"}))
    for f in result.get("files", []):
        print(f"wrote {f}")
    return 0


# ---------------------------------------------------------------------- one runner per method
def _attribution(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import common, gradcam, guided, occlusion, saliency

    target = subject.target_index(args.target, x)
    p = float(subject.probs(x)[0, target])
    extra: dict = {}
    if args.method == "saliency":
        fn = lambda xx: saliency.saliency(subject, xx, target)  # noqa: E731
    elif args.method == "guided":
        fn = lambda xx: guided.guided_backprop(subject, xx, target)[0]  # noqa: E731
        _, grad = guided.guided_backprop(subject, x, target)
        extra["files"] = [common.save_image(out / "gradient.png", guided.gradient_image(grad))]
    elif args.method == "gradcam":
        layer = args.layer or common.last_spatial_layer(subject)
        common.get_layer(subject.model, layer)
        extra["layer"] = layer
        fn = lambda xx: gradcam.grad_cam(subject, xx, target, layer)  # noqa: E731
    else:
        prob_map, _ = occlusion.occlusion(subject, x, target)
        fn = None
    m = saliency.smooth(fn, x, args.smooth, seed=args.seed) if args.smooth else (fn(x) if fn else prob_map)
    title = f"{args.method}{f' (SmoothGrad {args.smooth})' if args.smooth else ''}: {subject.classes[target]} (p {p:.3f})"
    if args.method == "occlusion":
        title = f"occlusion: p({subject.classes[target]}) with the grey square there (unoccluded {p:.3f})"
    files = common.write_attribution(out, x, m, title)
    return {"target": subject.classes[target], "target_index": target, "prob": round(p, 6), **{k: v for k, v in extra.items()
            if k != "files"}, "map_shape": list(m.shape), "files": [str(f) for f in [*files, *extra.get("files", [])]]}


def _filters(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import filters

    name, _ = filters.first_conv(subject.model, args.layer)
    w = filters.first_layer_filters(subject.model, args.layer)
    path = filters.filters_figure(w, out / "filters.png", title=f"{subject.name} {name}")
    return {"layer": name, "shape": list(w.shape), "files": [str(path)]}


def _activations(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import activations, common

    layer = args.layer or common.default_layers(subject, 3)[0]
    a = activations.layer_activations(subject, x, layer)
    path = activations.activations_figure(a, out / "activations.png", layer)
    common.save_image(out / "input.png", x[0])
    return {"layer": layer, "shape": list(a.shape), "files": [str(out / "input.png"), str(path)]}


def _dataset(subject, args, run_dir):
    from cnnlab.explain import common

    return common.load_images(subject, args.data, args.limit, run_dir)


def _patches(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import patches

    images, _, _ = _dataset(subject, args, run_dir)
    layers = args.layer.split(",") if args.layer else patches.patch_layers(subject, 3)
    results = [patches.max_activating_patches(subject, images, layer) for layer in layers]
    path = patches.patches_figure(results, out / "patches.png")
    return {"layers": {r[0].layer: {"receptive_field": r[0].rf, "units": [u.unit for u in r]} for r in results},
            "images": len(images), "files": [str(path)]}


def _neighbours(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import neighbours

    images, labels, classes = _dataset(subject, args, run_dir)
    r = neighbours.neighbours(subject, images)
    path = neighbours.neighbours_figure(images, r, out / "neighbours.png", labels, classes)
    same = {space: float((labels[r[space]] == labels[:len(r[space]), None]).mean()) for space in r}
    return {"images": len(images), "same_class_fraction": same, "files": [str(path)]}


def _tsne(subject, x, args, out, run_dir) -> dict:
    import numpy as np

    from cnnlab.explain import neighbours, tsne

    images, labels, classes = _dataset(subject, args, run_dir)
    feats = neighbours.features(subject, images)
    points = {m: tsne.embed(feats, m, args.seed) for m in ("tsne", "pca")}
    np.save(out / "tsne.npy", points["tsne"].astype(np.float32))
    np.save(out / "pca.npy", points["pca"].astype(np.float32))
    path = tsne.embedding_figure(points, images, labels, classes, out / "tsne.png")
    return {"images": len(images), "feature_dim": int(feats.shape[1]),
            "files": [str(out / "tsne.npy"), str(out / "pca.npy"), str(path)]}


def _classviz(subject, x, args, out, run_dir) -> dict:
    from tqdm import tqdm

    from cnnlab.explain import classviz, common

    if args.target is None:
        raise ConfigError("--method classviz needs --target CLASS (a class name or index), e.g. --target espresso")
    target = subject.target_index(args.target)
    steps = args.steps or 200
    bar = tqdm(total=steps, desc=f"classviz {subject.classes[target]}", unit="step", leave=False, disable=None)

    def tick(_step, score):
        bar.update(1)
        bar.set_postfix(score=f"{score:.1f}")

    r = classviz.class_visualization(subject, target, steps=steps, lr=args.lr or 0.02, l2=args.l2, seed=args.seed,
                                     callback=tick)
    bar.close()
    path = common.save_image(out / "classviz.png", r.image)
    return {"target": subject.classes[target], "target_index": target, "prob": round(r.prob, 6), "steps": steps,
            "files": [str(path)]}


def _deepdream(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import common, deepdream

    if args.layer:
        layer = args.layer
    else:
        spread = common.default_layers(subject, 3)
        layer = spread[len(spread) // 2]  # the middle of the depth: parts of objects
    img = deepdream.deep_dream(subject, x, layer, steps=args.steps or 10, lr=args.lr or 0.02, seed=args.seed)
    files = [common.save_image(out / "input.png", x[0]), common.save_image(out / "deepdream.png", img)]
    return {"layer": layer, "files": [str(f) for f in files]}


def _fool(subject, x, args, out, run_dir) -> dict:
    from cnnlab.explain import common, fool

    probs = subject.probs(x)[0]
    label = int(probs.argmax())
    target = subject.target_index(args.target) if args.target is not None else int(probs.topk(2).indices[1])
    if target == label:
        raise ConfigError(f"--target {args.target}: that is already the predicted class; choose another")
    fg = fool.fgsm_smallest(subject, x, label)
    it = fool.iterative_targeted(subject, x, target)
    files = [common.save_image(out / "input.png", x[0]), common.save_image(out / "fgsm.png", fg.image),
             common.save_image(out / "targeted.png", it.image)]
    diff = common.normalize01(abs(it.image - x[0].numpy()).max(0))
    files.append(common.save_image(out / "targeted_diff.png", diff))
    return {"original": subject.classes[label], "original_prob": round(float(probs[label]), 6),
            "fgsm": fg.as_dict(subject.classes), "targeted": it.as_dict(subject.classes), "files": [str(f) for f in files]}


METHOD_RUNNERS = {"occlusion": _attribution, "saliency": _attribution, "guided": _attribution, "gradcam": _attribution,
                  "filters": _filters, "activations": _activations, "patches": _patches, "neighbours": _neighbours,
                  "tsne": _tsne, "classviz": _classviz, "deepdream": _deepdream, "fool": _fool}
