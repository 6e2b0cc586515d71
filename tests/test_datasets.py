"""Tests for numpyvae/datasets.py, numpyvae/mnist.py and
numpyvae/npz_files.py. No network: downloads use file:// URLs and an HTTP
server on 127.0.0.1 started here."""

import functools
import http.server
import socket
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from numpyvae import datasets, mnist
from numpyvae.datasets import binarize, load_digits, load_npz_dataset, static_binarize
from numpyvae.mnist import MNIST_CONTENT_SHA256, download_mnist, load_mnist, mnist_content_sha256


def write_fake_mnist(path, n_train=20, n_test=10, seed=0, **overrides):
    """A small file with the mnist.npz layout; `overrides` replace arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays.update(overrides)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.fixture
def fake(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return write_fake_mnist(folder / "mnist.npz")


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch, tmp_path):
    """Never read or write the real user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def no_data_env(monkeypatch):
    """$NUMPYVAE_DATA unset, so lookups fall through to the (tmp) cache."""
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)


# ---- digits ------------------------------------------------------------

def test_load_digits_shapes_dtypes_range_and_split():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0 and x_test.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    # values are counts / 16 exactly
    np.testing.assert_array_equal(x_train * 16, np.round(x_train * 16))


def test_load_digits_is_deterministic_and_float64_matches():
    (a, ya), (b, yb) = load_digits()
    (a2, ya2), (b2, yb2) = load_digits()
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(yb, yb2)
    (c, yc), _ = load_digits(dtype="float64")
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, a.astype(np.float64))  # k/16 is exact in both


def test_load_digits_rejects_int_dtype():
    with pytest.raises(TypeError, match="dtype"):
        load_digits(dtype="int32")


# ---- load_mnist --------------------------------------------------------

def test_mnist_names_stay_importable_from_datasets():
    for name in ("DEFAULT_MNIST_URL", "MNIST_CONTENT_SHA256", "MNIST_KEYS",
                 "download_mnist", "load_mnist", "mnist_content_sha256"):
        assert getattr(datasets, name) is getattr(mnist, name)


def test_load_mnist_explicit_path_with_checksum(fake):
    digest = mnist_content_sha256(fake)
    (x_train, y_train), (x_test, y_test) = load_mnist(fake, expected_sha256=digest)
    assert x_train.shape == (20, 784) and x_test.shape == (10, 784)
    assert x_train.dtype == np.float32 and y_test.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    raw = np.load(fake)
    np.testing.assert_array_equal(x_train * np.float32(255), raw["x_train"].reshape(20, -1))
    np.testing.assert_array_equal(y_test, raw["y_test"])
    (x64, _), _ = load_mnist(fake.parent, dtype="float64", verify=False)  # a folder
    assert x64.dtype == np.float64


def test_content_checksum_ignores_zip_bytes_but_not_content(tmp_path):
    a = write_fake_mnist(tmp_path / "a.npz")
    with np.load(a) as f:
        np.savez(tmp_path / "b.npz", **f)  # same arrays, uncompressed zip
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "b.npz").read_bytes()
    assert mnist_content_sha256(a) == mnist_content_sha256(tmp_path / "b.npz")
    assert mnist_content_sha256(a) != mnist_content_sha256(
        write_fake_mnist(tmp_path / "c.npz", seed=1))


def test_load_mnist_finds_file_via_env_var_then_cache(fake, monkeypatch, tmp_path,
                                                     no_data_env):
    monkeypatch.setenv("NUMPYVAE_DATA", str(fake.parent))
    (x_train, _), _ = load_mnist(verify=False)
    assert x_train.shape == (20, 784)
    monkeypatch.delenv("NUMPYVAE_DATA")
    cached = tmp_path / "cache" / "numpyvae" / "mnist.npz"
    cached.parent.mkdir(parents=True)
    write_fake_mnist(cached, n_train=7)
    (x_train, _), _ = load_mnist(verify=False)
    assert x_train.shape == (7, 784)


def test_load_mnist_missing_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMPYVAE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    msg = str(info.value)
    assert isinstance(info.value, OSError)
    assert str(tmp_path / "nowhere" / "mnist.npz") in msg
    assert str(tmp_path / "cache" / "numpyvae" / "mnist.npz") in msg
    for hint in ("NUMPYVAE_DATA", "path=", "download_mnist"):
        assert hint in msg
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_mnist(tmp_path / "missing.npz")


def test_load_mnist_checksum_mismatch(fake):
    with pytest.raises(ValueError, match="content SHA-256") as info:
        load_mnist(fake)  # default: the real MNIST checksum
    assert str(fake) in str(info.value)
    with pytest.raises(ValueError, match="expected_sha256"):
        load_mnist(fake, expected_sha256="abc")


@pytest.mark.parametrize("overrides, problem", [
    ({"y_test": None}, "missing keys"),
    ({"x_train": np.zeros((5, 27, 28), np.uint8)}, "x_train"),
    ({"x_test": np.zeros((10, 28, 28), np.float32)}, "x_test"),
    ({"y_train": np.zeros(19, np.uint8)}, "y_train"),
    ({"y_test": np.full(10, 12, np.int64)}, "0..9"),
])
def test_load_mnist_bad_layout(tmp_path, overrides, problem):
    path = write_fake_mnist(tmp_path / "bad.npz", **overrides)
    with pytest.raises(ValueError, match=problem) as info:
        load_mnist(path, verify=False)
    assert str(path) in str(info.value)


def test_load_mnist_not_an_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="junk.npz"):
        load_mnist(tmp_path / "junk.npz", verify=False)


def test_real_mnist(mnist_file):
    assert mnist_content_sha256(mnist_file) == MNIST_CONTENT_SHA256
    (x_train, y_train), (x_test, y_test) = load_mnist(mnist_file)  # verifies
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))


# ---- download_mnist ----------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no printing in tests
        pass


@contextmanager
def serve(folder):
    """Serve `folder` on 127.0.0.1 at an ephemeral port; yield the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_from_file_url(fake, tmp_path):
    dest = tmp_path / "out" / "mnist.npz"
    got = download_mnist(fake.as_uri(), dest, expected_sha256=mnist_content_sha256(fake))
    assert got == dest and dest.read_bytes() == fake.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["mnist.npz"]


def test_download_default_dest_is_where_load_mnist_looks(fake, no_data_env):
    path = download_mnist(fake.as_uri(), expected_sha256=None)
    (x_train, _), _ = load_mnist(verify=False)
    assert path.name == "mnist.npz" and x_train.shape == (20, 784)


def test_download_over_http(fake, tmp_path):
    dest_dir = tmp_path / "out"
    dest_dir.mkdir()
    with serve(fake.parent) as base:
        got = download_mnist(f"{base}/mnist.npz", dest_dir,
                             expected_sha256=mnist_content_sha256(fake), timeout=10)
    assert got == dest_dir / "mnist.npz"
    assert mnist_content_sha256(got) == mnist_content_sha256(fake)
    assert [p.name for p in dest_dir.iterdir()] == ["mnist.npz"]


@pytest.mark.parametrize("name", ["mnist.npz", "junk.npz"])
def test_download_bad_content_leaves_nothing(fake, tmp_path, name):
    (fake.parent / "junk.npz").write_bytes(b"<html>not a zip</html>")
    dest_dir = tmp_path / "out"
    dest_dir.mkdir()
    with serve(fake.parent) as base:
        with pytest.raises(ValueError, match=f"{base}/{name}"):
            download_mnist(f"{base}/{name}", dest_dir / "mnist.npz", timeout=10)
    assert list(dest_dir.iterdir()) == []


def test_download_mismatch_keeps_existing_file(fake, tmp_path):
    dest = tmp_path / "out" / "mnist.npz"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(ValueError, match="content SHA-256"):
        download_mnist(fake.as_uri(), dest)  # default: the real MNIST checksum
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == ["mnist.npz"]


def test_download_unreachable_gives_offline_message(tmp_path):
    with socket.socket() as s:  # find a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mnist.npz"
    dest = tmp_path / "out" / "mnist.npz"
    with pytest.raises(ConnectionError) as info:
        download_mnist(url, dest, timeout=5)
    msg = str(info.value)
    assert msg.startswith(f"could not download MNIST from {url}: ")
    assert "offline" in msg and str(dest) in msg and "NUMPYVAE_DATA" in msg
    assert list(dest.parent.iterdir()) == []


def test_download_timeout_is_connection_error(tmp_path):
    with socket.socket() as s:  # accepts connections (backlog), never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/mnist.npz"
        with pytest.raises(ConnectionError, match="timed out"):
            download_mnist(url, tmp_path / "out" / "mnist.npz", timeout=0.2)
    assert list((tmp_path / "out").iterdir()) == []


def test_download_http_404_is_connection_error(fake, tmp_path):
    with serve(fake.parent) as base:
        with pytest.raises(ConnectionError, match="404"):
            download_mnist(f"{base}/absent.npz", tmp_path / "m.npz", timeout=10)
    assert not (tmp_path / "m.npz").exists()


# ---- load_npz_dataset --------------------------------------------------

def test_load_npz_dataset_with_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    xt = rng.random((3, 16))
    np.savez(tmp_path / "d.npz", x_train=x, x_test=xt, y_train=np.arange(6))
    (x_train, y_train), (x_test, y_test) = load_npz_dataset(tmp_path / "d.npz")
    assert x_train.shape == (6, 16) and x_train.dtype == np.float32
    np.testing.assert_array_equal(x_train * np.float32(255), x.reshape(6, 16))
    np.testing.assert_allclose(x_test, xt.astype(np.float32))  # floats kept as stored
    assert y_train.dtype == np.int64 and y_test is None


def test_load_npz_dataset_splits_last_fifth(tmp_path):
    x = np.linspace(0, 1, 10 * 3).reshape(10, 3)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(10))
    (x_train, y_train), (x_test, y_test) = load_npz_dataset(tmp_path / "d.npz", "float64")
    np.testing.assert_array_equal(x_train, x[:8])
    np.testing.assert_array_equal(x_test, x[8:])
    np.testing.assert_array_equal(y_test, [8, 9])
    assert y_train.tolist() == list(range(8))


@pytest.mark.parametrize("arrays, problem", [
    ({"x_test": np.zeros((3, 4))}, "missing key 'x_train'"),
    ({"x_train": np.zeros((3, 4), np.int64)}, "int64"),
    ({"x_train": np.zeros((3, 4)), "x_test": np.zeros((2, 5))}, "features"),
    ({"x_train": np.zeros((3, 4)), "y_train": np.zeros(2, np.int64)}, "y_train"),
    ({"x_train": np.zeros((3, 4))}, "at least 5"),
    ({"x_train": np.zeros((9, 4)), "y_test": np.zeros(2, np.int64)}, "without x_test"),
])
def test_load_npz_dataset_errors(tmp_path, arrays, problem):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=problem):
        load_npz_dataset(tmp_path / "d.npz")


def _csv(path):
    path.write_text("x0,x1\n0.5,0.25\n1.0,0.0\n")


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(64))


def _empty(path):
    path.write_bytes(b"")


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros((5, 4)))


@pytest.mark.parametrize("name,write", [
    ("d.csv", _csv), ("d.npz", _csv), ("d.npz", _random_bytes), ("d.npz", _empty),
    ("d.npy", _npy), ("d.npz", _npy),
], ids=["csv", "csv-named-npz", "random-bytes", "empty", "npy", "npy-named-npz"])
def test_load_npz_dataset_names_a_file_that_is_not_an_npz(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    with pytest.raises(ValueError) as info:
        load_npz_dataset(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not an .npz archive"), message
    assert "x_train" in message and "pickle" not in message


# ---- binarization ------------------------------------------------------

def test_binarize_none_is_identity():
    x = np.full((2, 3), 0.3)
    assert binarize(x, "none") is x


def test_binarize_dynamic_differs_between_calls():
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).random((200, 50)).astype(np.float32)
    a, b = binarize(x, "dynamic", rng), binarize(x, "dynamic", rng)
    assert a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0}
    assert not np.array_equal(a, b)
    assert abs(a.mean() - x.mean()) < 0.02  # 10,000 draws: std ~0.005


def test_binarize_static_is_fixed_per_seed():
    x = np.random.default_rng(1).random((100, 40))
    a = static_binarize(x, 3)
    np.testing.assert_array_equal(a, static_binarize(x, 3))
    np.testing.assert_array_equal(a, binarize(x, "static", 3))
    assert not np.array_equal(a, static_binarize(x, 4))
    assert a.dtype == np.float64 and set(np.unique(a)) <= {0.0, 1.0}
    assert abs(a.mean() - x.mean()) < 0.03


def test_binarize_errors():
    x = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match=r"mode: expected one of \('none', 'dynamic', 'static'\)"):
        binarize(x, "stochastic", np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        binarize(x, "dynamic", 0)
    with pytest.raises(TypeError, match="int seed"):
        binarize(x, "static", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        static_binarize(x * 3, 0)
    with pytest.raises(TypeError, match="dtype"):
        static_binarize(np.ones((2, 3), np.uint8), 0)
