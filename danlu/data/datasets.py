"""Datasets: MNIST and FashionMNIST (IDX files laid out as torchvision does) and the 8x8 Digits.

Images are NumPy arrays (uint8 ``H x W`` for MNIST-like sets), standing in for torchvision's PIL images;
add ``transforms.ToTensor()`` to get float tensors.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable

import numpy as np

from .dataset import Dataset

__all__ = ["read_idx", "write_idx", "MNIST", "FashionMNIST", "Digits"]

# IDX type codes -> big-endian NumPy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {v.newbyteorder("="): k for k, v in _IDX_TYPES.items()}


def _open_maybe_gz(path: str):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array in native byte order.

    >>> import numpy as np, tempfile, os
    >>> from danlu.data.datasets import read_idx, write_idx
    >>> p = os.path.join(tempfile.mkdtemp(), "x-idx2-ubyte.gz")
    >>> write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3)); read_idx(p)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = os.fspath(path)
    with _open_maybe_gz(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"read_idx: {path} is not an IDX file (it should start with two zero bytes, a type code "
                         "and the number of dimensions)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} has unknown IDX type code 0x{code:02X}; known codes are "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_TYPES)}")
    dt = _IDX_TYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {path} is truncated: its header announces {ndim} dimensions")
    shape = tuple(int(x) for x in np.frombuffer(data, ">u4", ndim, 4))
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != count * dt.itemsize:
        raise ValueError(f"read_idx: {path} holds {len(data) - header} data bytes, but its header announces shape "
                         f"{list(shape)} of {dt.newbyteorder('=')} ({count * dt.itemsize} bytes); the file is "
                         "truncated or corrupt")
    return np.frombuffer(data, dt, count, header).reshape(shape).astype(dt.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``), atomically.

    >>> import numpy as np, tempfile, os
    >>> from danlu.data.datasets import read_idx, write_idx
    >>> p = os.path.join(tempfile.mkdtemp(), "y-idx1-ubyte")
    >>> write_idx(p, np.array([7, 2], np.uint8)); read_idx(p)
    array([7, 2], dtype=uint8)
    """
    a = np.asarray(array)
    code = _IDX_CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: IDX cannot hold dtype {a.dtype}; use one of "
                         f"{', '.join(str(d) for d in _IDX_CODES)}")
    payload = (bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
               + a.astype(_IDX_TYPES[code], copy=False).tobytes())
    path = os.fspath(path)
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    _atomic_write(path, [payload])


def _atomic_write(path: str, chunks) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    from ..core.atomic import atomic_write_bytes

    atomic_write_bytes(path, chunks, make_dirs=True)


def _md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, path: str, md5: str, timeout: float) -> None:
    """Fetch ``url`` into ``path`` (temp file, checksum, rename); raises OSError or ValueError."""
    import urllib.request  # only when downloading: it pulls in http and ssl

    from ..core.atomic import atomic_path

    with atomic_path(path, make_dirs=True) as tmp:
        h = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": "danlu"})
        with open(tmp, "wb") as f, urllib.request.urlopen(request, timeout=timeout) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                h.update(block)
                f.write(block)
        if h.hexdigest() != md5:
            raise ValueError(f"checksum mismatch for {url}: MD5 {h.hexdigest()}, expected {md5}")


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28 x 28 uint8.

    Files are read from ``root/MNIST/raw/`` (torchvision's layout): ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each either raw
    or with a ``.gz`` suffix. ``download=True`` fetches missing files from the mirrors in turn, checks their
    MD5 and renames them into place only when complete. A sample is ``(image, label)``: ``image`` a uint8
    NumPy array ``H x W`` (or ``transform(image)``), ``label`` an int (or ``target_transform(label)``).
    ``.data`` (uint8 ``N x 28 x 28``) and ``.targets`` (int64 ``N``) are danlu tensors.

    >>> import numpy as np, os, tempfile
    >>> from danlu.data.datasets import MNIST, write_idx
    >>> raw = os.path.join(tempfile.mkdtemp(), "MNIST", "raw")
    >>> write_idx(os.path.join(raw, "t10k-images-idx3-ubyte"), np.zeros((2, 28, 28), np.uint8))
    >>> write_idx(os.path.join(raw, "t10k-labels-idx1-ubyte.gz"), np.array([3, 1], np.uint8))
    >>> ds = MNIST(os.path.dirname(os.path.dirname(raw)), train=False)
    >>> len(ds), ds[0][0].shape, ds[0][1]
    (2, (28, 28), 3)
    """

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    download_timeout = 30.0

    def __init__(self, root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False) -> None:
        from ..core.creation import from_numpy

        self.root = os.fspath(os.path.expanduser(root))
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if download:
            self.download()
        prefix = "train" if train else "t10k"
        images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(self._find(f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: images of shape {list(images.shape)} and labels of shape "
                             f"{list(labels.shape)} in {self.raw_folder} do not match (expected N x H x W and N)")
        self._images = np.ascontiguousarray(images, dtype=np.uint8)
        self._labels = labels.astype(np.int64)
        self.data = from_numpy(self._images)
        self.targets = from_numpy(self._labels)

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _find(self, name: str) -> str:
        for candidate in (name, name + ".gz"):
            path = os.path.join(self.raw_folder, candidate)
            if os.path.isfile(path):
                return path
        raise RuntimeError(self._missing_message(f"{name} (or {name}.gz) is not in {self.raw_folder}"))

    def _missing_message(self, what: str) -> str:
        names = ", ".join(n for n, _ in self.resources)
        return (f"{type(self).__name__}: dataset not found: {what}. Use download=True to fetch it, or put the "
                f"files {names} (gzip-compressed or not) into {self.raw_folder}")

    def _check_exists(self) -> bool:
        return all(os.path.isfile(os.path.join(self.raw_folder, n)) or
                   os.path.isfile(os.path.join(self.raw_folder, n[:-3])) for n, _ in self.resources)

    def download(self) -> None:
        """Fetch the missing files into ``raw_folder``; raise a RuntimeError naming every failure when offline."""
        from http.client import HTTPException

        failures = []
        for name, md5 in self.resources:
            path = os.path.join(self.raw_folder, name)
            if os.path.isfile(path[:-3]) or (os.path.isfile(path) and _md5(path) == md5):
                continue
            errors = []
            for mirror in self.mirrors:
                url = mirror + name
                try:
                    _download(url, path, md5, self.download_timeout)
                    break
                except (OSError, ValueError, HTTPException) as e:  # URLError is an OSError
                    errors.append(f"{url}: {e}")
            else:
                failures.append((name, errors))
        if failures:
            lines = "\n".join(f"  {err}" for _, errs in failures for err in errs)
            names = ", ".join(n for n, _ in failures)
            raise RuntimeError(
                f"{type(self).__name__}: could not download {names}; every mirror failed:\n{lines}\n"
                f"Without internet access, copy the files ({', '.join(n for n, _ in self.resources)}, gzip-compressed "
                f"or not) into {self.raw_folder} and use download=False.")

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int):
        img = self._images[index].copy()
        target = int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n    Split: {split}"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: same layout as :class:`MNIST`, read from ``root/FashionMNIST/raw/``.

    >>> from danlu.data.datasets import FashionMNIST
    >>> FashionMNIST.classes[:3]
    ['T-shirt/top', 'Trouser', 'Pullover']
    """

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


class Digits(Dataset):
    """The 8 x 8 handwritten digits (1,797 images, 10 classes) shipped with scikit-learn.

    Needs scikit-learn (``pip install scikit-learn``, or danlu's ``datasets`` extra); nothing is downloaded.
    ``train=True`` gives a fixed 80% of the images, ``train=False`` the other 20% (one permutation drawn
    with ``split_seed``, the same everywhere), ``train=None`` all 1,797.

    Images are float32 ``8 x 8`` NumPy arrays scaled to [0, 1] (pixel / 16) by default, so that
    ``transforms.ToTensor()`` keeps their values; ``scaled=False`` gives the original uint8 values 0..16.
    Labels are ints. (The example below is skipped by the doctests: scikit-learn is optional.)

    >>> from danlu.data.datasets import Digits
    >>> Digits.test_fraction
    0.2
    >>> ds = Digits(train=None)  # doctest: +SKIP
    >>> len(ds), ds[0][0].shape, ds[0][0].dtype, ds[0][1]  # doctest: +SKIP
    (1797, (8, 8), dtype('float32'), 0)
    """

    test_fraction = 0.2

    def __init__(self, train: bool | None = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, scaled: bool = True, split_seed: int = 0) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError("Digits needs scikit-learn, which ships the 8x8 digits data: install it with "
                              "pip install 'danlu[datasets]' (or pip install scikit-learn)") from e
        from ..core.creation import from_numpy

        bunch = load_digits()
        images = np.asarray(bunch.images)
        labels = np.asarray(bunch.target, dtype=np.int64)
        if train is not None:
            order = np.random.default_rng(split_seed).permutation(len(labels))
            n_test = int(round(len(labels) * self.test_fraction))
            keep = np.sort(order[n_test:] if train else order[:n_test])
            images, labels = images[keep], labels[keep]
        self.train = train
        self.scaled = scaled
        self.transform = transform
        self.target_transform = target_transform
        self._images = (images / 16.0).astype(np.float32) if scaled else images.astype(np.uint8)
        self._labels = labels
        self.data = from_numpy(self._images)
        self.targets = from_numpy(self._labels)
        self.classes = [str(i) for i in range(10)]

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int):
        img = self._images[index].copy()
        target = int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target
