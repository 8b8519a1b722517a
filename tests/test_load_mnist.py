"""load_mnist.sh against a real HTTP server on 127.0.0.1 serving the real MNIST files."""

import functools
import http.server
import shutil
import subprocess
import threading

import pytest

from conftest import ROOT, SHARED_MNIST, needs_shared_mnist

pytestmark = needs_shared_mnist
AVAILABLE = ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


class Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        Handler.requests.append(self.path)


@pytest.fixture
def server(tmp_path):
    """http://127.0.0.1:PORT/good/ serves the real files, /bad/ truncated copies of them."""
    root = tmp_path / "www"
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    for name in AVAILABLE:
        shutil.copy(SHARED_MNIST / name, root / "good" / name)
        (root / "bad" / name).write_bytes((SHARED_MNIST / name).read_bytes()[:500])
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def load(dest, mirrors, *files):
    return subprocess.run(
        ["bash", str(ROOT / "load_mnist.sh"), str(dest), *files],
        env={"PATH": "/usr/bin:/bin", "MNIST_MIRRORS": mirrors}, capture_output=True, text=True, timeout=120,
    )


def test_downloads_verifies_and_skips_what_is_there(server, tmp_path):
    dest = tmp_path / "data"
    result = load(dest, f"{server}/good/", *AVAILABLE)
    assert result.returncode == 0, result.stderr
    for name in AVAILABLE:
        assert (dest / name).read_bytes() == (SHARED_MNIST / name).read_bytes()
    Handler.requests.clear()
    again = load(dest, f"{server}/good/", *AVAILABLE)
    assert again.returncode == 0 and again.stdout.count("already there") == 3
    assert Handler.requests == []  # nothing fetched when the data is already valid


def test_bad_mirror_falls_through_to_the_next(server, tmp_path):
    dest = tmp_path / "data"
    result = load(dest, f"{server}/bad/ {server}/good/", *AVAILABLE)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("wrong checksum") == 3
    assert sorted(p.name for p in dest.iterdir()) == sorted(AVAILABLE)


def test_corrupt_local_file_is_replaced(server, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / AVAILABLE[0]).write_bytes(b"junk")
    assert load(dest, f"{server}/good/", AVAILABLE[0]).returncode == 0
    assert (dest / AVAILABLE[0]).read_bytes() == (SHARED_MNIST / AVAILABLE[0]).read_bytes()


def test_only_bad_copies_leave_no_file(server, tmp_path):
    dest = tmp_path / "data"
    result = load(dest, f"{server}/bad/")
    assert result.returncode == 1
    assert "embedded 5,000-digit sample" in result.stderr
    assert list(dest.iterdir()) == []  # no partial or unverified file


def test_no_network(tmp_path):
    dest = tmp_path / "data"
    result = load(dest, "http://127.0.0.1:9/")  # the discard port: nothing listens
    assert result.returncode == 1
    assert "no network?" in result.stderr
    assert list(dest.iterdir()) == []


def test_unknown_file_name(tmp_path):
    result = load(tmp_path / "data", "http://127.0.0.1:9/", "nope.gz")
    assert result.returncode == 1 and "unknown file nope.gz" in result.stderr
