"""Class-disjoint identity splits and the P x K batch sampler."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.identities import PKLoader, identity_splits
from cnnlab.errors import CnnlabError


def test_digits_default_holdout_is_7_8_9_and_disjoint():
    s = identity_splits("digits", val_fraction=0.1)
    assert s.test_identities == [7, 8, 9] and s.train_identities == list(range(7))
    assert set(s.test.labels.tolist()) == {7, 8, 9}
    assert set(s.train.labels.tolist()) == set(s.val.labels.tolist()) == set(range(7))
    assert len(s.train) + len(s.val) + len(s.test) == 1797  # every image, each in one split


def test_holdout_classes_by_name_and_errors():
    s = identity_splits("digits", holdout_classes="0,1", val_fraction=0)
    assert s.test_identities == [0, 1] and s.val is None
    with pytest.raises(CnnlabError, match="holdout"):
        identity_splits("digits", holdout_classes="zebra")
    with pytest.raises(CnnlabError, match="alternatives"):
        identity_splits("digits", holdout_classes="1,2", holdout_fraction=0.3)


def _folder(root, n_ids=6, per_id=8):
    rng = np.random.default_rng(0)
    for i in range(n_ids):
        (root / f"person{i}").mkdir(parents=True)
        for j in range(per_id):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / f"person{i}" / f"{j}.png")
    return root


def test_image_folder_holds_out_a_fraction_of_identities(tmp_path):
    s = identity_splits(str(_folder(tmp_path / "faces")), holdout_fraction=0.34, val_fraction=0.25)
    assert len(s.test_identities) == 2 and len(s.train_identities) == 4
    assert not set(s.test.labels.tolist()) & set(s.train.labels.tolist())
    assert s.classes[s.test_identities[0]].startswith("person")


def test_pk_loader_batches():
    s = identity_splits("digits", val_fraction=0)
    loader = PKLoader(s.train, p=4, k=5, steps=3, seed=1)
    batches = list(loader)
    assert len(batches) == 3
    for b in batches:
        ids = b["identities"]
        assert b["images"].shape == (20, 1, 28, 28)
        assert len(torch.unique(ids)) == 4 and (torch.bincount(ids)[torch.unique(ids)] == 5).all()
    again = list(loader.iter_from(1))  # a pure function of (seed, epoch, step): resumable
    assert torch.equal(again[0]["identities"], batches[1]["identities"])
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))["images"], batches[0]["images"])


def test_p_is_capped_at_the_number_of_identities():
    s = identity_splits("digits", val_fraction=0)
    assert PKLoader(s.train, p=50, k=2, steps=1).p == 7


def test_validation_split_without_pairs_is_refused(tmp_path):
    with pytest.raises(CnnlabError, match="no two images of one identity"):
        identity_splits(str(_folder(tmp_path / "few", n_ids=6, per_id=3)), holdout_fraction=0.34, val_fraction=0.2)


def test_class_disjoint_validation_identities_are_never_trained_on(tmp_path):
    s = identity_splits("digits", val_identities=2, val_fraction=0.1, limit_test=None, seed=3)
    val_ids = set(s.val.labels.tolist())
    assert val_ids == set(s.val_identities) and len(val_ids) == 2
    assert val_ids.isdisjoint(s.train.labels.tolist()) and val_ids.isdisjoint(s.test.labels.tolist())
    assert val_ids.isdisjoint(s.train_identities) and val_ids.isdisjoint({7, 8, 9})
    assert set(s.train.labels.tolist()) == set(s.train_identities) and len(s.train_identities) == 5
    counts = torch.bincount(torch.cat([s.train.labels, s.val.labels, s.test.labels]), minlength=10)
    assert counts.sum() == 1797 and int(counts.min()) > 170  # every image in one split (val_fraction unused)
    assert identity_splits("digits", val_identities=2, seed=3).val_identities == s.val_identities  # seeded
    folder = identity_splits(str(_folder(tmp_path / "faces")), holdout_fraction=0.34, val_identities=2)
    parts = [set(p.labels.tolist()) for p in (folder.train, folder.val, folder.test)]
    assert [len(p) for p in parts] == [2, 2, 2] and len(set.union(*parts)) == 6  # 6 identities, disjoint


@pytest.mark.parametrize("n, match", [(1, "at least 2 identities"), (6, "at most 5")])
def test_class_disjoint_validation_errors_are_one_line(n, match):
    with pytest.raises(CnnlabError, match=match):
        identity_splits("digits", val_identities=n)
