"""Generative models as tasks: ``cnnlab train autoencoder|vae|gan --data fashion-mnist|DIR``.

Data: a named dataset (fashion-mnist, mnist, digits) or an image folder: flat, or with class subfolders (they give
the labels of the linear probe; the models never see them). Pixels in [0, 1], no mean/std normalization (the decoders end in a
sigmoid, the GAN's generator in a tanh on [-1, 1]). Batches: ``images f32[B,C,H,W]`` in [0, 1], ``labels i64[B]``.

- autoencoder: reconstruction loss, per image the sum over pixels of the binary cross-entropy (nats); best
  checkpoint = lowest validation ``loss``. Report: reconstructions, and a linear probe (logistic regression on
  the frozen codes, labels used only there) against the same probe on raw pixels: "features without labels".
- vae: the negative ELBO (reconstruction + KL) per image, ``recon`` and ``kl`` logged apart; report: samples from
  the prior, reconstructions, a latent interpolation between two test images, the 2-D latent scatter (PCA of mu
  when the code is wider than 2) coloured by class, and the linear probe on mu.
- gan: DCGAN. One optimizer step updates both players from the same state (simultaneous gradient descent): the
  discriminator's loss BCE(D(x), 1) + BCE(D(G(z)), 0) with G(z) detached, plus the generator's non-saturating
  loss BCE(D(G(z)), 1) computed through a copy of D's weights with no gradient, so each player's gradient is
  its own loss's. ``loss_d``, ``loss_g``, ``d_real`` (mean D(x)) and ``d_fake`` (mean D(G(z))) are logged; the
  checkpoint kept is the last epoch (GAN losses do not measure sample quality). Report: the loss curves of D and
  G per step and a grid of the same 64 noise vectors after every epoch.

``cnnlab sample RUN_DIR --n 64`` draws a grid from a vae or gan run (an autoencoder's code has no prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError
from cnnlab.tasks import register_task
from cnnlab.tasks.base import DataBundle, Evaluator, Task

GRID_NOISE_SEED = 1234  # the GAN's fixed noise: the same 64 z after every epoch
PROBE_TRAIN, PROBE_TEST = 10000, 5000  # images of the linear probe (train split / eval split)


@dataclass
class GenerativeConfig(TrainConfig):
    data: str = opt("fashion-mnist", "fashion-mnist, mnist, digits, or a folder of images (flat, or class subfolders: "
                    "their names are used only by the linear probe)", group="data")
    model: str = opt("autoencoder", "the network", group="model", choices=("autoencoder",))
    latent: int = opt(32, "size of the code z", group="model", min=1)
    width: int = opt(32, "channels of the first convolution (doubled once)", group="model", min=1)
    epochs: int = opt(10, "number of passes over the training set", group="optimization", min=1)
    batch_size: int = opt(128, "images per step", group="optimization", min=1)
    optimizer: str = opt("adam", "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw", group="optimization",
                         choices=("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float | None = opt(1e-3, "learning rate", group="optimization", min=0, min_open=True)
    weight_decay: float = opt(0.0, "L2 weight decay", group="regularization", min=0)
    probe: bool = opt(True, "after training, fit a linear probe on the codes (and on raw pixels) and report both",
                      group="run", flag="--no-probe")


def _load(cfg: GenerativeConfig, default_val: float) -> DataBundle:
    from cnnlab.data.datasets import load_classification_data

    named = cfg.data in ("fashion-mnist", "mnist", "digits")
    val = cfg.val_fraction if cfg.val_fraction is not None else (default_val if named else None)
    data = load_classification_data(cfg.data, cfg.data_root, val_fraction=val, img_size=cfg.img_size,
                                    channels=cfg.channels, skip_bad=cfg.skip_bad, seed=cfg.seed, limit=cfg.limit,
                                    limit_test=cfg.limit_test, unlabelled_ok=True)
    meta = {"classes": list(data.classes), "num_classes": len(data.classes), "in_chans": data.in_chans,
            "img_size": list(data.img_size), "latent": cfg.latent, "width": cfg.width, "data": cfg.data,
            "model": cfg.model}
    return DataBundle(data.train, data.val, data.test, meta, data.source, skipped=data.skipped)


class _Sums(Evaluator):
    """Means over the split of the per-batch means each step returns (weighted by images)."""

    def __init__(self, keys: tuple[str, ...], extra: dict[str, float] | None = None):
        super().__init__()
        self.keys, self.extra = keys, extra or {}
        self.acc = {k: 0.0 for k in keys}
        self.n_images = 0

    def update(self, out: dict[str, Any]) -> None:
        n = int(out["n"])
        for k in self.keys:
            self.acc[k] += float(out[k]) * n
        self.n_images += n

    def compute(self) -> dict[str, Any]:
        n = max(1, self.n_images)
        return {**{k: v / n for k, v in self.acc.items()}, **self.extra, "count": self.n_images}


class _GenerativeTask(Task):
    Config = GenerativeConfig
    monitor, mode = "loss", "min"
    progress_keys = ("loss",)
    default_val = 0.1

    def build_data(self, cfg: GenerativeConfig) -> DataBundle:
        return _load(cfg, self.default_val)

    def train_loader(self, cfg, data, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import make_loader

        return make_loader(data.train, cfg.batch_size, train=True, seed=cfg.seed, rank=rank, world_size=world_size,
                           num_workers=cfg.num_workers)

    def eval_loader(self, cfg, data, split, rank: int = 0, world_size: int = 1):
        from cnnlab.data.loaders import make_loader

        return make_loader(split, 512, train=False, seed=cfg.seed, rank=rank, world_size=world_size,
                           num_workers=cfg.num_workers)

    def build_model(self, cfg, data, *, resume: bool = False) -> nn.Module:
        if cfg.weights or cfg.freeze:
            raise ConfigError(f"--weights/--freeze: a {self.name} run trains from scratch")
        return self.create_network(self.meta)

    # ------------------------------------------------------------------ the linear probe
    def _probe(self, encode, data: DataBundle, split_name: str | None, device: torch.device) -> dict[str, Any] | None:
        """Logistic regression on frozen codes vs on raw pixels (same images, same solver)."""
        test = getattr(data, split_name) if split_name else None
        if not self.cfg.probe or test is None or len(set(data.train.labels.tolist())) < 2:
            return None
        codes_tr, pix_tr, y_tr = _features(encode, data.train, PROBE_TRAIN, device, self.cfg.seed)
        codes_te, pix_te, y_te = _features(encode, test, PROBE_TEST, device, self.cfg.seed)
        return {"probe_acc": linear_probe(codes_tr, y_tr, codes_te, y_te),
                "probe_acc_pixels": linear_probe(pix_tr, y_tr, pix_te, y_te),
                "probe_images": [len(y_tr), len(y_te)]}

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        return dict(getattr(self, "probe_result", None) or {})


def _subset(ds, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(len(ds), generator=g)[: min(n, len(ds))]


def _images(ds, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float images in [0, 1] (N, C, H, W), labels) of a dataset's rows."""
    if hasattr(ds, "images"):
        return ds.images[idx].float() / 255, ds.labels[idx]
    pairs = [ds[int(i)] for i in idx]
    return torch.stack([p[0] for p in pairs]).float() / 255, torch.tensor([int(p[1]) for p in pairs])


@torch.no_grad()
def _features(encode, ds, n: int, device: torch.device, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _images(ds, _subset(ds, n, seed))
    codes = torch.cat([encode(x[i:i + 512].to(device)).float().cpu() for i in range(0, len(x), 512)])
    return codes.numpy(), x.flatten(1).numpy(), y.numpy()


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of multinomial logistic regression (L2, C=1) on standardized features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=300, C=1.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on pixels: the figure is still the probe's
        clf.fit(scaler.transform(train_x), train_y)
    return float((clf.predict(scaler.transform(test_x)) == test_y).mean())


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """(N, C, H, W) in [0, 1] -> one PNG grid (2 px gaps)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 or (arr[..., 0] == arr[..., 1]).all() else arr).save(path)
    return path


def _recon_grid(model, data_split, path: Path, device, seed: int, n: int = 32) -> Path:
    x, _ = _images(data_split, _subset(data_split, n, seed))
    with torch.no_grad():
        out = model(x.to(device))
        logits = out["logits"] if isinstance(out, dict) else out
        recon = torch.sigmoid(logits).cpu()
    rows = []
    for i in range(0, len(x), 8):  # a row of originals, then their reconstructions
        rows += [x[i:i + 8], recon[i:i + 8]]
    return save_grid(torch.cat(rows), path)


# ---------------------------------------------------------------------------- autoencoder
@register_task
class AutoencoderTask(_GenerativeTask):
    name = "autoencoder"
    description = ("A convolutional autoencoder: reconstruct the images through a small code; its frozen codes then "
                   "feed a linear probe, scored against the same probe on raw pixels (features learned without labels).")
    summary_keys = ("loss", "mse")
    examples = """examples:
  cnnlab train autoencoder --data fashion-mnist                  # about 3 minutes on 2 cores
  cnnlab train autoencoder --data ~/photos --img-size 32 --latent 64"""

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models.generative import ConvAutoencoder

        return ConvAutoencoder(meta["in_chans"], tuple(meta["img_size"]), meta["latent"], meta["width"])

    def training_step(self, model, batch) -> dict[str, torch.Tensor]:
        x = batch["images"]
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        return {"loss": loss}

    @torch.no_grad()
    def validation_step(self, model, batch) -> dict[str, Any]:
        x = batch["images"]
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        mse = (torch.sigmoid(logits) - x).pow(2).mean()
        return {"loss": loss, "mse": mse, "n": len(x)}

    def evaluator(self) -> Evaluator:
        return _Sums(("loss", "mse"))

    def report(self, run_dir, model, data, final, split, device) -> list[str]:
        if split is None:
            return []
        plots = run_dir / "plots"
        _recon_grid(model, getattr(data, split), plots / "reconstructions.png", device, self.cfg.seed)
        lines = [f"Reconstructions ({split} images; odd rows the input, even rows the output):", "",
                 "![reconstructions](plots/reconstructions.png)", ""]
        self.probe_result = self._probe(model.encode, data, split, device)
        lines += _probe_lines(self.probe_result, "codes")
        return lines


def _probe_lines(result: dict[str, Any] | None, what: str) -> list[str]:
    if not result:
        return []
    n_tr, n_te = result["probe_images"]
    return [f"Linear probe (logistic regression on {n_tr} training images, scored on {n_te}): {what} "
            f"{result['probe_acc']:.4f}, raw pixels {result['probe_acc_pixels']:.4f}.", ""]


# ---------------------------------------------------------------------------- VAE
@dataclass
class VAEConfig(GenerativeConfig):
    model: str = opt("vae", "the network", group="model", choices=("vae",))
    latent: int = opt(16, "size of the code z", group="model", min=1)
    beta: float = opt(1.0, "weight of the KL term (1 = the ELBO; beta-VAE above 1)", group="regularization", min=0)


@register_task
class VAETask(_GenerativeTask):
    name = "vae"
    description = ("A variational autoencoder (Kingma & Welling): minimize the negative ELBO (reconstruction + KL to "
                   "N(0, I)) with the reparameterization trick; sample from the prior with `cnnlab sample RUN_DIR`.")
    Config = VAEConfig
    summary_keys = ("loss", "recon", "kl")
    examples = """examples:
  cnnlab train vae --data fashion-mnist                   # about 3 minutes on 2 cores
  cnnlab train vae --data fashion-mnist --latent 2        # a 2-D code: the scatter is the latent space itself
  cnnlab sample runs/vae-... --n 64 --out samples.png"""

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models.generative import ConvVAE

        return ConvVAE(meta["in_chans"], tuple(meta["img_size"]), meta["latent"], meta["width"])

    def _losses(self, model, x):
        from cnnlab.models.generative import vae_loss

        out = model(x)
        return vae_loss(out["logits"], x, out["mu"], out["logvar"], self.cfg.beta)

    def training_step(self, model, batch) -> dict[str, torch.Tensor]:
        loss, recon, kl = self._losses(model, batch["images"])
        return {"loss": loss, "recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def validation_step(self, model, batch) -> dict[str, Any]:
        # eval mode decodes mu; the ELBO needs a sample: reparameterize explicitly with a fixed generator
        from cnnlab.models.generative import vae_loss

        x = batch["images"]
        mu, logvar = model.encode(x)
        g = torch.Generator(device=x.device).manual_seed(0)
        z = model.reparameterize(mu, logvar, generator=g)
        loss, recon, kl = vae_loss(model.decode(z), x, mu, logvar, self.cfg.beta)
        return {"loss": loss, "recon": recon, "kl": kl, "n": len(x)}

    def evaluator(self) -> Evaluator:
        return _Sums(("loss", "recon", "kl"))

    def sample(self, model, n: int, seed: int = 0) -> torch.Tensor:
        return model.sample(n, generator=torch.Generator().manual_seed(seed))

    def report(self, run_dir, model, data, final, split, device) -> list[str]:
        if split is None:
            return []
        plots = run_dir / "plots"
        ds = getattr(data, split)
        save_grid(self.sample(model, 64, self.cfg.seed), plots / "samples.png")
        _recon_grid(model, ds, plots / "reconstructions.png", device, self.cfg.seed)
        has_walk = _interpolation(model, ds, plots / "interpolation.png", device, self.cfg.seed).is_file()
        has_scatter = _latent_scatter(model, ds, list(self.meta["classes"]), plots / "latent.png", device,
                                      self.cfg.seed).is_file()
        lines = ["Samples from the prior z ~ N(0, I):", "", "![samples](plots/samples.png)", "",
                 f"Reconstructions ({split}; odd rows in, even rows out) and a walk in z between pairs of {split} images:",
                 "", "![reconstructions](plots/reconstructions.png)", "",
                 *(["![interpolation](plots/interpolation.png)", ""] if has_walk else []),
                 *(["The code of each image (mu; PCA to 2-D when wider), coloured by class:", "",
                    "![latent](plots/latent.png)", ""] if has_scatter else [])]
        self.probe_result = self._probe(lambda x: model.encode(x)[0], data, split, device)
        lines += _probe_lines(self.probe_result, "mu")
        return lines


@torch.no_grad()
def _interpolation(model, ds, path: Path, device, seed: int, pairs: int = 6, steps: int = 10) -> Path:
    x, _ = _images(ds, _subset(ds, 2 * pairs, seed + 1))
    pairs = min(pairs, len(x) // 2)  # a small split gives fewer rows
    if pairs == 0:
        return path
    mu, _ = model.encode(x.to(device))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    rows = [torch.sigmoid(model.decode(mu[2 * i] * (1 - t) + mu[2 * i + 1] * t)).cpu() for i in range(pairs)]
    return save_grid(torch.cat(rows), path, nrow=steps)


@torch.no_grad()
def _latent_scatter(model, ds, classes: list[str], path: Path, device, seed: int, n: int = 3000) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = _images(ds, _subset(ds, n, seed))
    if len(x) < 3:  # too few images for a picture (or a PCA)
        return path
    mu = torch.cat([model.encode(x[i:i + 512].to(device))[0].cpu() for i in range(0, len(x), 512)]).numpy()
    if mu.shape[1] > 2:
        from sklearn.decomposition import PCA

        mu, how = PCA(2, random_state=0).fit_transform(mu), "PCA of mu"
    else:
        how = "mu"
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=y.numpy(), cmap="tab10", s=4, alpha=0.7)
    handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(i)), label=c) for i, c in enumerate(classes)]
    ax.legend(handles=handles, fontsize=7, markerscale=1.2, loc="best")
    ax.set_title(f"VAE latent space ({how}, {len(y)} images)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- DCGAN
@dataclass
class GANConfig(GenerativeConfig):
    model: str = opt("dcgan", "the network", group="model", choices=("dcgan",))
    latent: int = opt(64, "size of the noise vector z", group="model", min=1)
    width: int = opt(32, "channels of the discriminator's first layer (the generator mirrors it)", group="model", min=1)
    epochs: int = opt(10, "number of passes over the training set", group="optimization", min=1)
    lr: float | None = opt(2e-4, "learning rate of both players (Radford et al.)", group="optimization", min=0,
                           min_open=True)
    beta1: float = opt(0.5, "Adam/AdamW beta1 (Radford et al.: 0.5 steadies training)", group="optimization", min=0,
                       max=1, max_open=True)
    schedule: str = opt("none", "learning-rate schedule (DCGAN: constant)", group="optimization",
                        choices=("none", "step", "exp", "inv", "cosine", "onecycle"))
    probe: bool = opt(False, "(a GAN has no encoder: no probe)", group="run", cli=False)


@register_task
class GANTask(_GenerativeTask):
    name = "gan"
    description = ("DCGAN (Radford et al.): a generator and a discriminator trained against each other (simultaneous "
                   "updates, non-saturating generator loss); the same 64 noise vectors are drawn after every epoch.")
    Config = GANConfig
    monitor, mode = "evaluated_epoch", "max"  # the last epoch is kept: GAN losses do not measure sample quality
    progress_keys = ("loss_d", "loss_g")
    summary_keys = ("loss_d", "loss_g", "d_real", "d_fake")
    examples = """examples:
  cnnlab train gan --data fashion-mnist                   # DCGAN, about 5 minutes on 2 cores
  cnnlab sample runs/gan-... --n 64 --out samples.png"""

    def __init__(self, cfg, meta=None):
        super().__init__(cfg, meta)
        self.trace: list[tuple[float, float]] = []  # (loss_d, loss_g) per step, for the curves
        self.epoch_grids: list[torch.Tensor] = []
        self.evaluations = 0

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models.generative import DCGAN

        h, w = meta["img_size"]
        if h != w:
            raise ConfigError(f"images of {h}x{w}: DCGAN here takes square images; pass --img-size")
        return DCGAN(meta["latent"], meta["in_chans"], h, meta["width"])

    def build_model(self, cfg, data, *, resume: bool = False) -> nn.Module:
        from cnnlab.models.generative import dcgan_init

        model = super().build_model(cfg, data, resume=resume)
        dcgan_init(model)
        return model

    def training_step(self, model, batch) -> dict[str, torch.Tensor]:
        from torch.func import functional_call

        real = batch["images"] * 2 - 1
        d = model.discriminator
        z = torch.randn(len(real), model.nz, device=real.device, dtype=real.dtype)
        fake = model.generator(z)
        d_real, d_fake = d(real), d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        frozen = {k: v.detach() for k, v in d.named_parameters()}
        d_fake_g = functional_call(d, (frozen, dict(d.named_buffers())), (fake,))
        loss_g = F.binary_cross_entropy_with_logits(d_fake_g, torch.ones_like(d_fake_g))  # non-saturating
        self.trace.append((float(loss_d.detach()), float(loss_g.detach())))
        return {"loss": loss_d + loss_g, "loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(d_real).mean().detach(), "d_fake": torch.sigmoid(d_fake).mean().detach()}

    @torch.no_grad()
    def validation_step(self, model, batch) -> dict[str, Any]:
        real = batch["images"] * 2 - 1
        if self._grid_pending:  # the fixed noise, once per evaluation
            self._grid_pending = False
            z = torch.randn(64, model.nz, generator=torch.Generator().manual_seed(GRID_NOISE_SEED)).to(real)
            self.epoch_grids.append(((model.generator(z) + 1) / 2).cpu())
        z = torch.randn(len(real), model.nz, generator=torch.Generator().manual_seed(len(real)), dtype=real.dtype)
        d_real, d_fake = model.discriminator(real), model.discriminator(model.generator(z.to(real.device)))
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return {"loss_d": loss_d, "loss_g": loss_g, "d_real": torch.sigmoid(d_real).mean(),
                "d_fake": torch.sigmoid(d_fake).mean(), "n": len(real)}

    def evaluator(self) -> Evaluator:
        self._grid_pending = True
        self.evaluations += 1
        return _Sums(("loss_d", "loss_g", "d_real", "d_fake"), {"evaluated_epoch": float(self.evaluations)})

    def sample(self, model, n: int, seed: int = 0) -> torch.Tensor:
        return model.sample(n, generator=torch.Generator().manual_seed(seed))

    def report(self, run_dir, model, data, final, split, device) -> list[str]:
        plots = run_dir / "plots"
        save_grid(self.sample(model, 64, self.cfg.seed), plots / "samples.png")
        lines = ["Samples of the kept (last) epoch:", "", "![samples](plots/samples.png)", ""]
        grids = self.epoch_grids[:-1] if split is not None else self.epoch_grids  # the last one is the final eval's
        if grids:
            for i, g in enumerate(grids, 1):
                save_grid(g, plots / f"fixed-noise-epoch{i:02d}.png")
            _progress_figure(grids, plots / "fixed-noise-progress.png")
            lines += ["The same 16 noise vectors after each epoch (rows):", "",
                      "![progress](plots/fixed-noise-progress.png)", ""]
        if self.trace:
            _gan_curves(self.trace, plots / "gan-losses.png")
            lines += ["Discriminator and generator losses per step:", "", "![losses](plots/gan-losses.png)", ""]
        return lines


def _progress_figure(grids: list[torch.Tensor], path: Path) -> Path:
    rows = [g[:16] for g in grids]
    return save_grid(torch.cat(rows), path, nrow=16)


def _gan_curves(trace: list[tuple[float, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = np.asarray(trace)
    k = max(1, len(arr) // 200)  # smooth over ~200 points
    smooth = np.stack([np.convolve(arr[:, j], np.ones(k) / k, mode="valid") for j in range(2)], 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(arr[:, 0], color="tab:blue", alpha=0.2, lw=0.6)
    ax.plot(arr[:, 1], color="tab:orange", alpha=0.2, lw=0.6)
    x = np.arange(len(smooth)) + k / 2
    ax.plot(x, smooth[:, 0], color="tab:blue", label="D: BCE(D(x),1) + BCE(D(G(z)),0)")
    ax.plot(x, smooth[:, 1], color="tab:orange", label="G: BCE(D(G(z)),1) (non-saturating)")
    ax.axhline(2 * math.log(2), color="grey", ls=":", lw=0.8)
    ax.axhline(math.log(2), color="grey", ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title("DCGAN losses (dotted: 2 ln 2 and ln 2, the values at D = 1/2)")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["AutoencoderTask", "VAETask", "GANTask", "linear_probe", "save_grid"]
