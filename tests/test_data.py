"""Data sets: the embedded digits, deterministic batching, and one-line errors for missing/malformed data."""

import tarfile

import pytest
import torch

from jaq.data import load_data
from jaq.errors import JaqError
from jaq.search.config import validate_config

#: Seconds after which a subprocess counts as hung (not slow: a loaded CI machine never decides a test).
HANG_S = 3000


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


# -- the in-memory CPU/GPU data path (issue 17) ------------------------------------------------------------------
def test_uint8_augmentation_equals_float_reference():
    from jaq.data import _augment, _augment_u8
    x = torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8)
    a = _augment(x.float(), torch.Generator().manual_seed(4))
    b = _augment_u8(x, torch.Generator().manual_seed(4))
    assert b.dtype == torch.uint8 and torch.equal(a, b.float())


def test_cutout_zeroes_one_clipped_square_per_image():
    from jaq.data import _augment_u8
    x = torch.full((64, 2, 16, 16), 7, dtype=torch.uint8)
    out = _augment_u8(x, torch.Generator().manual_seed(0), pad=0, cutout=6)
    zeros = out[:, 0] == 0
    assert torch.equal(zeros, out[:, 1] == 0)  # the same square on every channel
    rows, cols = zeros.any(2), zeros.any(1)
    for z, r, c in zip(zeros, rows, cols):
        assert 1 <= int(r.sum()) <= 6 and 1 <= int(c.sum()) <= 6
        assert int(z.sum()) == int(r.sum()) * int(c.sum())  # a rectangle: the square clipped at the borders
    assert (zeros.sum((1, 2)) == 36).any() and (zeros.sum((1, 2)) < 36).any()


def _source(augment=True, cutout=0, channels_last=False):
    from jaq.data import TensorSource
    x = torch.randint(0, 256, (90, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return TensorSource(x, torch.arange(90) % 10, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), augment, cutout, channels_last)


def test_batches_normalise_resume_inside_an_epoch_and_channels_last():
    src = _source(augment=False)
    x, _ = next(src.batches(90, shuffle=False))
    ref = (src.x.float() / 255 - src.mean) / src.std
    assert torch.allclose(x, ref, atol=1e-5)
    src = _source(cutout=4)
    full = list(src.batches(16, shuffle=True, generator=torch.Generator().manual_seed(2)))
    tail = list(src.batches(16, shuffle=True, generator=torch.Generator().manual_seed(2), start=2))
    assert len(tail) == len(full) - 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[2:], tail))
    cl = list(_source(cutout=4, channels_last=True).batches(16, shuffle=True,
                                                             generator=torch.Generator().manual_seed(2)))
    assert cl[0][0].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, cl))
    moved = src.to("cpu").subset(torch.arange(10))
    assert len(moved) == 10 and moved.cutout == 4


def _write_cifar100(folder, n_train=40, n_test=20):
    """A tiny data set in torchvision's CIFAR-100 python format (what CIFAR100(root, download=True) writes)."""
    import pickle

    import numpy as np
    d = folder / "cifar-100-python"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = (np.arange(n) % 100).tolist()
        with open(d / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": fine,
                         "coarse_labels": [v // 5 for v in fine], "filenames": [f"{i}.png" for i in range(n)]}, f)
    with open(d / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)],
                     "coarse_label_names": [f"s{i}" for i in range(20)]}, f)
    return d


def test_cifar100_config_loads_torchvision_files(tmp_path):
    from jaq.search import model_api as api
    from jaq.search.config import load_config
    d = _write_cifar100(tmp_path)
    cfg = load_config("configs/cifar100.yaml")
    cfg["data"]["root"] = str(tmp_path)
    b = load_data(cfg["data"])
    assert b.num_classes == 100 and b.in_shape == (3, 32, 32) and len(b.train) == 40 and len(b.test) == 20
    assert b.train.y.tolist() == list(range(40)) and b.where == str(d)
    raw = __import__("pickle").load(open(d / "train", "rb"))
    assert torch.equal(b.train.x[3], torch.from_numpy(raw["data"][3].reshape(3, 32, 32)))
    space = api.make_space(cfg["space"], b)
    assert space.num_classes == 100 and space.num_blocks == 22
    x, y = next(b.train.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (8, 3, 32, 32) and y.max() < 100


def test_cifar100_cli_missing_root_says_where_the_files_go(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "jaq", "co-search", "--config", "configs/cifar100.yaml", "--out",
                        str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=HANG_S)
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert "--data-root" in err and "cifar-100-python" in err and "Traceback" not in err
