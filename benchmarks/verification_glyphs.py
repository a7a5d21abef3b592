"""Do many synthetic identities teach a metric that tells unseen digits apart? (issue #17's open question)

The verify task trains on scikit-learn's digits 0-6 and scores one-shot EER on all pairs of the unseen 7, 8, 9
(target 0.05; the task's default gets 0.16-0.18, HOG 0.18, and the same encoder trained on all ten classes 0.014).
With only seven training identities the encoder learns what tells *those* apart. FaceNet's answer is many
identities; here they are drawn: each **glyph identity** is a random prototype of one to three pen strokes
(Bezier curves through 3-5 points, or elliptic arcs of 0.6-1 turn), and each of its images redraws the
prototype with its points jittered (sigma 0.035 of the box), a random rotation / shear / scale and pen width,
then goes through the UCI optdigits pipeline the real scans went through: a 32 x 32 bitmap, height-normalized
and centred, counted in 4 x 4 blocks to 8 x 8 values 0..16, then scaled to 0..255 and resized to 28 x 28
exactly like ``cnnlab.data.named.load_digits_dataset``. No digit is drawn on purpose.

Encoder and loss are the task's (convnet_bn width 16, flatten, 128-d projection, Adam 2e-3 one-cycle);
P x K = 16 x 4 glyph identities per batch with semi-hard triplets (batch-hard collapses to a single point
from the start on 1000 glyph identities: the loss sits at the margin), 7 x 8 real identities with batch-hard.
Variants (``--variants``):

- ``glyphs``: glyph identities only (no digit seen at all), ``--steps`` steps;
- ``mixed``: each batch is real digits 0-6 with probability ``--real-share`` (0.3), else glyphs;
- ``finetune``: ``glyphs`` then as many steps on digits 0-6 alone at a quarter of the learning rate;
- ``real``: digits 0-6 alone (the task's recipe in this loop; the reference).

EER and 3-way one-shot accuracy on all pairs of the 7-9 images, for the encoding below the projection
(``features``, the task's default) and the projection.

    python benchmarks/verification_glyphs.py --threads 1 --seeds 3 --out benchmarks/results/verification_glyphs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment  # noqa: E402
from verification_ceiling import score  # noqa: E402

from cnnlab.data.identities import identity_splits  # noqa: E402
from cnnlab.data.named import resize_batch  # noqa: E402
from cnnlab.models.registry import create_model  # noqa: E402
from cnnlab.models.verification import EmbeddingNet, mined_triplet_loss  # noqa: E402

# ---------------------------------------------------------------------------------------------- glyph identities


def glyph_prototype(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One to three strokes in the unit box: ("curve", (n, 2) Bezier control points) or ("arc", cx cy rx ry a0 span)."""
    strokes = []
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.7:
            pts = rng.uniform(0.1, 0.9, size=(rng.integers(3, 6), 2))
            pts[:, 0] = 0.25 + 0.5 * pts[:, 0]  # digits are taller than wide
            strokes.append(("curve", pts))
        else:
            centre, radii = rng.uniform(0.25, 0.75, 2), rng.uniform(0.12, 0.3, 2)
            start, span = rng.uniform(0, 2 * np.pi), rng.uniform(1.2 * np.pi, 2 * np.pi)
            strokes.append(("arc", np.array([*centre, *radii, start, span])))
    return strokes


def bezier(points: np.ndarray, n: int = 24) -> np.ndarray:
    """(k, 2) control points -> (n, 2) points on the curve (de Casteljau)."""
    out = []
    for t in np.linspace(0, 1, n):
        q = points
        while len(q) > 1:
            q = (1 - t) * q[:-1] + t * q[1:]
        out.append(q[0])
    return np.array(out)


def draw_glyph(proto: list[tuple[str, np.ndarray]], rng: np.random.Generator, canvas: int = 64) -> np.ndarray:
    """One handwritten instance of ``proto`` as UCI optdigits would scan it: (8, 8) counts 0..16."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (canvas, canvas), 0)
    pen = ImageDraw.Draw(img)
    angle, shear = rng.normal(0, 0.15), rng.normal(0, 0.15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = rot @ np.array([[1, shear], [0, 1]]) @ np.diag(rng.uniform(0.85, 1.15, 2))
    width = int(rng.integers(4, 9))
    for kind, p in proto:
        if kind == "curve":
            line = bezier(p + rng.normal(0, 0.035, p.shape))
        else:
            cx, cy, rx, ry, a0, span = p + np.r_[rng.normal(0, 0.03, 4), rng.normal(0, 0.2, 2)]
            t = np.linspace(a0, a0 + span, 32)
            line = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)
        line = (line - 0.5) @ affine.T + 0.5
        pen.line([(float(x * canvas * 0.6 + canvas * 0.2), float(y * canvas * 0.6 + canvas * 0.2)) for x, y in line],
                 fill=255, width=width, joint="curve")
    on = np.asarray(img) > 127
    ys, xs = np.nonzero(on)
    if len(ys) == 0:
        return np.zeros((8, 8))
    crop = on[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    nw = max(1, min(32, round(w * 32 / h)))  # height-normalized to 32, width kept in proportion (at most 32)
    small = np.asarray(Image.fromarray(crop.astype(np.uint8) * 255).resize((nw, 32), Image.BILINEAR)) > 127
    bitmap = np.zeros((32, 32), bool)
    x0 = (32 - nw) // 2
    bitmap[:, x0:x0 + nw] = small
    return bitmap.reshape(8, 4, 8, 4).sum((1, 3))  # 4 x 4 blocks counted: 0..16


def glyph_identities(n_ids: int, per_id: int, seed: int, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n_ids * per_id, 1, size, size) images and their identities, scaled like scikit-learn's digits."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n_ids):
        proto = glyph_prototype(rng)
        for _ in range(per_id):
            xs.append(draw_glyph(proto, rng))
            ys.append(i)
    x = torch.from_numpy(np.rint(np.stack(xs) * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return resize_batch(x, (size, size)), torch.tensor(ys)


# ---------------------------------------------------------------------------------------------- training


def members(y: torch.Tensor) -> list[torch.Tensor]:
    return [torch.nonzero(y == c).flatten() for c in torch.unique(y).tolist()]


def pk_batch(x, y, groups, p, k, g):
    chosen = torch.randperm(len(groups), generator=g)[:p].tolist()
    idx = torch.cat([groups[c][torch.randint(len(groups[c]), (k,), generator=g)] for c in chosen])
    return x[idx], y[idx]


def train(net, norm, sources, steps, lr, real_share, seed):
    """``sources``: {"glyphs": (x, y, groups), "real": (x, y, groups)}; each step draws one batch from one source."""
    mean, std = norm
    opt = torch.optim.Adam(net.parameters(), lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real = "glyphs" not in sources or ("real" in sources and torch.rand(1, generator=g).item() < real_share)
        x, y, groups = sources["real" if real else "glyphs"]
        xb, yb = pk_batch(x, y, groups, 7 if real else 16, 8 if real else 4, g)
        loss, _ = mined_triplet_loss(net.project((xb.float() / 255 - mean) / std), yb, 0.2,
                                     "batchhard" if real else "semihard")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


@torch.no_grad()
def evaluate(net, norm, x, y) -> dict[str, dict[str, float]]:
    """EER, AUC and one-shot accuracy of both encodings (verification_ceiling's ``score``: L2-normalized, all pairs)."""
    net.eval()
    mean, std = norm
    h = (x.float() / 255 - mean) / std
    out = {enc: score(net.pooled(h) if enc == "features" else net.project(h), y) for enc in ("features", "projection")}
    net.train()
    return out


def run(variant: str, seed: int, args, split, glyphs) -> dict:
    torch.manual_seed(seed)
    net = EmbeddingNet(create_model("convnet_bn", num_classes=1, in_chans=1, width=16), 128, "flatten", (1, 28, 28))
    xr, yr = split.train.images, split.train.labels
    norm = ((xr.float() / 255).mean(), (xr.float() / 255).std())
    real = (xr, yr, members(yr))
    t = time.perf_counter()
    if variant == "real":
        train(net, norm, {"real": real}, args.steps, args.lr, 1.0, seed)
    elif variant == "mixed":
        train(net, norm, {"glyphs": glyphs, "real": real}, args.steps, args.lr, args.real_share, seed)
    else:
        train(net, norm, {"glyphs": glyphs}, args.steps, args.lr, 0.0, seed)
        if variant == "finetune":
            train(net, norm, {"real": real}, args.steps, args.lr / 4, 1.0, seed)
    return {"seconds": round(time.perf_counter() - t, 1), **evaluate(net, norm, split.test.images, split.test.labels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=["real", "glyphs", "mixed", "finetune"],
                    choices=("real", "glyphs", "mixed", "finetune"))
    ap.add_argument("--identities", type=int, default=1000, help="glyph identities")
    ap.add_argument("--per-identity", type=int, default=10, help="images drawn of each glyph identity")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--real-share", type=float, default=0.3, help="mixed: share of batches from digits 0-6")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    split = identity_splits("digits", val_fraction=0.0, limit_test=1500)
    report = {"benchmark": "verification_glyphs", "data": "digits", "held_out": [7, 8, 9], "args": vars(args),
              "environment": environment(), "runs": {}}
    for variant in args.variants:
        rows = []
        for seed in range(args.seeds):
            glyphs = glyph_identities(args.identities, args.per_identity, seed=1000 + seed)
            glyphs = (*glyphs, members(glyphs[1]))
            rows.append(run(variant, seed, args, split, glyphs))
            print(f"{variant} seed {seed}: {rows[-1]}", file=sys.stderr, flush=True)
        report["runs"][variant] = {
            "per_seed": rows,
            "mean_eer": {enc: round(statistics.mean(r[enc]["eer"] for r in rows), 4) for enc in ("features", "projection")}}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
