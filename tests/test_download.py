"""digitgenerator-download against a real HTTP server on 127.0.0.1; the user data and cache folders; no litter."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from digitgenerator import Digitgenerator
from digitgenerator.cli import main as generate_main
from digitgenerator.data import CACHE_PREFIX, data_home, mnist_resources
from digitgenerator.download import main as download_main
from digitgenerator.idx import write_idx

from conftest import AVAILABLE, ROOT, SHARED_MNIST, Handler, make_digits, needs_shared_mnist


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@needs_shared_mnist
def test_downloads_into_the_data_home_through_the_first_good_mirror(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIGITGENERATOR_HOME", str(tmp_path / "home"))
    code = download_main(["--mirror", f"{server}/bad/", "--mirror", f"{server}/good/", *AVAILABLE])
    assert code == 0, capsys.readouterr().err
    for name in AVAILABLE:
        assert (tmp_path / "home" / name).read_bytes() == (SHARED_MNIST / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == sorted(AVAILABLE)  # no temporary left
    Handler.requests.clear()
    assert download_main(["--mirror", f"{server}/good/", *AVAILABLE]) == 0
    assert Handler.requests == [] and capsys.readouterr().out.count("already there") == 3


@needs_shared_mnist
def test_fetches_what_load_mnist_sh_fetches_from_the_same_table(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_MIRRORS", f"{server}/good/")
    assert download_main(["--dir", str(tmp_path / "new" / "py"), *AVAILABLE]) == 0  # folders made as needed
    shell = subprocess.run(["bash", str(ROOT / "load_mnist.sh"), str(tmp_path / "sh"), *AVAILABLE],
                           env={"PATH": "/usr/bin:/bin", "MNIST_MIRRORS": f"{server}/good/"}, capture_output=True)
    assert shell.returncode == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "new" / "py").iterdir()} == {p.name: p.read_bytes() for p in (tmp_path / "sh").iterdir()}
    unknown = subprocess.run(["bash", str(ROOT / "load_mnist.sh"), str(tmp_path / "sh"), "nope.gz"], capture_output=True, text=True)
    assert all(name in unknown.stderr for name in mnist_resources()[1])  # the script lists the table's names


@needs_shared_mnist
def test_a_mirror_that_sent_one_bad_copy_is_still_asked_for_the_next_file(server, tmp_path):
    first, second = AVAILABLE[:2]
    www = tmp_path / "www"
    (www / "mixed").mkdir()
    (www / "mixed" / first).write_bytes(b"not the file")
    shutil.copy(SHARED_MNIST / second, www / "mixed" / second)
    (www / "only-first").mkdir()
    shutil.copy(SHARED_MNIST / first, www / "only-first" / first)
    code = download_main(["--dir", str(tmp_path / "d"), "--mirror", f"{server}/mixed/", "--mirror", f"{server}/only-first/",
                          first, second])
    assert code == 0
    assert all((tmp_path / "d" / n).read_bytes() == (SHARED_MNIST / n).read_bytes() for n in (first, second))


@needs_shared_mnist
def test_a_mirror_that_does_not_answer_is_asked_only_once(server, tmp_path):
    """A mirror that takes the connection and never answers costs one timeout, not one per file: it is
    skipped for the files after (offline, each would wait out --timeout again)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    silent = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        code = download_main(["--dir", str(tmp_path / "d"), "--mirror", silent, "--mirror", f"{server}/good/",
                              "--timeout", "0.5", *AVAILABLE])
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert code == 0 and len(AVAILABLE) > 1 and len(held) == 1
    assert all((tmp_path / "d" / n).read_bytes() == (SHARED_MNIST / n).read_bytes() for n in AVAILABLE)


def test_offline_is_one_line_and_no_file(tmp_path, capsys):
    code = download_main(["--dir", str(tmp_path / "home"), "--mirror", closed_port_url(), "--timeout", "0.5"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no mirror gave a good copy" in err[0] and "train-images" in err[0]
    assert list((tmp_path / "home").iterdir()) == []


@pytest.mark.parametrize("argv,message", [(["nope.gz"], "unknown file nope.gz"), (["--timeout", "0"], "--timeout"),
                                          (["--timeout", "10000"], "--timeout must be between 0.1 and 9999")])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, message):
    assert download_main(["--dir", str(tmp_path / "d"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def put_tiny_mnist(folder):
    folder.mkdir(parents=True)
    images, labels = make_digits()
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return images


def test_the_loader_searches_the_data_home_after_mnist_folder(tmp_path, monkeypatch, mnist_folder):
    home_images = put_tiny_mnist(tmp_path / "home")
    monkeypatch.setenv("DIGITGENERATOR_HOME", str(tmp_path / "home"))
    gen = Digitgenerator()
    assert gen.source.images.parent == tmp_path / "home"
    assert np.array_equal(np.asarray(gen._uint8_images), home_images)
    assert Digitgenerator(mnist_folder).source.images.parent == mnist_folder  # mnist_folder comes first
    # The cache of downloaded digits is in the user cache folder, not the working directory.
    assert list((tmp_path / "user-cache" / "digitgenerator").glob(f"{CACHE_PREFIX}*.npy"))
    assert not list(tmp_path.glob(f"{CACHE_PREFIX}*"))


def test_the_platform_data_folder_is_the_default(tmp_path):
    assert data_home() == tmp_path / "user-data" / "digitgenerator"  # XDG_DATA_HOME, set by conftest
    assert data_home(tmp_path / "mine") == tmp_path / "mine"


def test_a_named_cache_folder_is_used_as_documented(tmp_path, monkeypatch):
    put_tiny_mnist(tmp_path / "home")
    monkeypatch.setenv("DIGITGENERATOR_HOME", str(tmp_path / "home"))
    Digitgenerator(preprocessed_folder=".")
    assert list(tmp_path.glob(f"{CACHE_PREFIX}*.npy"))  # "." passed: the working directory, as documented
    assert generate_main(["--digits", "1", "2", "--outfile", "a.png", "--cache-dir", "mycache"]) == 0
    assert list((tmp_path / "mycache").glob(f"{CACHE_PREFIX}*.npy"))


@pytest.mark.parametrize("with_data", [False, True])
def test_generate_png_in_an_empty_folder_leaves_only_the_png(tmp_path, monkeypatch, with_data):
    if with_data:
        put_tiny_mnist(tmp_path / "home")
        monkeypatch.setenv("DIGITGENERATOR_HOME", str(tmp_path / "home"))
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.chdir(work)
    assert generate_main(["--digits", "1", "3", "5", "--seed", "1", "--outfile", "seq.png"]) == 0
    assert [p.name for p in work.iterdir()] == ["seq.png"]


@pytest.mark.skipif(shutil.which("digitgenerator-download") is None, reason="the package's commands are not installed")
def test_the_installed_command_offline(tmp_path):
    env = {**os.environ, "DIGITGENERATOR_HOME": str(tmp_path / "h"), "MNIST_MIRRORS": closed_port_url()}
    result = subprocess.run(["digitgenerator-download", "--timeout", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists() or list((tmp_path / "h").iterdir()) == []
