"""Shared fixtures: every test runs in its own empty working directory with a clean environment."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from digitgenerator.idx import write_idx

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
HAS_TF = importlib.util.find_spec("tensorflow") is not None

needs_shared_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"real MNIST test set not in {SHARED_MNIST}"
)
needs_fashion = pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
needs_tf = pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (pip install '.[train]')")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in tmp_path, with none of the user's digitgenerator variables, and user folders of its own."""
    for var in ("DIGITGENERATOR_MNIST_DATA", "DIGITGENERATOR_CACHE", "DIGITGENERATOR_MODEL_DIR", "DIGITGENERATOR_HOME",
                "MNIST_MIRRORS"):
        monkeypatch.delenv(var, raising=False)
    # The platform's user folders (platformdirs reads these on Linux): never the real ones.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    from digitgenerator import data

    monkeypatch.setattr(data, "_warned_folders", set())  # each test sees the once-per-process note afresh
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_digits(n_per_class: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small synthetic digits: uint8 (10 * n, 28, 28) blobs whose column tells the label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n_per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 6:22, 4 + label : 8 + label] = rng.integers(128, 256, size=(16, 4))
    return images, labels


@pytest.fixture
def mnist_folder(tmp_path):
    """A folder with a tiny MNIST-format training pair (30 digits), plain IDX."""
    folder = tmp_path / "tiny_mnist"
    folder.mkdir()
    images, labels = make_digits()
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return folder


def write_random_model(folder: Path, seed: int = 0) -> Path:
    """A CVAE folder with random weights of the right shapes (no TensorFlow needed)."""
    import json

    from digitgenerator.model import CONFIG_FILE, DEFAULT_CONFIG, PRIOR_SHAPES, WEIGHTS_FILE, weight_shapes

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in weight_shapes(DEFAULT_CONFIG).items()}
    d = DEFAULT_CONFIG["latent_dim"]
    for name, shape in PRIOR_SHAPES.items():
        weights[name] = np.zeros(shape(d), np.float32)
    weights["prior/label_mean"] = rng.standard_normal((10, d)).astype(np.float32)
    weights["prior/label_chol"] = np.tile(np.eye(d, dtype=np.float32), (10, 1, 1))
    weights["prior/style_chol"] = np.eye(d, dtype=np.float32)
    np.savez(folder / WEIGHTS_FILE, **weights)
    (folder / CONFIG_FILE).write_text(json.dumps(DEFAULT_CONFIG))
    return folder


@pytest.fixture
def random_model(tmp_path):
    return write_random_model(tmp_path / "random_model")


# The real MNIST files in shared/ that a local mirror serves (train-images is not there).
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
