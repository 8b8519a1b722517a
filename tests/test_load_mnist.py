"""load_mnist.sh against a real HTTP server on 127.0.0.1 serving the real MNIST files."""

import subprocess
import threading

import pytest

from conftest import AVAILABLE, ROOT, SHARED_MNIST, Handler, needs_shared_mnist

pytestmark = needs_shared_mnist
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


@pytest.fixture
def silent_server():
    """A server on 127.0.0.1 that accepts connections and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def run_script(dest, mirrors, *files, timeout="2"):
    return subprocess.Popen(
        ["bash", str(ROOT / "load_mnist.sh"), str(dest), *files],
        env={"PATH": "/usr/bin:/bin", "MNIST_MIRRORS": mirrors, "MNIST_TIMEOUT": timeout},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_stalled_mirror_is_given_up_within_the_timeout(silent_server, server, tmp_path):
    import time

    start = time.monotonic()
    proc = run_script(tmp_path / "d", f"{silent_server}/ {server}/good/", "t10k-labels-idx1-ubyte.gz")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - start < 15  # 2 s of silence, then the next mirror
    assert "did not answer" in err
    assert (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").read_bytes() == (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()


def test_sigterm_stops_a_download_at_once_and_leaves_nothing(silent_server, tmp_path):
    import signal
    import time

    dest = tmp_path / "d"
    proc = run_script(dest, f"{silent_server}/", "t10k-labels-idx1-ubyte.gz", timeout="60")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not list(dest.glob(".*partial*")):
        time.sleep(0.05)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert time.monotonic() - start < 3
    assert proc.returncode != 0
    assert list(dest.iterdir()) == []


def test_a_partial_left_by_kill_9_is_removed_by_the_next_run(server, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = dest / f".t10k-labels-idx1-ubyte.gz.partial-{dead.pid}"
    leftover.write_bytes(b"half")
    users = dest / ".notes.partial-x"
    users.write_bytes(b"mine")
    result = load(dest, f"{server}/good/", "t10k-labels-idx1-ubyte.gz")
    assert result.returncode == 0, result.stderr
    assert not leftover.exists() and users.exists()


def test_a_bad_timeout_is_refused(tmp_path):
    proc = run_script(tmp_path / "d", "http://127.0.0.1:9/", timeout="soon")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "MNIST_TIMEOUT" in err
