"""Autoencoder, VAE and DCGAN on Fashion-MNIST: their training time, features and samples, measured.

    python benchmarks/generative.py --classifier RUN_DIR [--threads 2] [--n 5000] [--out benchmarks/results/generative.json]

RUN_DIR is a Fashion-MNIST classifier (`cnnlab train classify --data fashion-mnist --recipe fast`). The script
trains `cnnlab train autoencoder|vae|gan --data fashion-mnist` with their defaults (the plain commands), then:
- linear probe: logistic regression on the frozen codes (AE: the code; VAE: mu) vs on raw pixels (the runs'
  summary.json, 10,000 training images, 5,000 test images);
- reconstructions (AE, VAE) of the test images: the classifier's accuracy on them, beside its accuracy on the
  originals;
- samples (VAE, GAN; --n of them): the classifier's mean prediction entropy (low = each sample looks like one
  class), the entropy of its mean prediction (high = all classes appear; ln 10 = 2.303 at most), the classifier
  score exp(E KL(p(y|x) || p(y))) (an Inception-Score analogue, 1..10), and the Frechet distance between the
  classifier's penultimate features of the samples and of real test images. This is not ImageNet FID: the
  feature space is this classifier's; its floor is the distance between two halves of the real test set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.engine.evaluate import load_task  # noqa: E402
from cnnlab.engine.pipeline import train  # noqa: E402
from cnnlab.metrics.generative import class_entropy, classifier_score, frechet_distance, prediction_entropy  # noqa: E402
from cnnlab.tasks.generate import GANConfig, GenerativeConfig, VAEConfig  # noqa: E402

CONFIGS = {"autoencoder": GenerativeConfig, "vae": VAEConfig, "gan": GANConfig}


class Judge:
    """The classifier: probabilities and penultimate features of images in [0, 1]."""

    def __init__(self, run_dir: str):
        self.task, self.model, self.meta, _ = load_task(run_dir)
        if self.task.name != "classify":
            raise SystemExit(f"--classifier {run_dir}: a {self.task.name} run; give a Fashion-MNIST classify run")
        self.norm = self.task.normalization()

    @torch.no_grad()
    def __call__(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs, feats = [], []
        for i in range(0, len(x01), 500):
            x = x01[i:i + 500].float()
            x = self.norm(x) if self.norm is not None else x
            f = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
            feats.append(f.flatten(1))
            probs.append(self.model.forward_head(self.model.forward_features(x)).softmax(1))
        return torch.cat(probs), torch.cat(feats)


def sample_scores(judge: Judge, images: torch.Tensor, real_feats: torch.Tensor) -> dict[str, float]:
    probs, feats = judge(images)
    return {"prediction_entropy": prediction_entropy(probs), "class_entropy": class_entropy(probs),
            "classifier_score": classifier_score(probs), "max_prob": float(probs.max(1).values.mean()),
            "frechet_distance": frechet_distance(feats.numpy(), real_feats.numpy())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", required=True, help="a Fashion-MNIST classify run folder (the fast recipe)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=5000, help="samples per generative model")
    ap.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--runs", help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--markdown", help="write the table here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    judge = Judge(args.classifier)
    from cnnlab.data.datasets import load_classification_data

    test = load_classification_data("fashion-mnist").test
    real = test.images.float() / 255
    real_probs, real_feats = judge(real)
    labels = test.labels
    half = len(real) // 2
    floor = frechet_distance(real_feats[:half].numpy(), real_feats[half:].numpy())
    results: dict[str, Any] = {"real_test": {"classifier_acc": float((real_probs.argmax(1) == labels).float().mean()),
                                             "prediction_entropy": prediction_entropy(real_probs),
                                             "class_entropy": class_entropy(real_probs),
                                             "classifier_score": classifier_score(real_probs),
                                             "frechet_distance_half_vs_half": floor}}
    root = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="generative-"))
    rows = []
    for name in args.models:
        cfg = CONFIGS[name](task=name, data="fashion-mnist", threads=args.threads, quiet=True, tensorboard=False,
                            out=str(root / name)).validate()
        run_dir, _, summary = train(cfg)
        task, model, _, _ = load_task(run_dir)
        r: dict[str, Any] = {"run_dir": str(run_dir), "train_seconds": summary["train_seconds"],
                             "epochs": summary["epochs"], "parameters": summary["parameters"]}
        for k in ("loss", "recon", "kl", "mse", "probe_acc", "probe_acc_pixels", "loss_d", "loss_g", "d_real", "d_fake"):
            if k in summary:
                r[k] = summary[k]
        if name in ("autoencoder", "vae"):
            with torch.no_grad():
                recon = []
                for i in range(0, len(real), 500):
                    out = model(real[i:i + 500])
                    recon.append(torch.sigmoid(out["logits"] if isinstance(out, dict) else out))
                recon = torch.cat(recon)
            probs, feats = judge(recon)
            r["classifier_acc_on_reconstructions"] = float((probs.argmax(1) == labels).float().mean())
            r["reconstruction_frechet_distance"] = frechet_distance(feats.numpy(), real_feats.numpy())
        if name in ("vae", "gan"):
            samples = task.sample(model, args.n, seed=0)
            r["samples"] = sample_scores(judge, samples, real_feats)
        results[name] = r
        s = r.get("samples", {})
        rows.append([name, f"{r['train_seconds']:.0f}", common.fmt(r.get("probe_acc"), 3, pct=True) + (
            f" (pixels {common.fmt(r.get('probe_acc_pixels'), 3, pct=True)})" if "probe_acc" in r else ""),
            common.fmt(r.get("classifier_acc_on_reconstructions"), 3, pct=True),
            common.fmt(s.get("prediction_entropy"), 3), common.fmt(s.get("class_entropy"), 3),
            common.fmt(s.get("classifier_score"), 3), common.fmt(s.get("frechet_distance"), 3)])
        print(f"{name}: {r}", file=sys.stderr, flush=True)
    rows.append(["real test images", "-", "-", common.fmt(results["real_test"]["classifier_acc"], 3, pct=True),
                 common.fmt(results["real_test"]["prediction_entropy"], 3), common.fmt(results["real_test"]["class_entropy"], 3),
                 common.fmt(results["real_test"]["classifier_score"], 3), f"{floor:.3g} (half vs half)"])
    report = common.to_jsonable({"benchmark": "generative", "environment": common.environment(), "classifier": args.classifier,
                                 "samples": args.n, "results": results})
    table = common.markdown_table(["model", "train s", "linear probe acc", "classifier acc on reconstructions",
                                   "sample pred. entropy", "class entropy", "classifier score", "Frechet distance"], rows)
    common.emit_report(report, table, args.out, args.markdown)


if __name__ == "__main__":
    main()
