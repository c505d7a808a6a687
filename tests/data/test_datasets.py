"""IDX reading, MNIST/FashionMNIST on small files written here, downloading from a local server, the offline
error, and Digits. Nothing is fetched from the internet."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import socket
import sys
import threading

import numpy as np
import pytest

import danlu as dl
from danlu.data import DataLoader
from danlu.data import transforms as T
from danlu.data.datasets import MNIST, Digits, FashionMNIST, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / ("a-idx3" + (".gz" if gz else ""))
    write_idx(path, a)
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(a, b)


def test_idx_reader_on_hand_written_bytes(tmp_path):
    # Big-endian int16 values 1 and -2 in a 1-d IDX file (type code 0x0B), written by hand.
    payload = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x00, 0x01, 0xFF, 0xFE])
    (tmp_path / "h").write_bytes(payload)
    (tmp_path / "h.gz").write_bytes(gzip.compress(payload))
    for name in ("h", "h.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), np.array([1, -2], np.int16))


@pytest.mark.parametrize("payload,match", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "truncated or corrupt"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated"),
])
def test_idx_reader_errors(tmp_path, payload, match):
    (tmp_path / "bad").write_bytes(payload)
    with pytest.raises(ValueError, match=match):
        read_idx(tmp_path / "bad")


def _write_mnist(root, cls="MNIST", n_train=6, n_test=4, gz=False):
    raw = os.path.join(root, cls, "raw")
    rng = np.random.default_rng(0)
    sets = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
        sets[prefix] = (images, labels)
    return sets


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_reads_torchvision_layout(tmp_path, gz, cls):
    sets = _write_mnist(str(tmp_path), cls.__name__, gz=gz)
    for train, key in ((True, "train"), (False, "t10k")):
        ds = cls(str(tmp_path), train=train)
        images, labels = sets[key]
        assert len(ds) == len(labels)
        img, target = ds[1]
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (28, 28)
        np.testing.assert_array_equal(img, images[1])
        assert isinstance(target, int) and target == labels[1]
        assert ds.data.dtype is dl.uint8 and ds.data.shape == (len(labels), 28, 28)
        assert ds.targets.dtype is dl.int64 and ds.targets.tolist() == labels.tolist()
    assert len(cls.classes) == 10 and cls(str(tmp_path)).class_to_idx[cls.classes[3]] == 3


def test_mnist_sample_is_a_copy_and_transforms_apply(tmp_path):
    sets = _write_mnist(str(tmp_path))
    ds = MNIST(str(tmp_path), transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]),
               target_transform=lambda y: y + 100)
    img, target = ds[0]
    assert img.shape == (1, 28, 28) and img.dtype is dl.float32
    np.testing.assert_allclose(img.numpy()[0], (sets["train"][0][0] / 255 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)
    assert target == sets["train"][1][0] + 100
    plain = MNIST(str(tmp_path))
    plain[0][0][:] = 0
    assert (plain[0][0] == sets["train"][0][0]).all()


def test_mnist_through_a_dataloader_with_workers(tmp_path):
    sets = _write_mnist(str(tmp_path), n_train=10)
    ds = MNIST(str(tmp_path), transform=T.ToTensor())
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    x, y = batches[0]
    assert x.shape == (4, 1, 28, 28) and x.dtype is dl.float32 and y.dtype is dl.int64
    assert y.tolist() == sets["train"][1][:4].tolist()
    assert [len(b[1]) for b in batches] == [4, 4, 2]


def test_missing_files_error_says_where_to_put_them(tmp_path):
    with pytest.raises(RuntimeError) as info:
        MNIST(str(tmp_path))
    msg = str(info.value)
    assert "download=True" in msg and os.path.join(str(tmp_path), "MNIST", "raw") in msg
    assert "train-images-idx3-ubyte.gz" in msg


def test_mismatched_images_and_labels(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        MNIST(str(tmp_path))


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_error_names_mirrors_and_folder(tmp_path):
    port = _closed_port()

    class Offline(MNIST):
        mirrors = [f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"]
        download_timeout = 2.0

    with pytest.raises(RuntimeError) as info:
        Offline(str(tmp_path), download=True)
    msg = str(info.value)
    assert "could not download" in msg and f"http://127.0.0.1:{port}/a/train-images-idx3-ubyte.gz" in msg
    assert f"http://127.0.0.1:{port}/b/t10k-labels-idx1-ubyte.gz" in msg
    assert os.path.join(str(tmp_path), "Offline", "raw") in msg and "download=False" in msg
    assert not [f for f in os.listdir(tmp_path / "Offline" / "raw") if f.startswith(".tmp")]  # no partial files


def test_default_mirrors_are_the_usual_ones():
    assert MNIST.mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert any("yann.lecun.com" in m for m in MNIST.mirrors)
    assert "fashion-mnist" in FashionMNIST.mirrors[0]
    assert dict(MNIST.resources)["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert dict(FashionMNIST.resources)["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"


@contextlib.contextmanager
def _serve(folder):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass

    server = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_download_from_local_mirror_with_checksums(tmp_path):
    site = tmp_path / "site"
    sets = _write_mnist(str(site), gz=True)
    served = site / "MNIST" / "raw"
    names = sorted(os.listdir(served))
    with _serve(served) as url:
        class Local(MNIST):
            mirrors = [f"http://127.0.0.1:{_closed_port()}/", url]  # the first mirror is down
            resources = [(n, _md5(served / n)) for n in names]

        ds = Local(str(tmp_path / "data"), download=True)
        assert len(ds) == 6 and ds.targets.tolist() == sets["train"][1].tolist()
        assert sorted(os.listdir(tmp_path / "data" / "Local" / "raw")) == names
        # Present and valid: nothing is fetched again (the server is not needed any more).
    Local(str(tmp_path / "data"), download=True)


def test_download_checksum_mismatch_leaves_nothing_behind(tmp_path):
    site = tmp_path / "site"
    _write_mnist(str(site), gz=True)
    served = site / "MNIST" / "raw"
    with _serve(served) as url:
        class Corrupt(MNIST):
            mirrors = [url]
            resources = [(n, "0" * 32) for n in sorted(os.listdir(served))]

        with pytest.raises(RuntimeError, match="checksum mismatch"):
            Corrupt(str(tmp_path / "data"), download=True)
    assert os.listdir(tmp_path / "data" / "Corrupt" / "raw") == []


def test_digits_split_and_scaling():
    pytest.importorskip("sklearn")
    full = Digits(train=None)
    train, test = Digits(train=True), Digits(train=False)
    assert len(full) == 1797 and len(train) + len(test) == 1797 and len(test) == 359
    img, label = train[0]
    assert img.shape == (8, 8) and img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
    assert isinstance(label, int) and 0 <= label <= 9
    raw = Digits(train=True, scaled=False)[0][0]
    assert raw.dtype == np.uint8 and raw.max() <= 16
    np.testing.assert_allclose(raw / 16.0, img)
    # The split is fixed: the same every time, disjoint, covering every image.
    assert Digits(train=True).targets.tolist() == train.targets.tolist()
    rows = {full.data[i].numpy().tobytes() for i in range(len(full))}
    tr = {train.data[i].numpy().tobytes() for i in range(len(train))}
    te = {test.data[i].numpy().tobytes() for i in range(len(test))}
    assert tr | te <= rows and len(full.targets.tolist()) == 1797
    assert sorted(set(test.targets.tolist())) == list(range(10))
    x, y = next(iter(DataLoader(Digits(transform=T.ToTensor()), batch_size=5)))
    assert x.shape == (5, 1, 8, 8) and x.dtype is dl.float32 and y.dtype is dl.int64


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"danlu\[datasets\].*scikit-learn"):
        Digits()
