"""How far is one-shot EER on unseen identities from what the encoder can do? Three probes.

The verify task trains on Fashion-MNIST / digits classes 0-6 and scores EER on all pairs of the
unseen 7-9 (the acceptance targets are 0.10 and 0.05). These probes ask where the gap comes from:

- ``frozen``: no training; EER of raw pixels and of ImageNet MobileNetV2 features (each of its five
  stages, global-average-pooled and flattened) at 64 x 64, as they are and PCA-whitened on the
  training identities' features: do generic pretrained features separate the unseen classes?
- ``margin``: the task's encoder (convnet_bn width 16, flatten, 128-d, Adam 2e-3, one-cycle, P x K =
  8 x 8 from the training identities), batch-hard triplets with the hinge (alpha 0.2) against
  Hermans et al.'s soft margin, ``--steps`` steps, ``--seeds`` seeds, EER on the unseen 7-9.
- ``seen``: the same encoder and loss trained on *all ten* classes of the dataset's training
  images, scored on the 7-9 images of its test split: the ceiling when 7-9 are not unseen.
- ``hog``: no learning; histograms of oriented gradients (Dalal & Triggs: 9 orientations, 7 x 7
  cells, 2 x 2 blocks, scikit-image) as they are and centred on the training identities' mean:
  a hand-made descriptor as the reference a learned encoding should beat.
``--size`` sets the frozen probe's input (28 x 28 images upsampled, grey replicated to RGB).

    python benchmarks/verification_ceiling.py --data fashion-mnist --probes frozen margin seen
Prints JSON (and writes it to --out); EERs do not depend on the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment  # noqa: E402

from cnnlab.data.datasets import load_classification_data  # noqa: E402
from cnnlab.data.identities import identity_splits  # noqa: E402
from cnnlab.metrics.verification import verification_metrics  # noqa: E402
from cnnlab.models.registry import create_model  # noqa: E402
from cnnlab.models.verification import EmbeddingNet, mined_triplet_loss  # noqa: E402

HELD = [7, 8, 9]


def score(features: torch.Tensor, ids: torch.Tensor) -> dict[str, float]:
    f = F.normalize(features.flatten(1).float(), dim=1)
    m = verification_metrics(torch.cdist(f, f).pow(2), ids, rounds=10)
    return {"eer": round(m["eer"], 4), "auc": round(m["auc"], 4), "oneshot_acc": round(m["oneshot_acc"], 4)}


def probe_frozen(data: str, size: int = 64) -> dict[str, dict[str, float]]:
    s = identity_splits(data, img_size=size, channels=3, val_fraction=0.0, limit_test=1500)
    g = torch.Generator().manual_seed(0)
    x_tr = s.train.images[torch.randperm(len(s.train.images), generator=g)[:3000]]
    out = {"pixels": score(s.test.images, s.test.labels)}
    net = create_model("mobilenet_v2", weights="imagenet").eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def stage_features(x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[list[torch.Tensor]] = [[] for _ in net.stages()]
        for b in range(0, len(x), 250):
            h = (x[b:b + 250].float() / 255 - mean) / std
            for i, stage in enumerate(net.stages()):
                h = stage(h)
                outs[i].append(h)
        return [torch.cat(o) for o in outs]

    for i, (te, tr) in enumerate(zip(stage_features(s.test.images), stage_features(x_tr))):
        for pool in ("avg", "flatten"):
            a = te.mean((2, 3)) if pool == "avg" else te.flatten(1)
            b = tr.mean((2, 3)) if pool == "avg" else tr.flatten(1)
            out[f"stage{i}_{pool}"] = score(a, s.test.labels)
            mu = b.mean(0)
            _, sv, v = torch.pca_lowrank(b - mu, q=min(128, b.shape[1]), center=False)
            z = (a - mu) @ v / (sv / len(b) ** 0.5 + 1e-6)  # whitened on the training identities
            out[f"stage{i}_{pool}_pca_white{v.shape[1]}"] = score(z, s.test.labels)
    return out


def probe_hog(data: str) -> dict[str, dict[str, float]]:
    import numpy as np
    from skimage.feature import hog

    s = identity_splits(data, val_fraction=0.0, limit_test=1500)
    g = torch.Generator().manual_seed(0)
    x_tr = s.train.images[torch.randperm(len(s.train.images), generator=g)[:3000]]

    def describe(x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(np.stack([hog(im[0].float().numpy() / 255, orientations=9, pixels_per_cell=(7, 7),
                                          cells_per_block=(2, 2)) for im in x])).float()  # (N, 324) at 28 x 28

    te, tr = describe(s.test.images), describe(x_tr)
    return {"hog": score(te, s.test.labels), "hog_centred": score(te - tr.mean(0), s.test.labels)}


def train_encoder(x: torch.Tensor, y: torch.Tensor, steps: int, soft: bool, seed: int) -> EmbeddingNet:
    torch.manual_seed(seed)
    net = EmbeddingNet(create_model("convnet_bn", num_classes=1, in_chans=x.shape[1], width=16), 128, "flatten",
                       tuple(x.shape[1:]))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps, pct_start=0.05)
    members = [torch.nonzero(y == c).flatten() for c in torch.unique(y).tolist()]
    mean, std = (x.float() / 255).mean(), (x.float() / 255).std()
    net.norm = (mean, std)
    for _ in range(steps):
        chosen = torch.randperm(len(members))[:8].tolist()
        idx = torch.cat([members[c][torch.randint(len(members[c]), (8,))] for c in chosen])
        loss, _ = mined_triplet_loss(net((x[idx].float() / 255 - mean) / std), y[idx], 0.2, "batchhard", soft=soft)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def encode(net: EmbeddingNet, x: torch.Tensor) -> torch.Tensor:
    mean, std = net.norm
    return torch.cat([net((x[b:b + 500].float() / 255 - mean) / std) for b in range(0, len(x), 500)])


def hinge_vs_soft(x: torch.Tensor, y: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor, steps: int,
                  seeds: int, name: str) -> dict[str, dict]:
    """Train on (x, y) with the hinge and with the soft margin, ``seeds`` runs each; EER on (x_te, y_te)."""
    out = {}
    for soft in (False, True):
        key = "soft_margin" if soft else "hinge_0.2"
        runs = []
        for seed in range(seeds):
            runs.append(score(encode(train_encoder(x, y, steps, soft, seed), x_te), y_te)["eer"])
            print(f"{name} {key} seed {seed}: eer {runs[-1]:.4f}", file=sys.stderr, flush=True)
        out[key] = {"eer": runs, "mean": round(statistics.mean(runs), 4), "test_images": len(y_te)}
    return out


def probe_margin(data: str, steps: int, seeds: int) -> dict[str, dict]:
    s = identity_splits(data, val_fraction=0.0, limit_test=1500)
    return hinge_vs_soft(s.train.images, s.train.labels, s.test.images, s.test.labels, steps, seeds, "margin")


def probe_seen(data: str, steps: int, seeds: int) -> dict[str, dict]:
    d = load_classification_data(data, None, val_fraction=0.0, in_memory=True, seed=0)
    keep = torch.isin(d.test.labels, torch.tensor(HELD))
    return hinge_vs_soft(d.train.images, d.train.labels, d.test.images[keep][:1500], d.test.labels[keep][:1500],
                         steps, seeds, "seen")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist or digits")
    ap.add_argument("--probes", nargs="+", default=["frozen", "margin", "seen"],
                    choices=("frozen", "margin", "seen", "hog"))
    ap.add_argument("--size", type=int, default=64, help="input size of the frozen ImageNet probe")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: 1000 fashion-mnist, 500 digits)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = args.steps or (1000 if args.data == "fashion-mnist" else 500)
    report = {"benchmark": "verification_ceiling", "data": args.data, "held_out": HELD, "steps": steps,
              "size": args.size,
              "environment": environment()}
    for probe in args.probes:
        t = time.perf_counter()
        report[probe] = (probe_frozen(args.data, args.size) if probe == "frozen" else
                         probe_hog(args.data) if probe == "hog" else
                         probe_margin(args.data, steps, args.seeds) if probe == "margin" else
                         probe_seen(args.data, steps, args.seeds))
        print(f"{probe}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
