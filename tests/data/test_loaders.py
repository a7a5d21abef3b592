import pytest
import torch

from cnnlab.data.augment import parse_augment
from cnnlab.data.datasets import ArrayDataset, FileDataset
from cnnlab.data.loaders import InMemoryLoader, make_loader, shard_indices
from cnnlab.data.normalize import compute_normalization
from cnnlab.errors import DataError


def pairs(batches):
    """(images, labels) of each dict batch."""
    for b in batches:
        assert set(b) == {"images", "labels"}
        yield b["images"], b["labels"]


def _ds(n=50, c=1, s=8):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)  # pixel (0, 0) identifies the image
    return ArrayDataset(images, torch.arange(n) % 5, [str(i) for i in range(5)])


def _ids(loader):
    return [y for _, y in pairs(loader)]


def test_eval_loader_is_plain_order_and_normalized():
    ds = _ds()
    norm = compute_normalization(ds)
    loader = make_loader(ds, 16, train=False, normalization=norm)
    assert isinstance(loader, InMemoryLoader) and len(loader) == 4
    batches = list(loader)
    assert [b["images"].shape[0] for b in batches] == [16, 16, 16, 2]
    x = torch.cat([b["images"] for b in batches])
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, norm(ds.images.float() / 255))
    assert torch.equal(torch.cat([b["labels"] for b in batches]), ds.labels)


def test_train_loader_shuffles_deterministically_and_drops_last():
    ds = _ds()
    a = make_loader(ds, 16, train=True, augment="flip-crop", seed=1)
    b = make_loader(ds, 16, train=True, augment="flip-crop", seed=1)
    assert len(a) == 3  # 50 // 16, last partial batch dropped
    b.set_epoch(0)
    xa, xb = list(a), list(b)
    assert all(torch.equal(p["images"], q["images"]) and torch.equal(p["labels"], q["labels"]) for p, q in zip(xa, xb))
    a.set_epoch(1)
    assert not torch.equal(torch.cat(_ids(a)), torch.cat([y for _, y in pairs(xb)]))
    # epoch 3 straight away equals epoch 3 after iterating epochs 0..2 (exact resume)
    fresh = make_loader(ds, 16, train=True, augment="flip-crop", seed=1)
    fresh.set_epoch(3)
    for e in range(4):
        a.set_epoch(e)
        batches = list(a)
    assert all(torch.equal(p["images"], q["images"]) for p, q in zip(batches, fresh))
    assert all(torch.equal(p["images"], q["images"]) for p, q in zip(batches[1:], fresh.iter_from(1)))
    # the order is a permutation of distinct images
    fresh.set_epoch(0)
    ids = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in pairs(make_loader(ds, 10, train=True, seed=1))])
    assert len(set(ids.tolist())) == 50


def test_small_split_keeps_one_batch():
    assert len(make_loader(_ds(n=5), 16, train=True)) == 1


def test_shards_are_disjoint_and_cover_the_set():
    n, world = 50, 4
    shards = [shard_indices(n, shuffle=True, seed=0, epoch=2, rank=r, world_size=world) for r in range(world)]
    assert {len(s) for s in shards} == {13}  # equal length, wrap-padded: 52 = 50 + 2
    flat = torch.cat(shards)
    assert set(flat.tolist()) == set(range(n)) and len(set(flat.tolist())) == n
    assert all(len(set(s.tolist())) == 13 for s in shards)
    # loaders: each rank sees its own images, same number of batches; eval shards are exact (no padding)
    ds = _ds(n=n)
    seen = []
    for r in range(world):
        ld = make_loader(ds, 4, train=True, seed=5, rank=r, world_size=world)
        assert len(ld) == 3
        ev = make_loader(ds, 4, train=False, rank=r, world_size=world)
        seen += torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in pairs(ev)]).tolist()
    assert sorted(seen) == list(range(n))


def test_channels_last():
    x, _ = next(pairs(make_loader(_ds(c=3), 8, train=False, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def _file_ds(tmp_path, make_folder, n=12):
    make_folder(tmp_path, {"a": n // 2, "b": n // 2}, size=(8, 8))
    paths = sorted(str(p) for p in tmp_path.glob("*/*.png"))
    labels = torch.tensor([0 if "/a/" in p else 1 for p in paths])
    return FileDataset(paths, labels, ["a", "b"], 3, (8, 8))


def test_file_loader_matches_in_memory(tmp_path, make_folder):
    fds = _file_ds(tmp_path, make_folder)
    mem = ArrayDataset(torch.stack([fds[i][0] for i in range(len(fds))]), fds.labels, fds.classes)
    norm = compute_normalization(mem)
    for train in (False, True):
        f = make_loader(fds, 5, train=train, normalization=norm, seed=3)
        m = make_loader(mem, 5, train=train, normalization=norm, seed=3)
        assert len(f) == len(m)
        for (xf, yf), (xm, ym) in zip(pairs(f), pairs(m)):
            torch.testing.assert_close(xf, xm)
            torch.testing.assert_close(yf, ym)


def test_file_loader_augmentation_is_reproducible(tmp_path, make_folder):
    fds = _file_ds(tmp_path, make_folder)
    runs = []
    for _ in range(2):
        ld = make_loader(fds, 4, train=True, augment=parse_augment("standard,pca=0.1"), seed=7)
        ld.set_epoch(2)
        torch.manual_seed(123)  # the global RNG must not matter ...
        runs.append(torch.cat([x for x, _ in pairs(ld)]))
    assert torch.equal(runs[0], runs[1])
    state = torch.get_rng_state()
    list(ld)
    assert torch.equal(state, torch.get_rng_state())  # ... and is left untouched


@pytest.mark.parametrize("aug", ["none", "flip-crop", "standard", "alexnet", "digits"])
def test_augmented_batches_have_the_right_shape(aug):
    ds = _ds(c=3)
    x, y = next(pairs(make_loader(ds, 8, train=True, augment=aug, normalization=compute_normalization(ds))))
    assert x.shape == (8, 3, 8, 8) and y.shape == (8,) and torch.isfinite(x).all()


def test_file_loader_workers_give_the_same_batches(tmp_path, make_folder):
    fds = _file_ds(tmp_path, make_folder, n=8)
    kw = dict(train=True, augment="flip-crop,jitter=0.3", seed=4)
    a = make_loader(fds, 4, num_workers=0, **kw)
    b = make_loader(fds, 4, num_workers=2, **kw)
    a.set_epoch(1)
    b.set_epoch(1)
    for (xa, ya), (xb, yb) in zip(pairs(a), pairs(b)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_in_memory_loader_on_a_device(device):
    """device= keeps the dataset on the device; the random draws stay on the CPU, so batches match."""
    ds = _ds(c=3)
    norm = compute_normalization(ds)
    cpu = make_loader(ds, 8, train=True, augment="standard,crop=2,pca=0.1", normalization=norm, seed=2)
    dev = make_loader(ds, 8, train=True, augment="standard,crop=2,pca=0.1", normalization=norm, seed=2, device=device)
    assert dev.images.device.type == device
    for (xa, ya), (xb, yb) in zip(pairs(cpu), pairs(dev)):
        assert xb.device.type == device and torch.equal(ya, yb.cpu())
        torch.testing.assert_close(xb.cpu(), xa, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("workers", [0, 1])
def test_file_loader_bad_file_is_one_line(tmp_path, make_folder, workers):
    fds = _file_ds(tmp_path, make_folder, n=4)
    good = open(fds.paths[1], "rb").read()
    open(fds.paths[1], "wb").write(good[: len(good) // 2])
    with pytest.raises(DataError) as err:
        list(make_loader(fds, 2, train=False, num_workers=workers))
    assert str(err.value).startswith(fds.paths[1] + ": image data is truncated") and "\n" not in str(err.value)
