"""Autoencoder, VAE and DCGAN: the formulas, the gradients each player gets, the tasks and `cnnlab sample`."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli.main import main
from cnnlab.metrics.generative import class_entropy, classifier_score, frechet_distance, prediction_entropy
from cnnlab.models.generative import DCGAN, ConvAutoencoder, ConvVAE, dcgan_init, vae_loss

QUICK = ["--data", "digits", "--epochs", "2", "--batch-size", "64", "--quiet", "--no-tensorboard", "--threads", "1"]


# ---------------------------------------------------------------------------- formulas
def test_vae_loss_is_bce_plus_the_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    mu, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g) * 0.5
    loss, recon, kl = vae_loss(logits, x, mu, logvar)
    p = torch.sigmoid(logits)
    by_hand = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean()
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    kl_torch = torch.distributions.kl_divergence(q, prior).sum(1).mean()
    assert torch.allclose(recon, by_hand, atol=1e-5) and torch.allclose(kl, kl_torch, atol=1e-5)
    assert torch.allclose(loss, recon + kl) and torch.allclose(vae_loss(logits, x, mu, logvar, beta=4.0)[0], recon + 4 * kl)


def test_reparameterization_gives_gradients_to_mu_and_sigma():
    vae = ConvVAE(1, (8, 8), latent=3, width=4)
    mu = torch.zeros(1000, 3, requires_grad=True)
    logvar = torch.full((1000, 3), math.log(4.0), requires_grad=True)
    z = vae.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.detach().std()) - 2.0) < 0.1 and abs(float(z.detach().mean())) < 0.1  # sigma = 2
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu)) and logvar.grad.abs().sum() > 0


def test_frechet_distance_against_scipy_and_closed_form():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) * 2 + 1
    mu_a, mu_b, s_a, s_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    x, y = rng.normal(0, 1, size=(20000, 1)), rng.normal(3, 2, size=(20000, 1))
    assert frechet_distance(x, y) == pytest.approx(9 + 1, rel=0.03)


def test_entropies_and_classifier_score():
    sure = torch.eye(4).repeat(5, 1)  # every class, each sample one-hot
    assert prediction_entropy(sure) == pytest.approx(0, abs=1e-6) and class_entropy(sure) == pytest.approx(math.log(4))
    assert classifier_score(sure) == pytest.approx(4, rel=1e-5)
    unsure = torch.full((8, 4), 0.25)
    assert prediction_entropy(unsure) == pytest.approx(math.log(4)) and classifier_score(unsure) == pytest.approx(1.0)
    collapsed = torch.tensor([[1.0, 0, 0, 0]] * 8)  # mode collapse: sharp but one class
    assert classifier_score(collapsed) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------- models
@pytest.mark.parametrize("size", [28, 32, 8])
def test_dcgan_shapes_and_guidelines(size):
    gan = DCGAN(nz=16, chans=1, size=size, width=8)
    dcgan_init(gan)
    z = torch.randn(5, 16)
    fake = gan(z)
    assert fake.shape == (5, 1, size, size) and fake.min() >= -1 and fake.max() <= 1
    assert gan.discriminator(fake).shape == (5,)
    mods = list(gan.modules())
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.Linear)) for m in mods)
    assert not isinstance(gan.discriminator.net[1], torch.nn.BatchNorm2d)  # no BN on D's input layer
    assert isinstance(gan.generator.net[-1], torch.nn.Tanh) and isinstance(gan.discriminator.net[1], torch.nn.LeakyReLU)
    convs = [m for m in mods if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert abs(float(torch.cat([c.weight.detach().flatten() for c in convs]).std()) - 0.02) < 0.003


def test_autoencoder_shapes_and_bad_sizes():
    from cnnlab.errors import ConfigError

    ae = ConvAutoencoder(3, (32, 24), latent=7, width=4)
    x = torch.rand(2, 3, 32, 24)
    assert ae.encode(x).shape == (2, 7) and ae(x).shape == x.shape
    with pytest.raises(ConfigError, match="divisible by 4"):
        ConvAutoencoder(1, (30, 30))


def test_gan_step_gives_each_player_only_its_own_gradient():
    """loss_d moves only D, loss_g only G: the summed loss's gradients equal each loss's alone."""
    from cnnlab.tasks.generate import GANConfig, GANTask

    task = GANTask(GANConfig(task="gan"))
    gan = DCGAN(nz=8, chans=1, size=8, width=4)
    dcgan_init(gan)
    batch = {"images": torch.rand(6, 1, 8, 8)}
    torch.manual_seed(0)
    out = task.training_step(gan, batch)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in gan.named_parameters()}
    gan.zero_grad()
    torch.manual_seed(0)  # the same z
    real = batch["images"] * 2 - 1
    z = torch.randn(6, 8)
    fake = gan.generator(z)
    d_real, d_fake = gan.discriminator(real), gan.discriminator(fake.detach())
    loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones(6)) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros(6))
    d_params = dict(gan.discriminator.named_parameters())
    g_d = torch.autograd.grad(loss_d, list(d_params.values()))
    loss_g = F.binary_cross_entropy_with_logits(gan.discriminator(fake), torch.ones(6))
    g_params = dict(gan.generator.named_parameters())
    g_g = torch.autograd.grad(loss_g, list(g_params.values()))
    for (n, _), g in zip(d_params.items(), g_d):
        assert torch.allclose(grads[f"discriminator.{n}"], g, atol=1e-6), n
    for (n, _), g in zip(g_params.items(), g_g):
        assert torch.allclose(grads[f"generator.{n}"], g, atol=1e-6), n
    assert float(out["loss_d"]) == pytest.approx(float(loss_d.detach()), rel=1e-5)


# ---------------------------------------------------------------------------- tasks and the command line
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    for task in ("autoencoder", "vae", "gan"):
        assert main(["train", task, *QUICK, "--out", str(root / task)]) == 0
    return root


def test_tasks_write_their_summaries_and_figures(runs):
    ae = json.loads((runs / "autoencoder" / "summary.json").read_text())
    assert ae["model"] == "autoencoder" and ae["monitor"] == "loss" and ae["loss"] > 0 and 0 <= ae["mse"] <= 1
    assert 0.1 < ae["probe_acc"] <= 1 and 0.1 < ae["probe_acc_pixels"] <= 1 and ae["eval_split"] == "test"
    vae = json.loads((runs / "vae" / "summary.json").read_text())
    assert vae["loss"] == pytest.approx(vae["recon"] + vae["kl"], rel=1e-4) and vae["kl"] > 0 and "probe_acc" in vae
    for f in ("samples.png", "reconstructions.png", "interpolation.png", "latent.png"):
        assert (runs / "vae" / "plots" / f).is_file(), f
    gan = json.loads((runs / "gan" / "summary.json").read_text())
    assert gan["model"] == "dcgan" and gan["best_epoch"] == 2 and {"loss_d", "loss_g", "d_real", "d_fake"} <= set(gan)
    for f in ("samples.png", "gan-losses.png", "fixed-noise-epoch01.png", "fixed-noise-epoch02.png",
              "fixed-noise-progress.png"):
        assert (runs / "gan" / "plots" / f).is_file(), f
    header = (runs / "gan" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_d", "train_loss_g", "val_loss_d", "val_d_real"} <= set(header)
    config = json.loads((runs / "gan" / "config.json").read_text())
    assert config["beta1"] == 0.5 and config["lr"] == 2e-4 and config["schedule"] == "none"


def test_sample_writes_grids_and_refuses_the_autoencoder(runs, tmp_path, capsys):
    from PIL import Image

    for task in ("vae", "gan"):
        out = tmp_path / f"{task}.png"
        assert main(["sample", str(runs / task), "--n", "16", "--out", str(out)]) == 0
        w, h = Image.open(out).size
        assert w == h == 4 * 28 + 5 * 2  # 4 x 4 images of 28 px with 2 px gaps
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    main(["sample", str(runs / "vae"), "--n", "4", "--out", str(a), "--seed", "3"])
    main(["sample", str(runs / "vae"), "--n", "4", "--out", str(b), "--seed", "3"])
    assert a.read_bytes() == b.read_bytes()  # a seed gives the same samples
    capsys.readouterr()
    assert main(["sample", str(runs / "autoencoder")]) == 2
    assert "no prior" in capsys.readouterr().err
    assert main(["sample", str(runs / "vae"), "--out", str(tmp_path / "x.txt")]) == 2
    assert "end it in .png" in capsys.readouterr().err


def test_bad_settings_get_one_line(tmp_path, capsys):
    assert main(["train", "vae", *QUICK, "--img-size", "30", "--out", str(tmp_path / "r")]) == 2
    assert "divisible by 4" in capsys.readouterr().err
    assert main(["train", "gan", *QUICK, "--img-size", "30", "--out", str(tmp_path / "g")]) == 2
    assert "DCGAN here takes" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "g").exists()


def test_gan_generator_and_vae_export(runs, tmp_path):
    from cnnlab.engine.evaluate import load_task

    _, gan, meta, _ = load_task(runs / "gan")
    assert main(["export", str(runs / "gan"), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 0
    doc = json.loads((tmp_path / "g.pt.json").read_text())
    assert doc["inputs"][0]["name"] == "z" and doc["inputs"][0]["shape"] == ["batch", meta["latent"]]
    z = torch.randn(4, meta["latent"])
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "g.pt"))(z)[0]
        assert torch.allclose(got, gan(z), atol=1e-5) and got.shape == (4, 1, 28, 28)
    assert main(["export", str(runs / "vae"), "--format", "exported-program", "--out", str(tmp_path / "v.pt2")]) == 0
    names = [o["name"] for o in json.loads((tmp_path / "v.pt2.json").read_text())["outputs"]]
    assert names == ["logits", "mu", "logvar", "z"]


def test_a_folder_of_colour_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, chan in (("red", 0), ("blue", 2)):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(24):
            arr = (rng.random((30, 30, 3)) * 120).astype(np.uint8)
            arr[..., chan] = 255
            Image.fromarray(arr).save(tmp_path / "d" / c / f"{i}.png")
    for task in ("autoencoder", "gan"):
        out = tmp_path / task
        assert main(["train", task, "--data", str(tmp_path / "d"), "--img-size", "32", "--epochs", "1", "--batch-size", "8",
                     "--quiet", "--no-tensorboard", "--threads", "1", "--out", str(out)]) == 0
        assert (out / "plots" / ("reconstructions.png" if task == "autoencoder" else "samples.png")).is_file()
    summary = json.loads((tmp_path / "autoencoder" / "summary.json").read_text())
    assert summary["probe_acc"] >= 0.9  # red vs blue is linearly separable in the code


def test_a_flat_folder_without_classes(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "faces").mkdir()
    for i in range(20):
        Image.fromarray((rng.random((36, 40)) * 255).astype(np.uint8)).save(tmp_path / "faces" / f"{i}.jpg")
    out = tmp_path / "vae"
    assert main(["train", "vae", "--data", str(tmp_path / "faces"), "--img-size", "32", "--epochs", "1", "--batch-size", "4",
                 "--quiet", "--no-tensorboard", "--threads", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "probe_acc" not in summary and (out / "plots" / "samples.png").is_file()  # one class: no probe to fit
    # a classifier still refuses a folder without classes
    assert main(["train", "classify", "--data", str(tmp_path / "faces"), "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 2
    assert "no class subfolders" in capsys.readouterr().err
