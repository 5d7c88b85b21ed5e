"""Data sets for co-search and retraining.

Sources (``data.dataset`` in the config):

* ``digits``: scikit-learn's embedded 8x8 grey digits (1,797 images, 10 classes; no download). A fixed,
  seed-independent split keeps 360 images (20 %) as the test set. Pixel values 0..16 are scaled to 0..1.
* ``cifar10`` / ``cifar100``: either torchvision's files under ``root`` (``cifar-10-batches-py`` /
  ``cifar-100-python``), or a folder holding ``train.tar.gz`` + ``test.tar.gz`` of JPEGs in ImageFolder layout
  (``train.tar.gz`` + ``test.tar.gz``), which is extracted once into a cache folder and decoded once into a
  ``.npz`` of uint8 arrays (later runs load the ``.npz`` in about a second).
* ``imagefolder``: any ``root/train/<class>/*`` + ``root/val/<class>/*`` (or ``test``) tree (ImageNet), read
  from disk per batch with torchvision's ImageFolder; archives as above are accepted too.

Small sets live in memory as uint8 NCHW tensors (:class:`TensorSource`); batching, shuffling, augmentation
(random crop with 4-pixel padding + horizontal flip, vectorised on the batch) and DDP sharding are done here with
an explicit ``torch.Generator`` so runs are reproducible and resumable at epoch boundaries.

Missing or malformed data is a one-line :class:`jaq.errors.JaqError` naming where the data was looked for.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jaq.errors import JaqError

#: Per-channel mean/std used to normalise inputs (digits: its own statistics; CIFAR: the usual published values).
_STATS = {
    "digits": ((0.3053,), (0.3770,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
_ARCHIVES = ("train.tar.gz", "test.tar.gz")
_IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------
class TensorSource:
    """An in-memory labelled image set: ``x`` uint8 [N, C, H, W], ``y`` int64 [N] (decoded once, held whole).

    Batches come out as float32 normalised tensors on ``device``. The hot path is batched tensor code only: one
    gather of the batch's uint8 images, the augmentation on the whole uint8 batch (random crop from a
    zero-padded copy and horizontal flip, optionally cutout), then one fused ``x * a + b`` normalisation in
    float32. ``channels_last``: batches in NHWC memory order (the convolutions' fast layout on CPUs).
    :meth:`to` moves the uint8 set to a device once (GPU-resident data: no host-to-device copy per batch).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                 augment: bool = False, cutout: int = 0, channels_last: bool = False):
        assert x.dtype == torch.uint8 and x.dim() == 4 and y.dim() == 1 and len(x) == len(y)
        self.x, self.y = x, y.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment
        self.cutout = int(cutout)
        self.channels_last = bool(channels_last)

    def __len__(self) -> int:
        return len(self.y)

    def _like(self, x: torch.Tensor, y: torch.Tensor, augment: bool) -> "TensorSource":
        return TensorSource(x, y, self.mean.flatten().tolist(), self.std.flatten().tolist(), augment,
                            self.cutout, self.channels_last)

    def subset(self, idx: torch.Tensor, augment: bool | None = None) -> "TensorSource":
        idx = idx.to(self.x.device)
        return self._like(self.x[idx], self.y[idx], self.augment if augment is None else augment)

    def to(self, device: str | torch.device) -> "TensorSource":
        """The same set with its uint8 images and labels on ``device`` (augmentation then runs there too)."""
        return self._like(self.x.to(device), self.y.to(device), self.augment)

    def _prepare(self, xb: torch.Tensor, gen: torch.Generator | None, augment: bool) -> torch.Tensor:
        if augment:
            xb = _augment_u8(xb, gen, cutout=self.cutout)
        dev = xb.device
        a = (1.0 / (255.0 * self.std)).to(dev)
        b = (-self.mean / self.std).to(dev)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return torch.addcmul(b, xb.float(), a)  # (x / 255 - mean) / std in one pass; keeps the memory format

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                augment: bool | None = None, rank: int = 0, world: int = 1, max_steps: int | None = None,
                device: str | torch.device = "cpu", start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches; with ``world > 1`` each rank gets a disjoint, equally long share.

        Random numbers (order, crops, flips, cutout) come from ``generator`` on the CPU whatever the device,
        so a run draws the same batches on every device. ``start``: skip the first ``start`` batches (their
        random numbers are still drawn), so batch ``start`` onwards equal an uninterrupted pass: resuming
        inside an epoch."""
        aug = self.augment if augment is None else augment
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        per_rank = n // world if world > 1 else n
        order = order[rank:per_rank * world:world] if world > 1 else order
        steps = math.ceil(len(order) / batch_size)
        if max_steps is not None:
            steps = min(steps, max_steps)
        order = order.to(self.x.device)
        c, h, w = self.x.shape[1:]
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            if s < start:
                if aug:
                    _aug_draws(len(idx), h, w, generator, cutout=self.cutout)
                continue
            x = self._prepare(self.x[idx], generator, aug).to(device, non_blocking=True)
            yield x, self.y[idx].to(device, non_blocking=True)

    def num_batches(self, batch_size: int, world: int = 1, max_steps: int | None = None) -> int:
        n = len(self) // world if world > 1 else len(self)
        steps = math.ceil(n / batch_size)
        return min(steps, max_steps) if max_steps is not None else steps


class FolderSource:
    """Images read from disk per batch (ImageNet-sized folders). ``indices`` selects a subset of the folder."""

    def __init__(self, folder: Path, image_size: int, mean, std, augment: bool, num_workers: int,
                 indices: torch.Tensor | None = None):
        from torchvision import datasets, transforms
        self.folder, self.image_size, self.num_workers = folder, image_size, num_workers
        self.mean, self.std, self.augment = mean, std, augment
        try:
            self._ds = datasets.ImageFolder(str(folder))
        except (FileNotFoundError, RuntimeError) as e:
            raise JaqError(f"no class folders with images under {folder}: {str(e).splitlines()[0]}") from None
        norm = transforms.Normalize(mean, std)
        self._train_tf = transforms.Compose([transforms.RandomResizedCrop(image_size),
                                             transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
        self._test_tf = transforms.Compose([transforms.Resize(int(round(image_size * 1.14))),
                                            transforms.CenterCrop(image_size), transforms.ToTensor(), norm])
        self.indices = torch.arange(len(self._ds)) if indices is None else indices
        self.y = torch.tensor(self._ds.targets, dtype=torch.long)[self.indices]
        self.classes = self._ds.classes

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, idx: torch.Tensor, augment: bool | None = None) -> "FolderSource":
        s = object.__new__(FolderSource)
        s.__dict__.update(self.__dict__)
        s.indices = self.indices[idx]
        s.y = self.y[idx]
        if augment is not None:
            s.augment = augment
        return s

    def num_batches(self, batch_size: int, world: int = 1, max_steps: int | None = None) -> int:
        n = len(self) // world if world > 1 else len(self)
        steps = math.ceil(n / batch_size)
        return min(steps, max_steps) if max_steps is not None else steps

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                augment: bool | None = None, rank: int = 0, world: int = 1, max_steps: int | None = None,
                device: str | torch.device = "cpu"):
        from torch.utils.data import DataLoader, Subset
        aug = self.augment if augment is None else augment
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if world > 1:
            per = n // world
            order = order[rank:per * world:world]
        tf = self._train_tf if aug else self._test_tf
        ds = _Transformed(self._ds, tf)
        steps = math.ceil(len(order) / batch_size)
        if max_steps is not None:
            steps = min(steps, max_steps)
        sub = Subset(ds, self.indices[order[:steps * batch_size]].tolist())
        # Per-sample augmentation randomness comes from torch's global RNG in the workers (seeded by torch).
        loader = DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
                            pin_memory=str(device).startswith("cuda"))
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, base, tf):
        self.base, self.tf = base, tf

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        path, target = self.base.samples[i]
        img = self.base.loader(path)
        return self.tf(img), target


def _crop_offsets(b: int, h: int, pad: int, gen: torch.Generator | None) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Padding ``p`` (``pad``, at most h/4 for images under 16 pixels) and per-sample crop offsets (y, x)."""
    p = min(pad, h // 4) if h < 16 else pad
    if p <= 0:
        return 0, torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long)
    oy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    return p, oy, ox


def _aug_draws(b: int, h: int, w: int, gen: torch.Generator | None, pad: int = 4, cutout: int = 0):
    """Every random number one augmented batch uses, in order: crop y, crop x, flip, cutout centre y, x."""
    p, oy, ox = _crop_offsets(b, h, pad, gen)
    flip = torch.rand(b, generator=gen) < 0.5
    cy = cx = None
    if cutout > 0:
        cy = torch.randint(0, h, (b,), generator=gen)
        cx = torch.randint(0, w, (b,), generator=gen)
    return p, oy, ox, flip, cy, cx


def _augment_u8(x: torch.Tensor, gen: torch.Generator | None, pad: int = 4, cutout: int = 0) -> torch.Tensor:
    """Random crop (``pad`` pixels of zero padding) + horizontal flip (+ ``cutout``: one zeroed square of that
    side per image, centre uniform over the image, clipped at the borders; DeVries & Taylor 2017) on a uint8
    batch [B, C, H, W], vectorised: one gather for crop and flip together, one mask multiply for cutout.

    Random draws (on the CPU ``gen``): crop y, crop x, flip, then cutout centres y, x; pixel values equal
    :func:`_augment` on the float batch (zero padding is the same zero either way)."""
    b, c, h, w = x.shape
    p, oy, ox, flip, cy, cx = _aug_draws(b, h, w, gen, pad, cutout)
    dev = x.device
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    iy = oy[:, None] + ar_h[None, :]                                          # [B, H] rows in the padded image
    ix = ox[:, None] + torch.where(flip[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # [B, W], flip folded in
    xp = F.pad(x, (p, p, p, p)) if p > 0 else x
    hp, wp = h + 2 * p, w + 2 * p
    flat = (iy[:, :, None] * wp + ix[:, None, :]).to(dev)                     # [B, H, W] into the padded plane
    out = xp.reshape(b, c, hp * wp).gather(2, flat.reshape(b, 1, h * w).expand(b, c, h * w)).reshape(b, c, h, w)
    if cutout > 0:
        y0, x0 = cy - cutout // 2, cx - cutout // 2                            # square [y0, y0 + cutout)
        my = (ar_h[None, :] >= y0[:, None]) & (ar_h[None, :] < y0[:, None] + cutout)
        mx = (ar_w[None, :] >= x0[:, None]) & (ar_w[None, :] < x0[:, None] + cutout)
        keep = ~(my[:, :, None] & mx[:, None, :])                             # [B, H, W]
        out = out * keep[:, None].to(device=dev, dtype=out.dtype)
    return out


def _augment(x: torch.Tensor, gen: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Random crop (``pad`` pixels of zero padding) and horizontal flip, per sample, on a float batch (the
    reference form of :func:`_augment_u8`, kept for tests)."""
    b, c, h, w = x.shape
    p, oy, ox = _crop_offsets(b, h, pad, gen)
    if p > 0:
        xp = F.pad(x, (p, p, p, p))
        iy = (oy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
        ix = (ox[:, None] + torch.arange(w)[None, :])[:, None, None, :]
        x = xp[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], iy, ix]
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@dataclass
class DataBundle:
    """What the search and retraining need: train/test sources, class count and input shape (C, H, W)."""

    name: str
    train: TensorSource | FolderSource
    test: TensorSource | FolderSource
    num_classes: int
    in_shape: tuple[int, int, int]
    where: str

    def split_train(self, arch_fraction: float, seed: int):
        """Deterministic split of the training set into (weights part, architecture part) (paper: 80/20)."""
        g = torch.Generator().manual_seed(10_007 + seed)
        perm = torch.randperm(len(self.train), generator=g)
        n_arch = max(1, int(round(len(perm) * arch_fraction)))
        return self.train.subset(perm[n_arch:]), self.train.subset(perm[:n_arch])


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def load_data(data_cfg: dict, *, seed: int = 0) -> DataBundle:
    """Build the :class:`DataBundle` described by the config's ``data`` section (see module docstring)."""
    ds = data_cfg["dataset"]
    root = data_cfg.get("root")
    if ds == "digits":
        b = _digits(bool(data_cfg.get("augment", False)))
    elif ds in ("cifar10", "cifar100"):
        b = _cifar(ds, root, data_cfg)
    elif ds == "imagefolder":
        b = _imagefolder(root, data_cfg)
    else:  # validated by the config already
        raise JaqError(f"unknown data set {ds!r}", "data.dataset")
    size = data_cfg.get("image_size")
    if size and isinstance(b.train, TensorSource) and size != b.in_shape[1]:
        b = _resize(b, size)
    for src in (b.train, b.test):
        if isinstance(src, TensorSource):
            src.channels_last = bool(data_cfg.get("channels_last", False))
    if isinstance(b.train, TensorSource):
        b.train.cutout = int(data_cfg.get("cutout") or 0)
    g = torch.Generator().manual_seed(20_011 + seed)
    if data_cfg.get("train_subset") and data_cfg["train_subset"] < len(b.train):
        b.train = b.train.subset(torch.randperm(len(b.train), generator=g)[:data_cfg["train_subset"]])
    if data_cfg.get("test_subset") and data_cfg["test_subset"] < len(b.test):
        b.test = b.test.subset(torch.randperm(len(b.test), generator=g)[:data_cfg["test_subset"]])
    return b


def _resize(b: DataBundle, size: int) -> DataBundle:
    def rs(src: TensorSource) -> TensorSource:
        x = F.interpolate(src.x.float(), size=(size, size), mode="bilinear", align_corners=False)
        return TensorSource(x.round().clamp(0, 255).to(torch.uint8), src.y, src.mean.flatten().tolist(),
                            src.std.flatten().tolist(), src.augment)
    return DataBundle(b.name, rs(b.train), rs(b.test), b.num_classes, (b.in_shape[0], size, size), b.where)


def _digits(augment: bool) -> DataBundle:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise JaqError("the digits data set needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))  # fixed, seed-independent
    n_test = 360
    mean, std = _STATS["digits"]
    full = TensorSource(x, y, mean, std, augment)
    return DataBundle("digits", full.subset(perm[n_test:]), full.subset(perm[:n_test], augment=False), 10,
                      (1, 8, 8), "scikit-learn's embedded load_digits()")


def _need_root(root, field="data.root", holds: str = "") -> Path:
    """The data folder ``root`` as a Path; one-line errors saying what the folder must hold (``holds``)."""
    what = f" holding {holds}" if holds else ""
    if not root:
        raise JaqError(f"no data folder given; pass --data-root DIR (or set data.root in the config), a folder{what}",
                       field)
    p = Path(root).expanduser()
    if not p.is_dir():
        raise JaqError(f"data folder {p} does not exist; pass --data-root DIR (or set data.root), a folder{what}",
                       field)
    return p


def _cifar(ds: str, root, cfg: dict) -> DataBundle:
    folder_name = "cifar-10-batches-py" if ds == "cifar10" else "cifar-100-python"
    p = _need_root(root, holds=f"torchvision's {folder_name}/ (as torchvision.datasets."
                              f"{'CIFAR10' if ds == 'cifar10' else 'CIFAR100'}(DIR, download=True) writes it) "
                              f"or train.tar.gz + test.tar.gz of ImageFolder JPEGs")
    mean, std = _STATS[ds]
    aug = bool(cfg.get("augment", True))
    ncls = 10 if ds == "cifar10" else 100
    tv = p / folder_name if (p / folder_name).is_dir() else (p if p.name == folder_name else None)
    if tv is not None:
        xtr, ytr, xte, yte = _read_cifar_pickles(tv, ds)
        where = str(tv)
    elif _has_archives(p) or ((p / "train").is_dir() and (p / "test").is_dir()):
        xtr, ytr, xte, yte, classes = _decode_jpeg_tree(p, cfg.get("cache_dir"), size=None)
        if len(classes) != ncls:
            raise JaqError(f"{p} holds {len(classes)} classes, {ds} has {ncls}", "data.dataset")
        where = str(p)
    else:
        raise JaqError(f"no {ds} data under {p}: expected torchvision's {folder_name}/ or train.tar.gz + "
                       f"test.tar.gz (ImageFolder JPEGs)", "data.root")
    tr = TensorSource(xtr, ytr, mean, std, aug)
    te = TensorSource(xte, yte, mean, std, False)
    return DataBundle(ds, tr, te, ncls, tuple(xtr.shape[1:]), where)


def _read_cifar_pickles(folder: Path, ds: str):
    def load(name):
        f = folder / name
        if not f.is_file():
            raise JaqError(f"missing {f} (torchvision CIFAR layout expected)", "data.root")
        try:
            with open(f, "rb") as fh:
                return pickle.load(fh, encoding="latin1")
        except Exception as e:  # noqa: BLE001 - any unpickling failure is malformed data
            raise JaqError(f"malformed CIFAR file {f}: {type(e).__name__}") from None

    if ds == "cifar10":
        tr = [load(f"data_batch_{i}") for i in range(1, 6)]
        te = [load("test_batch")]
        key = "labels"
    else:
        tr, te, key = [load("train")], [load("test")], "fine_labels"
    try:
        xtr = np.concatenate([b["data"] for b in tr]).reshape(-1, 3, 32, 32)
        ytr = np.concatenate([b[key] for b in tr])
        xte = np.concatenate([b["data"] for b in te]).reshape(-1, 3, 32, 32)
        yte = np.concatenate([b[key] for b in te])
    except (KeyError, ValueError) as e:
        raise JaqError(f"malformed CIFAR files in {folder}: {e}") from None
    return (torch.from_numpy(xtr.astype(np.uint8)), torch.from_numpy(ytr.astype(np.int64)),
            torch.from_numpy(xte.astype(np.uint8)), torch.from_numpy(yte.astype(np.int64)))


def _has_archives(p: Path) -> bool:
    return all((p / a).is_file() for a in _ARCHIVES)


def _cache_root(cache_dir) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("JAQ_CACHE", Path.home() / ".cache" / "jaq"))


def _extract_archives(p: Path, cache_dir) -> Path:
    """Extract ``train.tar.gz``/``test.tar.gz`` once into a cache folder keyed by the archives' size+mtime."""
    stamp = "|".join(f"{(p / a).stat().st_size}:{int((p / a).stat().st_mtime)}" for a in _ARCHIVES)
    key = hashlib.sha256(f"{p.resolve()}|{stamp}".encode()).hexdigest()[:16]
    dest = _cache_root(cache_dir) / f"{p.name}-{key}"
    done = dest / ".extracted"
    if done.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for a in _ARCHIVES:
        try:
            with tarfile.open(p / a, "r:gz") as tf:
                tf.extractall(dest, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise JaqError(f"cannot extract {p / a}: {e} (archive damaged? check SHA256SUMS)") from None
    done.write_text("ok\n")
    return dest


def _list_tree(split_dir: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    samples = []
    for ci, c in enumerate(classes):
        files = sorted(f for f in (split_dir / c).iterdir() if f.suffix.lower() in _IMG_EXT)
        samples += [(f, ci) for f in files]
    return classes, samples


def _decode_jpeg_tree(p: Path, cache_dir, size: int | None):
    """(x_train, y_train, x_test, y_test, classes) from an ImageFolder tree or its archives, cached as .npz."""
    tree = _extract_archives(p, cache_dir) if _has_archives(p) else p
    test_name = "test" if (tree / "test").is_dir() else "val"
    if not (tree / "train").is_dir() or not (tree / test_name).is_dir():
        raise JaqError(f"expected train/ and test/ (or val/) class folders in {tree} (from {p})", "data.root")
    npz = tree / f"decoded{'' if size is None else f'-{size}'}.npz"
    if npz.is_file():
        try:
            z = np.load(npz, allow_pickle=False)
            return (torch.from_numpy(z["xtr"]), torch.from_numpy(z["ytr"]), torch.from_numpy(z["xte"]),
                    torch.from_numpy(z["yte"]), [str(c) for c in z["classes"]])
        except (OSError, KeyError, ValueError):
            npz.unlink(missing_ok=True)  # damaged cache: decode again
    from PIL import Image, UnidentifiedImageError

    out = []
    classes = None
    for split in ("train", test_name):
        cls, samples = _list_tree(tree / split)
        if not samples:
            raise JaqError(f"no images under {tree / split} (from {p})", "data.root")
        classes = classes or cls
        if cls != classes:
            raise JaqError(f"class folders differ between train and {test_name} in {tree}", "data.root")
        xs = None
        for i, (f, _) in enumerate(samples):
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB")
                    if size is not None:
                        im = im.resize((size, size))
                    a = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise JaqError(f"cannot read image {f}: {e}") from None
            if xs is None:
                xs = np.empty((len(samples),) + a.shape, dtype=np.uint8)
            if a.shape != xs.shape[1:]:
                raise JaqError(f"image {f} is {a.shape[1]}x{a.shape[0]}, others are {xs.shape[2]}x{xs.shape[1]}; "
                               f"set data.image_size", "data.image_size")
            xs[i] = a
        out.append((xs.transpose(0, 3, 1, 2).copy(), np.array([c for _, c in samples], dtype=np.int64)))
    (xtr, ytr), (xte, yte) = out
    tmp = npz.with_suffix(".tmp.npz")
    np.savez(tmp, xtr=xtr, ytr=ytr, xte=xte, yte=yte, classes=np.array(classes))
    os.replace(tmp, npz)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte), classes


def _imagefolder(root, cfg: dict) -> DataBundle:
    p = _need_root(root)
    mean, std = _STATS["imagefolder"]
    size = cfg.get("image_size") or 224
    aug = bool(cfg.get("augment", True))
    if _has_archives(p):
        xtr, ytr, xte, yte, classes = _decode_jpeg_tree(p, cfg.get("cache_dir"), size=cfg.get("image_size"))
        tr = TensorSource(xtr, ytr, mean, std, aug)
        te = TensorSource(xte, yte, mean, std, False)
        return DataBundle("imagefolder", tr, te, len(classes), tuple(xtr.shape[1:]), str(p))
    test_dir = p / "val" if (p / "val").is_dir() else p / "test"
    if not (p / "train").is_dir() or not test_dir.is_dir():
        raise JaqError(f"expected {p}/train/<class>/ and {p}/val/<class>/ (or test/), or train.tar.gz + "
                       f"test.tar.gz", "data.root")
    nw = int(cfg.get("num_workers", 0))
    tr = FolderSource(p / "train", size, mean, std, aug, nw)
    te = FolderSource(test_dir, size, mean, std, False, nw)
    if tr.classes != te.classes:
        raise JaqError(f"class folders differ between {p / 'train'} and {test_dir}", "data.root")
    return DataBundle("imagefolder", tr, te, len(tr.classes), (3, size, size), str(p))
