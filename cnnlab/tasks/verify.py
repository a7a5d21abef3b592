"""Face verification and one-shot recognition: a Siamese encoder trained on identities.

The encoder f (any zoo backbone + projection to 128-d + L2 norm) is trained so that
d(x1, x2) = ||f(x1) - f(x2)||^2 is small for the same identity and large for different ones:
triplet loss with online mining in P x K batches (random / semi-hard / batch-hard), the
contrastive loss, or the binary-classification variant (logistic regression on |f(xi) - f(xj)|).
The loss trains the 128-d projection; images are compared by the L2-normalized backbone map below
it (``--encoding features``, default: transfers better to unseen identities) or by the projection.

Data: ``--data fashion-mnist | digits | DIR`` (DIR: one subfolder of images per identity). The
held-out identities (classes 7-9 of the named datasets, or ``--holdout-classes`` /
``--holdout-fraction``) are never trained on: the test split is one-shot on them.
Batches: ``images f32[B,C,H,W]``, ``identities i64[B]``.
Metrics on all pairs of a split: ``eer`` (monitored, min), ``auc``, ``tar_far1e-3``, ``tar_far1e-2``,
``tau`` (the distance at the EER: "same" when d <= tau), ``oneshot_acc`` (N-way, ``oneshot_way``).
The tau of the best validation epoch is stored in the checkpoint and used by ``cnnlab faces``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.identities import PKLoader, identity_splits
from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError
from cnnlab.metrics.verification import verification_metrics
from cnnlab.models.verification import (MINING, EmbeddingNet, PairwiseHead, VerificationNet, contrastive_loss,
                                        mined_triplet_loss, pair_bce_loss)
from cnnlab.tasks import register_task
from cnnlab.tasks.base import DataBundle, Evaluator, Task, build_backbone_model, create_backbone

LOSSES = ("triplet", "contrastive", "binary")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
DEFAULT_MARGIN = {"triplet": 0.2, "contrastive": 1.0, "binary": 0.0}
DEFAULT_WIDTH = 16  # convnet_bn's width unless --model-arg width=... (fast on 2 cores)


@dataclass
class VerifyConfig(TrainConfig):
    data: str = opt("fashion-mnist", "fashion-mnist, digits (scikit-learn), or a folder with one subfolder of "
                    "images per identity", group="data")
    holdout_classes: str | None = opt(None, "identities never trained on, tested one-shot: names or indices, comma "
                                      "separated (default: 7,8,9 for fashion-mnist/digits)", group="data")
    holdout_fraction: float | None = opt(None, "instead: hold out this fraction of the identities (default for "
                                         "folders: 0.3, seeded)", group="data", min=0, max=1, min_open=True, max_open=True)
    val_fraction: float | None = opt(0.1, "share of the training identities' images kept for validation (model "
                                     "selection and tau)", group="data", min=0, max=1, max_open=True)
    val_identities: int = opt(0, "class-disjoint validation: take N more identities out of training (seeded) and "
                              "validate on all their images, so the kept epoch and tau are judged on unseen "
                              "identities like the test (0: --val-fraction of the training identities' images)",
                              group="data", min=0)
    limit_test: int | None = opt(3000, "at most N validation / test images (all pairs are scored)", group="data", min=2)
    model: str = opt("convnet_bn", "backbone: any registered model (convnet_bn gets width=16 unless "
                     "--model-arg width=N)", group="model")
    embed_dim: int = opt(128, "dimension D of the projection the loss trains (the encoding with --encoding "
                         "projection)", group="model", min=1)
    pool: str = opt("flatten", "backbone map -> encoding: flatten (keeps layout; transfers better to unseen "
                    "identities) or avg (global average pooling, any image size)", group="model",
                    choices=("flatten", "avg"))
    encoding: str | None = opt(None, "the encoding f(x) that images are compared by: features (default; the "
                               "L2-normalized pooled backbone features below the projection, which becomes a training "
                               "head: transfers better to unseen identities) or projection (the D-d output the loss "
                               "trains; the default with --loss binary, whose pairwise head reads it)", group="model",
                               choices=("projection", "features"))
    loss: str = opt("triplet", "triplet (with --mining), contrastive, or binary (logistic regression on "
                    "|f(xi) - f(xj)|, the course's variant)", group="optimization", choices=LOSSES)
    mining: str = opt("batchhard", "triplets from each batch: random, semihard (FaceNet) or batchhard (Hermans "
                      "et al.)", group="optimization", choices=MINING)
    margin: float | None = opt(None, "alpha of the triplet loss (default 0.2) / m of the contrastive loss "
                               "(default 1.0)", group="optimization", min=0)
    soft_margin: bool = opt(False, "triplet: Hermans et al.'s soft margin ln(1 + exp(d_ap - d_an)) instead of the "
                            "hinge with alpha (keeps pulling after the margin is met)", group="optimization")
    head: str = opt("l1", "pairwise head of --loss binary: l1 (|f_i - f_j|) or chi2", group="model",
                    choices=("l1", "chi2"))
    identities_per_batch: int = opt(8, "P: identities per batch (capped at the number of training identities)",
                                    group="optimization", min=2)
    images_per_identity: int = opt(8, "K: images of each identity per batch", group="optimization", min=2)
    steps_per_epoch: int = opt(100, "P x K batches per epoch", group="optimization", min=1)
    oneshot_rounds: int = opt(20, "random enrolments averaged by the one-shot accuracy", group="run", min=1)
    epochs: int = opt(8, "number of epochs", group="optimization", min=1)
    optimizer: str = opt("adam", ", ".join(OPTIMIZERS), group="optimization", choices=OPTIMIZERS)
    lr: float | None = opt(2e-3, "peak learning rate", group="optimization", min=0, min_open=True)
    weight_decay: float = opt(0.0, "weight decay", group="regularization", min=0)

    def validate(self) -> "VerifyConfig":
        super().validate()
        if self.holdout_classes and self.holdout_fraction:
            raise ConfigError("--holdout-classes and --holdout-fraction are alternatives; pass one")
        if self.encoding == "features" and self.loss == "binary":
            raise ConfigError("--encoding features: the binary loss's pairwise head reads the projection; "
                              "pass --encoding projection with --loss binary")
        return self


class VerifyEvaluator(Evaluator):
    """Collects the encodings of a split; ``compute`` scores all their pairs."""

    def __init__(self, rounds: int = 20, seed: int = 0):
        self.rounds, self.seed = rounds, seed
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.embeddings: list[torch.Tensor] = []
        self.identities: list[torch.Tensor] = []
        self.model = None

    @torch.no_grad()
    def update(self, out: dict[str, Any]) -> None:
        self.embeddings.append(out["embeddings"].detach().float().cpu())
        self.identities.append(out["identities"].cpu())
        self.model = out["model"]
        self.n += len(out["identities"])

    def compute(self) -> dict[str, Any]:
        emb, ids = torch.cat(self.embeddings), torch.cat(self.identities)
        model = self.model
        was_cuda = next(model.parameters()).device
        dist = model.pair_distances(emb.to(was_cuda), emb.to(was_cuda)).cpu()  # (N, N)
        return verification_metrics(dist, ids, self.rounds, self.seed) | {"count": int(self.n)}


class _Batches:
    """Evaluation batches of a split, in order: images normalized like training."""

    def __init__(self, ds, batch_size: int, transform):
        self.ds, self.batch_size, self.transform = ds, batch_size, transform

    def __len__(self) -> int:
        return (len(self.ds) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for s in range(0, len(self.ds), self.batch_size):
            yield self.transform({"images": self.ds.images[s:s + self.batch_size],
                                  "identities": self.ds.labels[s:s + self.batch_size]})


@register_task
class Verify(Task):
    name = "verify"
    Config = VerifyConfig
    monitor, mode = "eer", "min"
    progress_keys = ("loss", "active")
    summary_keys = ("eer", "auc", "tar_far1e-3", "tar_far1e-2", "oneshot_acc")
    required_meta = ("in_chans", "img_size", "normalization", "embed_dim")
    examples = """examples:
  cnnlab train verify                                   # Fashion-MNIST 0-6, one-shot on the unseen 7-9
  cnnlab train verify --data digits
  cnnlab train verify --mining random                   # random triplets: mostly too easy
  cnnlab train verify --loss binary                     # logistic regression on |f(xi) - f(xj)|
  cnnlab train verify --val-identities 2                # validate on 2 identities never trained on
  cnnlab train verify --data faces/ --holdout-fraction 0.3 --model resnet20 --img-size 64
  cnnlab faces enroll runs/verify-... --db people.db --name ada ada1.jpg ada2.jpg"""

    @classmethod
    def resolve(cls, cfg: VerifyConfig) -> VerifyConfig:
        if cfg.margin is None:
            cfg.margin = DEFAULT_MARGIN[cfg.loss]
        if cfg.encoding is None:
            cfg.encoding = "projection" if cfg.loss == "binary" else "features"
        if cfg.model == "convnet_bn" and "width" not in cfg.model_kwargs:
            cfg.model_kwargs = dict(cfg.model_kwargs, width=DEFAULT_WIDTH)
        return cfg

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: VerifyConfig) -> DataBundle:
        s = identity_splits(cfg.data, cfg.data_root, holdout_classes=cfg.holdout_classes,
                            holdout_fraction=cfg.holdout_fraction, val_fraction=cfg.val_fraction or 0.0,
                            img_size=cfg.img_size, channels=cfg.channels, seed=cfg.seed, limit=cfg.limit,
                            limit_test=cfg.limit_test, skip_bad=cfg.skip_bad, val_identities=cfg.val_identities)
        if "normalization" in self.meta:
            norm = self.meta["normalization"]
        else:
            x = s.train.images.float() / 255
            norm = {"mean": x.mean((0, 2, 3)).tolist(), "std": x.std((0, 2, 3)).clamp(min=1e-3).tolist()}
        meta = {"classes": s.classes, "train_identities": [s.classes[c] for c in s.train_identities],
                "test_identities": [s.classes[c] for c in s.test_identities],
                "val_identities": [s.classes[c] for c in s.val_identities or []], "in_chans": s.train.channels,
                "img_size": list(s.train.img_size), "normalization": norm, "embed_dim": cfg.embed_dim,
                "pool": cfg.pool, "encoding": cfg.encoding or ("projection" if cfg.loss == "binary" else "features"),
                "loss": cfg.loss, "head": cfg.head, "num_classes": 1}  # the backbone's classifier is unused
        self.meta.update(meta)
        held = ", ".join(meta["test_identities"][:10]) + (" ..." if len(s.test_identities) > 10 else "")
        return DataBundle(s.train, s.val, s.test, meta=meta, source=f"{s.source}; one-shot on held-out {held}")

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        in_shape = (meta["in_chans"], *meta["img_size"])
        embedder = EmbeddingNet(create_backbone(meta), meta["embed_dim"], meta.get("pool", "avg"), in_shape,
                                meta.get("encoding", "projection"))
        head = PairwiseHead(meta["embed_dim"], meta.get("head", "l1")) if meta.get("loss") == "binary" else None
        return VerificationNet(embedder, head)

    def build_model(self, cfg: VerifyConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        return build_backbone_model(self, cfg, resume)

    def normalize(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        norm = self.meta["normalization"]
        mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
        return dict(batch, images=(batch["images"].float() / 255 - mean) / std)

    def train_loader(self, cfg: VerifyConfig, data: DataBundle, rank: int = 0, world_size: int = 1):
        if world_size > 1:
            raise ConfigError("verify trains in one process (its metrics score all pairs of a split); drop torchrun")
        return PKLoader(data.train, cfg.identities_per_batch, cfg.images_per_identity, cfg.steps_per_epoch,
                        seed=cfg.seed, transform=self.normalize)

    def eval_loader(self, cfg: VerifyConfig, data: DataBundle, split: Any, rank: int = 0, world_size: int = 1):
        return _Batches(split, 256, self.normalize)

    # ------------------------------------------------------------------ steps
    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        emb = model.project(batch["images"])  # (B, D): the loss trains the projection
        ids = batch["identities"]
        if self.cfg.loss == "triplet":
            loss, active = mined_triplet_loss(emb, ids, self.cfg.margin, self.cfg.mining,
                                              soft=self.cfg.soft_margin)
            return {"loss": loss, "active": active}
        if self.cfg.loss == "contrastive":
            return {"loss": contrastive_loss(emb, ids, self.cfg.margin)}
        loss, acc = pair_bce_loss(model.head, emb, ids)
        return {"loss": loss, "pair_acc": acc}

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"embeddings": model(batch["images"]), "identities": batch["identities"], "model": model}

    def evaluator(self) -> VerifyEvaluator:
        return VerifyEvaluator(getattr(self.cfg, "oneshot_rounds", 20), getattr(self.cfg, "seed", 0))

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        """Plain ``tau`` is the run's threshold (validation EER distance of the kept checkpoint), not the test split's."""
        extra = {"tau_test_eer": final.get("tau")} if final else {}
        return extra | {"tau": getattr(self, "run_tau", None), "tau_source": "validation pairs, kept checkpoint"}

    # ------------------------------------------------------------------ using a trained model
    def tau(self) -> float:
        """The decision threshold of the run: the EER distance on validation pairs of the best epoch."""
        metrics = self.meta.get("metrics") or {}
        if "tau" not in metrics:
            raise ConfigError("this run's checkpoint stores no tau (it has no validation split); pass --tau")
        return float(metrics["tau"])

    def prepare_array(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (C, H, W) image of any size -> f32 (C, h, w) model input (resized, channels as trained, normalized)."""
        import torch.nn.functional as F

        from cnnlab.data.images import to_grey

        c = self.meta["in_chans"]
        if c == 1 and image.shape[0] == 3:
            image = to_grey(image)
        elif c == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        h, w = self.meta["img_size"]
        x = F.interpolate(image[None].float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255)
        return self.normalize({"images": x})["images"][0]

    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        from cnnlab.data.images import load_image

        image = load_image(path, self.meta["in_chans"])
        return self.prepare_array(image), image

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        emb = model(images)
        return [{"encoding": [round(float(v), 5) for v in e]} for e in emb]

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        from cnnlab.engine import checkpoint as ckpt
        from cnnlab.tasks.verify_report import roc_figure

        for which in ("best", "last"):
            if (run_dir / "checkpoints" / f"{which}.json").is_file():
                self.run_tau = (ckpt.read_json(run_dir / "checkpoints" / f"{which}.json").get("metrics") or {}).get("tau")
                break
        if split is None or not final:
            return []

        path = run_dir / "plots" / f"roc-{split}.png"
        roc_figure(self, model, getattr(data, split), path, device, tau=self.run_tau)
        return [f"One-shot on held-out identities ({', '.join(self.meta['test_identities'][:10])}): EER "
                f"{final['eer']:.4f}, AUC {final['auc']:.4f}, TAR@FAR=1e-3 {final['tar_far1e-3']:.4f}, "
                f"{int(final['oneshot_way'])}-way one-shot accuracy {final['oneshot_acc']:.4f}.", "",
                f"ROC and distance histograms on {split} pairs:", "", f"![roc](plots/{path.name})", ""]
