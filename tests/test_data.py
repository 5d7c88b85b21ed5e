"""Data sets: the embedded digits, deterministic batching, and one-line errors for missing/malformed data."""

import tarfile

import pytest
import torch

from jaq.data import load_data
from jaq.errors import JaqError
from jaq.search.config import validate_config


def _data(**kw):
    return validate_config({"data": kw})["data"]


def test_digits_embedded_split_and_batches():
    b = load_data(_data(dataset="digits", augment=False))
    assert b.in_shape == (1, 8, 8) and b.num_classes == 10
    assert len(b.train) + len(b.test) == 1797 and len(b.test) == 360
    w, a = b.split_train(0.2, seed=0)
    assert len(a) == round(0.2 * len(b.train)) and len(w) + len(a) == len(b.train)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x1, y1 = next(w.batches(16, shuffle=True, generator=g1))
    x2, y2 = next(w.batches(16, shuffle=True, generator=g2))
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (16, 1, 8, 8)
    # DDP sharding: two ranks see disjoint halves
    r0 = torch.cat([y for _, y in w.batches(1000, shuffle=False, rank=0, world=2)])
    r1 = torch.cat([y for _, y in w.batches(1000, shuffle=False, rank=1, world=2)])
    assert len(r0) == len(r1) == len(w) // 2


def test_augment_and_resize():
    b = load_data(_data(dataset="digits", augment=True, image_size=16))
    assert b.in_shape == (1, 16, 16)
    x, _ = next(b.train.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (8, 1, 16, 16) and torch.isfinite(x).all()


def test_missing_root_is_one_line_error(tmp_path):
    with pytest.raises(JaqError) as e:
        load_data(_data(dataset="cifar10"))
    assert "data.root" in str(e.value) and "--data-root" in str(e.value)
    with pytest.raises(JaqError) as e:
        load_data(_data(dataset="cifar100", root=str(tmp_path / "nope")))
    assert str(tmp_path / "nope") in str(e.value)
    with pytest.raises(JaqError) as e:
        load_data(_data(dataset="cifar10", root=str(tmp_path)))
    assert str(tmp_path) in str(e.value) and "cifar-10-batches-py" in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_cifar_and_archives(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / n).write_bytes(b"not a pickle")
    with pytest.raises(JaqError, match="malformed CIFAR"):
        load_data(_data(dataset="cifar10", root=str(tmp_path)))
    arch = tmp_path / "jpeg"
    arch.mkdir()
    (arch / "train.tar.gz").write_bytes(b"garbage")
    (arch / "test.tar.gz").write_bytes(b"garbage")
    with pytest.raises(JaqError, match="cannot extract"):
        load_data(_data(dataset="cifar10", root=str(arch), cache_dir=str(tmp_path / "cache")))


def test_jpeg_archives_extract_and_decode(tmp_path):
    """A small ImageFolder-in-tar.gz set (same layout as ../shared/datasets/cifar10-jpeg) loads and caches."""
    from PIL import Image
    src = tmp_path / "src"
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            (src / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32), (40 * i, 100 if c == "cat" else 200, 7)).save(
                    src / split / c / f"{i:04d}.jpg")
    root = tmp_path / "arch"
    root.mkdir()
    for split in ("train", "test"):
        with tarfile.open(root / f"{split}.tar.gz", "w:gz") as tf:
            tf.add(src / split, arcname=split)
    cfg = _data(dataset="imagefolder", root=str(root), cache_dir=str(tmp_path / "cache"), image_size=32)
    b = load_data(cfg)
    assert b.num_classes == 2 and len(b.train) == 6 and len(b.test) == 4 and b.in_shape == (3, 32, 32)
    assert list((tmp_path / "cache").glob("*/decoded-32.npz"))
    b2 = load_data(cfg)  # from the cache
    assert torch.equal(b2.train.x, b.train.x)
    with pytest.raises(JaqError, match="2 classes"):
        load_data(_data(dataset="cifar10", root=str(root), cache_dir=str(tmp_path / "cache")))
