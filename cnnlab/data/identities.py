"""Identity-labelled images for verification: class-disjoint splits and a P x K batch sampler.

An "identity" is a class: a person (one subfolder of photos each), a Fashion-MNIST category or a
digit. One-shot learning is judged on identities never seen in training, so the split is by
identity, not by image:

- ``train``: images of the training identities, minus ``val``;
- ``val``: with ``val_identities=N``, every image of N more identities taken out of the training
  ones (seeded) and never trained on either, so that model selection and tau are judged like the
  test, on unseen identities (a validation split of the training identities rewards the epoch that
  knows them best, not the one that generalizes); else a stratified share of the training
  identities' images;
- ``test``: every image of the held-out identities (capped, stratified, fixed seed).

Fashion-MNIST and digits hold out classes 7, 8, 9 by default (train on 0-6); an image folder
holds out a seeded random ``holdout_fraction`` of its identities. ``PKLoader`` draws P identities
x K images per batch (Hermans et al.), so every batch has positives and negatives to mine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.data.datasets import ArrayDataset, load_classification_data
from cnnlab.data.loaders import mix_seed
from cnnlab.data.splits import stratified_split, stratified_subset
from cnnlab.errors import ConfigError, DataError

DEFAULT_HOLDOUT = {"fashion-mnist": [7, 8, 9], "digits": [7, 8, 9], "mnist": [7, 8, 9]}
DEFAULT_HOLDOUT_FRACTION = 0.3


@dataclass
class IdentitySplits:
    train: ArrayDataset
    val: ArrayDataset | None
    test: ArrayDataset
    classes: list[str]  # all identities; train / val / test labels index into it
    train_identities: list[int]
    test_identities: list[int]
    source: str
    val_identities: list[int] | None = None  # class-disjoint validation: identities in val only


def parse_holdout(spec: str, classes: list[str]) -> list[int]:
    """'7,8,9' or 'alice,bob' (indices or names) -> sorted class indices."""
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part in classes:
            out.append(classes.index(part))
        elif part.isdigit() and int(part) < len(classes):
            out.append(int(part))
        else:
            raise ConfigError(f"--holdout-classes: {part!r} is neither an identity name nor an index below {len(classes)}")
    return sorted(set(out))


def _pool(data) -> ArrayDataset:
    parts = [s for s in (data.train, data.val, data.test) if s is not None]
    if not all(isinstance(s, ArrayDataset) for s in parts):
        raise DataError("identity folders are read into memory; this one is too big (use fewer or smaller images)")
    return ArrayDataset(torch.cat([s.images for s in parts]), torch.cat([s.labels for s in parts]), data.classes)


def identity_splits(spec: str, root: str | None = None, *, holdout_classes: str | None = None,
                    holdout_fraction: float | None = None, val_fraction: float = 0.1, img_size: int | None = None,
                    channels: int | None = None, seed: int = 0, limit: int | None = None,
                    limit_test: int | None = 3000, skip_bad: bool = False, val_identities: int = 0) -> IdentitySplits:
    """Class-disjoint train / val / test of a named dataset or an image folder (one subfolder per identity).

    ``val_identities=N`` (N >= 2) makes val class-disjoint too (N seeded identities out of the training
    ones, all their images); then ``val_fraction`` is unused."""
    data = load_classification_data(spec, root, val_fraction=0.0, img_size=img_size, channels=channels,
                                     skip_bad=skip_bad, seed=seed, in_memory=True)
    pool = _pool(data)
    classes = list(data.classes)
    if holdout_classes and holdout_fraction:
        raise ConfigError("--holdout-classes and --holdout-fraction are alternatives; pass one")
    if holdout_classes:
        held = parse_holdout(holdout_classes, classes)
    elif holdout_fraction is None and spec in DEFAULT_HOLDOUT:
        held = list(DEFAULT_HOLDOUT[spec])
    else:
        fraction = DEFAULT_HOLDOUT_FRACTION if holdout_fraction is None else holdout_fraction
        if not 0 < fraction < 1:
            raise ConfigError(f"--holdout-fraction {fraction}: must be above 0 and below 1 (e.g. 0.3)")
        n_held = min(len(classes) - 2, max(2, round(fraction * len(classes))))
        perm = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed + 17))
        held = sorted(perm[:n_held].tolist())
    trained = [c for c in range(len(classes)) if c not in held]
    if len(held) < 2 or len(trained) < 2:
        raise ConfigError(f"{spec}: need at least 2 training and 2 held-out identities, got {len(trained)} and "
                          f"{len(held)} of {len(classes)}; add identities or change --holdout-classes")
    val_ids = _validation_identities(trained, val_identities, seed) if val_identities else []
    trained = [c for c in trained if c not in val_ids]
    is_held = torch.isin(pool.labels, torch.tensor(held))
    is_val = torch.isin(pool.labels, torch.tensor(val_ids, dtype=pool.labels.dtype))
    train = pool.subset(torch.nonzero(~is_held & ~is_val).flatten())
    test = pool.subset(torch.nonzero(is_held).flatten())
    counts = torch.bincount(train.labels, minlength=len(classes))[trained]
    if int(counts.min()) < 2:
        raise DataError(f"{spec}: identity {classes[trained[int(counts.argmin())]]!r} has fewer than 2 images; "
                        "every identity needs at least 2 (an anchor and a positive)")
    val = None
    if val_ids:
        val = pool.subset(torch.nonzero(is_val).flatten())
        if limit_test:
            val = val.subset(stratified_subset(val.labels, limit_test, seed + 2))
    elif val_fraction:
        tr, va = stratified_split(train.labels, val_fraction, seed)
        train, val = train.subset(tr), train.subset(va)
        if limit_test:
            val = val.subset(stratified_subset(val.labels, limit_test, seed + 2))
        if int(torch.bincount(val.labels).max()) < 2:
            raise ConfigError(f"--val-fraction {val_fraction}: the validation split has no two images of one identity "
                              "(no same-identity pairs to score); raise it, or pass 0 to keep the last epoch")
    if val_ids and int(torch.bincount(val.labels).max()) < 2:
        raise ConfigError(f"--val-identities {len(val_ids)}: no validation identity has two images (no same-identity "
                          "pairs to score); pass 0 to validate on images of the training identities")
    if limit:
        train = train.subset(stratified_subset(train.labels, limit, seed + 1))
    if limit_test:
        test = test.subset(stratified_subset(test.labels, limit_test, seed + 3))
    return IdentitySplits(train, val, test, classes, trained, held, data.source, val_ids or None)


def _validation_identities(trained: list[int], n: int, seed: int) -> list[int]:
    """N of the training identities, seeded, for a class-disjoint validation split (sorted class indices)."""
    if n < 2:
        raise ConfigError(f"--val-identities {n}: a class-disjoint validation split needs at least 2 identities "
                          "(pairs of different ones); pass 2 or more, or 0 for validation images of the training ones")
    if len(trained) - n < 2:
        raise ConfigError(f"--val-identities {n}: only {len(trained)} identities are left for training and "
                          f"validation, and training needs at least 2; pass at most {len(trained) - 2}")
    perm = torch.randperm(len(trained), generator=torch.Generator().manual_seed(seed + 29))
    return sorted(trained[i] for i in perm[:n].tolist())


class PKLoader:
    """Batches of P identities x K images each, ``steps`` per epoch, a pure function of (seed, epoch, step).

    Items are dicts of ``images`` uint8 (C, H, W) and ``identities`` i64; ``transform`` maps the
    stacked batch (e.g. to normalized floats). Identities with fewer than K images are drawn with
    replacement.
    """

    def __init__(self, ds: ArrayDataset, p: int, k: int, steps: int, *, seed: int = 0, transform=None):
        self.labels = ds.labels
        self.ids = torch.unique(ds.labels)
        if len(self.ids) < 2:
            raise DataError("a P x K batch needs at least 2 identities in the training split")
        self.ds, self.p, self.k, self.steps = ds, min(p, len(self.ids)), k, steps
        self.members = [torch.nonzero(ds.labels == c).flatten() for c in self.ids]
        self.seed, self.epoch, self.transform = seed, 0, transform

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return self.iter_from(0)

    def batch_indices(self, step: int) -> torch.Tensor:
        """The (P * K,) image indices of one step."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, step))
        chosen = torch.randperm(len(self.ids), generator=g)[: self.p]
        out = []
        for c in chosen.tolist():
            m = self.members[c]
            pick = torch.randperm(len(m), generator=g)[: self.k] if len(m) >= self.k else \
                torch.randint(len(m), (self.k,), generator=g)
            out.append(m[pick])
        return torch.cat(out)

    def iter_from(self, start: int):
        for step in range(start, self.steps):
            idx = self.batch_indices(step)
            batch = {"images": self.ds.images[idx], "identities": self.ds.labels[idx]}
            yield self.transform(batch) if self.transform else batch
