"""Transfer learning and CNN features (CS231n lecture 7 "Transfer learning"; lecture 12 "Last layer: nearest neighbors").

- transfer-learning: from ImageNet weights (MobileNetV2, installed offline), with very little data
  train only the new head (frozen trunk); with more data, fine-tuning more layers pays off.
- knn-features: nearest neighbours in a CNN's feature space find images of the same class far more
  often than nearest neighbours on raw pixels.
"""

from __future__ import annotations

import torch

from cnnlab.lab.core import Context, Outcome, mean
from cnnlab.lab.registry import register_experiment

MOBILENET = dict(data="fashion-mnist", model="mobilenet_v2", model_kwargs={}, weights="imagenet", channels=3,
                 img_size=32, optimizer="adam", lr=1e-3, batch_size=32)


@register_experiment(name="transfer-learning", claim="With little data, train only the new head on a frozen pretrained "
                     "trunk; with more data, fine-tuning the whole net pays off", budget_s=180,
                     section="CS231n lecture 7 (transfer learning: 'very little data' vs 'quite a lot of data')")
def transfer_learning(ctx: Context) -> Outcome:
    sizes = ctx.pick((100, 2000), (32, 64))
    epochs = ctx.pick(5, 1)
    acc = {}
    for size in sizes:
        for label, freeze in (("head only", 5), ("fine-tune all", 0)):
            runs = ctx.train_seeds(**dict(MOBILENET, lr=1e-3 if freeze else 3e-4), freeze=freeze, limit=size,
                                   limit_test=ctx.pick(1000, 32), epochs=epochs)
            acc[(size, label)] = mean([r.best("val_acc") for r in runs])
    fig, ax = ctx.figure("transfer")
    for label in ("head only", "fine-tune all"):
        ax.plot(sizes, [acc[(s, label)] for s in sizes], "o-", label=label)
    ax.set(xscale="log", xlabel="training images", ylabel="validation accuracy",
           title="MobileNetV2 (ImageNet weights) on Fashion-MNIST, 32 px")
    ax.legend()
    fig_path = ctx.save(fig, "transfer")
    small, large = sizes
    n = {f"val_acc_{s}_{l.replace(' ', '_').replace('-', '_')}": v for (s, l), v in acc.items()}
    n["finetune_minus_head_small"] = acc[(small, "fine-tune all")] - acc[(small, "head only")]
    n["finetune_minus_head_large"] = acc[(large, "fine-tune all")] - acc[(large, "head only")]
    held = n["finetune_minus_head_large"] > n["finetune_minus_head_small"] and n["finetune_minus_head_large"] > 0
    verdict = (f"fine-tuning minus head-only: {n['finetune_minus_head_small']:+.1%} with {small} images, "
               f"{n['finetune_minus_head_large']:+.1%} with {large}")
    return Outcome(n, held, verdict, [fig_path])


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, k: int = 5) -> float:
    """k-nearest-neighbour (L2, majority vote) accuracy of flattened vectors."""
    d = torch.cdist(test_x.flatten(1), train_x.flatten(1))  # (N_test, N_train)
    idx = d.topk(k, largest=False).indices  # (N_test, k)
    votes = torch.nn.functional.one_hot(train_y[idx], int(train_y.max()) + 1).sum(1)  # (N_test, K)
    return float((votes.argmax(1) == test_y).float().mean())


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.forward_head(model.forward_features(b), pre_logits=True) for b in x.split(256)])


@register_experiment(name="knn-features", claim="kNN on CNN features beats kNN on pixels", budget_s=30,
                     section="CS231n lecture 12 (visualizing: nearest neighbours in feature space)")
def knn_features(ctx: Context) -> Outcome:
    limit, limit_test = ctx.pick(2000, 256), ctx.pick(1000, 128)
    trained = ctx.train(data="fashion-mnist", img_size=28, model_kwargs={"width": 16}, epochs=ctx.pick(3, 1),
                        limit=limit, limit_test=limit_test, optimizer="adam", lr=2e-3)
    xtr, ytr = trained.images(limit)
    xte, yte = trained.images(limit_test, split="test")
    n = {"knn_pixels": knn_accuracy(xtr, ytr, xte, yte),
         "knn_trained_cnn_features": knn_accuracy(features(trained.model, xtr), ytr, features(trained.model, xte), yte)}
    from cnnlab.models import create_model

    net = create_model("mobilenet_v2", num_classes=1000, weights="imagenet")
    up = lambda x: torch.nn.functional.interpolate(x, size=64, mode="bilinear").repeat(1, 3, 1, 1)  # noqa: E731
    n["knn_imagenet_mobilenet_features"] = knn_accuracy(features(net, up(xtr)), ytr, features(net, up(xte)), yte)
    fig, ax = ctx.figure("knn")
    labels = ["pixels", "trained convnet features", "ImageNet MobileNetV2 features"]
    ax.bar(labels, [n["knn_pixels"], n["knn_trained_cnn_features"], n["knn_imagenet_mobilenet_features"]])
    ax.set(ylabel="5-NN test accuracy", title=f"Fashion-MNIST, {limit} training images", ylim=(0, 1))
    fig_path = ctx.save(fig, "knn")
    held = n["knn_trained_cnn_features"] > n["knn_pixels"]
    verdict = (f"5-NN test accuracy: pixels {n['knn_pixels']:.1%}, features of a convnet trained on the same images "
               f"{n['knn_trained_cnn_features']:.1%}, ImageNet MobileNetV2 features {n['knn_imagenet_mobilenet_features']:.1%}")
    return Outcome(n, held, verdict, [fig_path])
