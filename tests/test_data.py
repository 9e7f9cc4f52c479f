import time

import pytest
import torch

from normlab import data
from normlab.data import DataError


def test_cifar10_shapes_labels_and_stats(data_dir):
    t = time.perf_counter()
    s = data.load_dataset("cifar10", data_dir)
    print(f"cifar10 load {time.perf_counter() - t:.2f} s")
    assert s.train.images.shape == (50_000, 3, 32, 32) and s.train.images.dtype == torch.uint8
    assert s.test.images.shape == (10_000, 3, 32, 32)
    assert s.train.labels[0].item() == 6 and s.test.labels[0].item() == 3  # frog, cat (shared/data/README)
    assert s.train.class_counts() == [5000] * 10 and s.test.class_counts() == [1000] * 10
    mean, std = data.channel_stats(s.train.images)
    assert mean == pytest.approx(data.CIFAR10_MEAN, abs=1e-6)
    assert std == pytest.approx(data.CIFAR10_STD, abs=1e-6)


def test_cifar2_is_prog_eval_split(data_dir):
    s = data.load_dataset("cifar2", data_dir)
    assert (len(s.train), len(s.test)) == (10_000, 2_000)
    assert s.train.class_counts() == [5000, 5000] and s.test.class_counts() == [1000, 1000]
    # the reference log prints the first labels of the unshuffled train set
    assert s.train.labels[:10].tolist() == [1, 1, 0, 0, 1, 0, 1, 1, 1, 0]
    full = data.load_dataset("cifar10", data_dir)
    keep = full.train.labels <= 1
    assert torch.equal(s.train.images, full.train.images[keep])  # original order
    x = s.train.images.double() / 255
    assert s.mean == pytest.approx(x.mean((0, 2, 3)).tolist(), abs=1e-9)
    assert s.std == pytest.approx(x.std((0, 2, 3), correction=0).tolist(), abs=1e-9)  # population std


def test_mnist_and_tairtahar_split(data_dir):
    m = data.load_dataset("mnist", data_dir)
    assert m.train.images.shape == (60_000, 1, 28, 28) and len(m.test) == 10_000
    assert m.train.labels[0].item() == 5 and m.test.labels[0].item() == 7
    t = data.load_dataset("mnist_tairtahar", data_dir, seed=0)
    assert (len(t.train), len(t.val), len(t.test)) == (51_000, 9_000, 10_000)
    assert t.train.images.shape[1:] == (1, 32, 32)
    assert t.train.images[:, :, :2].sum() == 0 and t.train.images[:, :, :, -2:].sum() == 0  # zero padding
    assert (t.mean, t.std) == ((0.0,), (1.0,))
    every = torch.cat([t.train.labels, t.val.labels, t.test.labels]).bincount()
    assert torch.equal(every, torch.cat([m.train.labels, m.test.labels]).bincount())
    again = data.load_dataset("mnist_tairtahar", data_dir, seed=0)
    other = data.load_dataset("mnist_tairtahar", data_dir, seed=1)
    assert torch.equal(again.test.images, t.test.images)
    assert not torch.equal(other.test.images, t.test.images)


def test_stratified_subset_is_seeded_and_balanced(data_dir):
    s = data.load_dataset("cifar10", data_dir, subset=20, test_subset=5, seed=3)
    assert s.train.class_counts() == [20] * 10 and s.test.class_counts() == [5] * 10
    again = data.load_dataset("cifar10", data_dir, subset=20, test_subset=5, seed=3)
    assert torch.equal(s.train.images, again.train.images)
    with pytest.raises(ValueError, match="per_class"):
        s.train.stratified_subset(0)
    with pytest.raises(ValueError, match="fewer than"):
        s.train.stratified_subset(21)


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("NORMLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.resolve_data_dir() == tmp_path / "cache" / "normlab" / "data"


def test_missing_data_names_paths_and_remedy(tmp_path):
    with pytest.raises(DataError) as e:
        data.load_dataset("cifar10", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "NORMLAB_DATA" in msg and "download=True" in msg
    with pytest.raises(ValueError, match="accepted: cifar10, cifar2, mnist, mnist_tairtahar"):
        data.load_dataset("imagenet", tmp_path)


def test_damaged_files_are_named(data_dir, tmp_path):
    src = data_dir / "cifar-10-batches-py"
    dst = tmp_path / "cifar-10-batches-py"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    (dst / "data_batch_3").unlink()
    (dst / "data_batch_3").write_bytes((src / "data_batch_3").read_bytes()[:1_000_000])  # truncated
    with pytest.raises(DataError, match="data_batch_3"):
        data.read_cifar10(tmp_path)

    raw = tmp_path / "m" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_dir / "MNIST" / "raw").iterdir():
        if not f.name.endswith(".gz"):
            (raw / f.name).symlink_to(f)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").write_bytes((data_dir / "MNIST/raw/t10k-labels-idx1-ubyte").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: .*truncated"):
        data.read_mnist(tmp_path / "m")
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").symlink_to(data_dir / "MNIST/raw/t10k-images-idx3-ubyte")
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        data.read_mnist(tmp_path / "m")


def test_mnist_reads_gz_when_raw_missing(data_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_dir / "MNIST" / "raw").glob("t10k-*.gz"):
        (raw / f.name).symlink_to(f)
    for f in (data_dir / "MNIST" / "raw").glob("train-*-ubyte"):
        (raw / f.name).symlink_to(f)
    x = data.read_mnist(tmp_path)
    assert x[2].shape == (10_000, 1, 28, 28) and x[3][0].item() == 7


def test_batches_cover_epoch_and_are_seeded(data_dir):
    s = data.load_dataset("cifar10", data_dir, subset=10, test_subset=3)
    dl = data.loaders(s, batch_size=32, seed=5)
    assert len(dl.train) == 4 and len(dl.test) == 1
    seen = torch.cat([y for _, y in dl.train])
    assert sorted(seen.tolist()) == sorted(s.train.labels.tolist())
    x, y = next(iter(dl.test))
    assert x.dtype == torch.float32 and x.shape == (30, 3, 32, 32)
    # normalization happens on the batch: mean/std of the dataset's stats
    ref = (s.test.images[:30].float() / 255 - torch.tensor(s.mean).view(3, 1, 1)) / torch.tensor(s.std).view(3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-5)
    a = [y for _, y in data.loaders(s, 32, seed=5).train]
    b = [y for _, y in data.loaders(s, 32, seed=5).train]
    c = [y for _, y in data.loaders(s, 32, seed=6).train]
    assert all(torch.equal(i, j) for i, j in zip(a, b)) and not all(torch.equal(i, j) for i, j in zip(a, c))
    # resuming from a saved generator state replays the same epoch
    st = dl.train.state_dict()
    e1 = [y for _, y in dl.train]
    dl.train.load_state_dict(st)
    assert all(torch.equal(i, j) for i, j in zip(e1, [y for _, y in dl.train]))


def test_bad_batch_arguments():
    imgs = data.ImageSet(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a",))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        data.Batches(imgs, 0)
    with pytest.raises(DataError, match="uint8"):
        data.ImageSet(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), ("a",))


def test_seed_style_loader_matches_tensor_data(data_dir):
    from normlab.baseline import seed_style_loader

    dl = seed_style_loader("cifar10", data_dir, train=False, batch_size=8)
    x, y = next(iter(dl))
    ours = data.loaders("cifar10", 8, data_dir=data_dir)
    xo, yo = next(iter(ours.test))
    assert torch.equal(y, yo) and torch.allclose(x, xo, atol=1e-5)
