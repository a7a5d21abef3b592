"""Faithfulness of attribution maps: the deletion test (Petsiuk et al. 2018, RISE), and the espresso class model.

For each photo (scikit-image's coffee, chelsea, astronaut, rocket; scikit-learn's china and flower) and
ImageNet MobileNetV2's top class c, each method ranks the 224 x 224 pixels; the top 10% are "removed" (set to
ImageNet's mean colour, i.e. 0 after normalization) and p(c) is measured again. A faithful map removes
evidence: p(c) must fall more than when 10% of the pixels are removed at random (mean over --draws draws).
Also the whole deletion curve (removing 0, 5, ..., 100%) and its area, RISE's own deletion metric (lower = more
faithful).

Then the class visualization of "espresso" (967) with `cnnlab explain`'s defaults: p(espresso) of the
8-bit result and the time it took.

    python benchmarks/explain_deletion.py [--threads 1] [--draws 5] [--out benchmarks/results/explain.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from cnnlab.explain import gradcam, guided, occlusion, saliency
from cnnlab.explain.common import from_pretrained, image_from_array
from cnnlab.models.pretrained import IMAGENET_MEAN

FRACTIONS = [round(0.05 * i, 2) for i in range(21)]  # 0, 5, ..., 100 % removed (RISE deletes to the end)
METHODS = ["saliency", "guided", "gradcam", "smoothgrad", "occlusion"]
FILLS = ["blur", "mean"]
GRAINS = [1, 16]  # rank single pixels, or 16 x 16 blocks (by their mean attribution; random blocks for random)
BLUR_SIGMA = 10.0


def photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    out = {name: getattr(data, name)() for name in ("coffee", "chelsea", "astronaut", "rocket")}
    out.update({name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")})
    return out


def attribution(subject, x: torch.Tensor, target: int, method: str) -> np.ndarray:
    """(H, W) importance of each pixel for ``target`` (higher = more important)."""
    if method == "saliency":
        return saliency.saliency(subject, x, target)
    if method == "guided":
        return guided.guided_backprop(subject, x, target)[0]
    if method == "gradcam":
        return gradcam.grad_cam(subject, x, target)
    if method == "smoothgrad":
        return saliency.smoothgrad(subject, x, target, n=25)
    if method == "occlusion":
        return occlusion.occlusion(subject, x, target)[1]
    raise ValueError(method)


def filler(x: torch.Tensor, fill: str) -> torch.Tensor:
    """What a removed pixel becomes: ImageNet's mean colour ("mean"), or the image blurred (sigma 10 px, "blur")."""
    from cnnlab.explain.classviz import gaussian_blur

    if fill == "mean":
        return torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand_as(x)
    return gaussian_blur(x, BLUR_SIGMA)


def delete(x: torch.Tensor, order: np.ndarray, fraction: float, fill: torch.Tensor) -> torch.Tensor:
    """x with the first ``fraction`` of the pixels in ``order`` (flat indices) replaced by ``fill``'s pixels."""
    _, c, h, w = x.shape
    k = int(round(fraction * h * w))
    out = x.clone().view(c, h * w)
    if k:
        idx = torch.from_numpy(order[:k])
        out[:, idx] = fill.reshape(c, h * w)[:, idx]
    return out.view(1, c, h, w)


def block_order(m: np.ndarray | None, block: int, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices, most important first: single pixels (block 1) or whole blocks ranked by their mean
    value (m None: a random order)."""
    h, w = (224, 224) if m is None else m.shape
    if block == 1:
        return rng.permutation(h * w) if m is None else np.argsort(-m.reshape(-1), kind="stable")
    bh, bw = h // block, w // block
    if m is None:
        ranks = rng.permutation(bh * bw)
    else:
        ranks = np.argsort(-m[:bh * block, :bw * block].reshape(bh, block, bw, block).mean((1, 3)).reshape(-1), kind="stable")
    ys, xs = np.divmod(ranks, bw)  # block rows and columns, best first
    dy, dx = np.divmod(np.arange(block * block), block)
    return ((ys[:, None] * block + dy[None]) * w + xs[:, None] * block + dx[None]).reshape(-1)


def curve(subject, x: torch.Tensor, order: np.ndarray, target: int, fill: torch.Tensor) -> list[float]:
    batch = torch.cat([delete(x, order, f, fill) for f in FRACTIONS])  # (F, 3, H, W)
    return subject.probs(batch)[:, target].tolist()


def area(ps: list[float]) -> float:
    """Trapezoid area under p(fraction removed) over 0..1 (a mean probability; RISE's deletion score)."""
    f = np.array(FRACTIONS)
    p = np.array(ps)
    return float(((p[1:] + p[:-1]) / 2 * np.diff(f)).sum() / (f[-1] - f[0]))


def deletion(subject, draws: int, seed: int = 0, cache: str | None = None) -> dict:
    """Per (granularity, fill): per-photo p(c) after deleting 10% by each method and at random, and the summary."""
    import os

    rng = np.random.default_rng(seed)
    keys = [f"{'pixels' if g == 1 else f'blocks{g}'}_{fill}" for g in GRAINS for fill in FILLS]
    rows: dict = {key: {} for key in keys}
    maps = dict(np.load(cache)) if cache and os.path.exists(cache) else {}
    for name, arr in photos().items():
        x = image_from_array(arr)  # (1, 3, 224, 224) in [0, 1]
        p = subject.probs(x)[0]
        target = int(p.argmax())
        found, seconds = {}, {}
        for method in METHODS:
            t = time.perf_counter()
            key = f"{name}/{method}"
            found[method] = maps[key] if key in maps else attribution(subject, x, target, method)
            maps[key] = found[method]
            seconds[method] = round(time.perf_counter() - t, 2)
        for g, fill_name in [(g, f) for g in GRAINS for f in FILLS]:
            key = f"{'pixels' if g == 1 else f'blocks{g}'}_{fill_name}"
            orders = {method: block_order(found[method], g, rng) for method in METHODS}
            randoms = [block_order(None, g, np.random.default_rng(seed + 100 * len(rows[key]) + k)) for k in range(draws)]
            fill = filler(x, fill_name)
            row = {"class": subject.classes[target], "p": round(float(p[target]), 4), "methods": {}}
            for method in METHODS:
                ps = curve(subject, x, orders[method], target, fill)
                row["methods"][method] = {"p_at_10": round(ps[FRACTIONS.index(0.1)], 4), "curve": [round(q, 4) for q in ps],
                                          "auc": round(area(ps), 4), "map_seconds": seconds[method]}
            each = [curve(subject, x, order, target, fill) for order in randoms]
            mean = np.mean(each, axis=0).tolist()
            row["random"] = {"p_at_10": round(mean[FRACTIONS.index(0.1)], 4), "curve": [round(q, 4) for q in mean],
                             "auc": round(area(mean), 4), "draws": draws,
                             "p_at_10_each": [round(r[FRACTIONS.index(0.1)], 4) for r in each]}
            rows[key][name] = row
            print(f"{key} {name}: {row['class']} p={row['p']:.3f}  " + "  ".join(
                f"{m} {row['methods'][m]['p_at_10']:.3f}" for m in METHODS) + f"  random {row['random']['p_at_10']:.3f}",
                  file=sys.stderr, flush=True)
    if cache:
        np.savez_compressed(cache, **maps)
    return {key: {"photos": rows[key], "summary": summarize(rows[key])} for key in keys} | {
        "fractions": FRACTIONS, "fills": {"blur": f"the photo blurred (Gaussian sigma {BLUR_SIGMA:g} px)",
                                          "mean": "ImageNet's mean colour (0 after normalization)"},
        "granularity": {"pixels": "single pixels ranked by the map; random: a random permutation of the pixels",
                        "blocks16": "16 x 16 blocks ranked by the map's mean over each; random: random blocks"},
        "target": "the network's top-1 class on the unaltered photo"}


def summarize(rows: dict) -> dict:
    """Per method: mean p(c) after deleting 10%, mean drop, mean deletion-curve area, photos where it beats random."""
    summary = {}
    for method in METHODS + ["random"]:
        get = (lambda r: r["methods"][method]) if method != "random" else (lambda r: r["random"])
        summary[method] = {
            "mean_p_at_10": round(float(np.mean([get(r)["p_at_10"] for r in rows.values()])), 4),
            "mean_drop_at_10": round(float(np.mean([r["p"] - get(r)["p_at_10"] for r in rows.values()])), 4),
            "mean_auc": round(float(np.mean([get(r)["auc"] for r in rows.values()])), 4),
        }
        if method != "random":
            summary[method]["beats_random_on"] = sum(get(r)["p_at_10"] < r["random"]["p_at_10"] for r in rows.values())
            summary[method]["auc_beats_random_on"] = sum(get(r)["auc"] < r["random"]["auc"] for r in rows.values())
    summary["photos"] = len(rows)
    return summary


def espresso(subject) -> dict:
    from cnnlab.explain.classviz import class_visualization

    t = time.perf_counter()
    r = class_visualization(subject, 967)  # the CLI's defaults
    return {"class": subject.classes[967], "prob": round(r.prob, 6), "seconds": round(time.perf_counter() - t, 1),
            "steps": len(r.scores), "command": "cnnlab explain --model mobilenet_v2 --weights imagenet --method classviz "
                                               "--target espresso --out ex/espresso"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--draws", type=int, default=5, help="random deletions per photo (default: 5)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--cache", help="an .npz of the attribution maps: read if it exists, written after (re-analysis)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    subject = from_pretrained("mobilenet_v2", "imagenet")
    t = time.perf_counter()
    result = {"benchmark": "explain_deletion", "model": "mobilenet_v2 (ImageNet)", "threads": args.threads,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "deletion": deletion(subject, args.draws, cache=args.cache), "classviz_espresso": espresso(subject),
              "note": "timings measured on a shared 2-core machine (nice 19, other jobs running): indicative only"}
    result["seconds"] = round(time.perf_counter() - t, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
