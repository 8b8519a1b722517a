"""Where the MNIST digits come from, and the uint8 cache that makes start-up fast.

Order of sources (see `locate_mnist`): the IDX files in `mnist_folder`
(`mnist_data/`, filled by ./load_mnist.sh in a checkout), then the user data
folder (`data_home()`, filled by `digitgenerator-download`), then the
5,000-digit sample shipped inside the package. Files found are cached as one
uint8 .npy file, loaded memory-mapped, in `preprocessed_folder` when the
caller names one, else in the user cache folder (`cache_home()`); the sample
needs no cache. No pickle anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checks
from .atomic import atomic_path
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_images_and_labels

IMAGE_SIZE = 28
NUM_CLASSES = 10

# The MNIST files, their SHA-256 and mirrors: one table, shared with load_mnist.sh.
RESOURCES_FILE = Path(__file__).resolve().parent / "mnist_resources.txt"
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"



class _DefaultFolder(str):
    """The documented default preprocessed_folder ".", told apart from a "." the caller passed.

    Left at its default, the cache goes to the user cache folder, so that a
    command leaves nothing behind in the working directory; passed, even as
    ".", it goes where the caller said.
    """

    def __reduce__(self):  # keeps its meaning across processes (Dask tasks, spawned workers)
        return _DefaultFolder, (str(self),)


DEFAULT_MNIST_FOLDER = "mnist_data"
DEFAULT_PREPROCESSED_FOLDER = _DefaultFolder(".")
APP_NAME = "digitgenerator"
MNIST_FOLDER_ENV = "DIGITGENERATOR_MNIST_DATA"  # overrides the default mnist_folder
HOME_ENV = "DIGITGENERATOR_HOME"  # the data folder digitgenerator-download fills and the loader searches
CACHE_FOLDER_ENV = "DIGITGENERATOR_CACHE"  # the cache folder when preprocessed_folder is left at its default

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
SAMPLE_FILES = {"images": "mnist5k-images-idx3-ubyte.gz", "labels": "mnist5k-labels-idx1-ubyte.gz"}

CACHE_PREFIX = "digitgenerator-mnist-"
CACHE_FORMAT = 2  # bump when the cache layout changes
_ROW = 1 + IMAGE_SIZE * IMAGE_SIZE  # one cache row: the label, then 784 pixels
# The cache's last row is a trailer: this tag, the CRC-32 of every row above it, and their count.
# A flipped byte anywhere (a label, a pixel) fails the CRC and the cache is rebuilt; checking
# 47 MB takes about 15 ms, well inside the start-up budget.
_TRAILER_TAG = b"DGCACHE2"

_warned_folders: set[str] = set()


class EmbeddedSampleWarning(UserWarning):
    """MNIST files were not found and the embedded 5,000-digit sample is used instead."""


@dataclass(frozen=True)
class MnistSource:
    """An images/labels IDX pair, and whether it is the embedded sample."""

    images: Path
    labels: Path
    is_sample: bool


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_mnist_folder(mnist_folder: str | os.PathLike = DEFAULT_MNIST_FOLDER) -> Path:
    """The folder to read: the argument, or $DIGITGENERATOR_MNIST_DATA in place of the default."""
    folder = checks.path(mnist_folder, "mnist_folder")
    if str(mnist_folder) == DEFAULT_MNIST_FOLDER and os.environ.get(MNIST_FOLDER_ENV):
        return Path(os.environ[MNIST_FOLDER_ENV])
    return folder


def resolve_cache_folder(preprocessed_folder: str | os.PathLike = DEFAULT_PREPROCESSED_FOLDER) -> Path:
    """The cache folder: the argument when given, else `cache_home()`."""
    if preprocessed_folder is None or isinstance(preprocessed_folder, _DefaultFolder):  # None: the default too
        return cache_home()
    return Path(preprocessed_folder)


def data_home(folder: str | os.PathLike | None = None) -> Path:
    """The user data folder: the argument, else $DIGITGENERATOR_HOME, else the platform's user data folder
    (~/.local/share/digitgenerator on Linux, after $XDG_DATA_HOME)."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_home() -> Path:
    """The user cache folder: $DIGITGENERATOR_CACHE, else the platform's (~/.cache/digitgenerator on Linux)."""
    if os.environ.get(CACHE_FOLDER_ENV):
        return Path(os.environ[CACHE_FOLDER_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def mnist_resources() -> tuple[list[str], dict[str, str]]:
    """(mirrors, {file name: SHA-256}) from the table shared with load_mnist.sh."""
    mirrors, files = [], {}
    for line in RESOURCES_FILE.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "mirror":
            mirrors.append(fields[1])
        else:
            files[fields[0]] = fields[1]
    return mirrors, files


def sample_source() -> MnistSource:
    """The 5,000 real MNIST digits shipped inside the package."""
    return MnistSource(SAMPLE_DIR / SAMPLE_FILES["images"], SAMPLE_DIR / SAMPLE_FILES["labels"], True)


def _pair(folder: Path, fix: str) -> MnistSource | None:
    """The training IDX pair in `folder`, None when it holds neither file, FileNotFoundError for half."""
    images, labels = _find(folder, TRAIN_IMAGES), _find(folder, TRAIN_LABELS)
    if images and labels:
        return MnistSource(images, labels, False)
    if images or labels:
        missing = TRAIN_LABELS if images else TRAIN_IMAGES
        raise FileNotFoundError(f"{folder} has only half of MNIST: {missing}[.gz] is missing; {fix}")
    return None


def locate_mnist(mnist_folder: str | os.PathLike = DEFAULT_MNIST_FOLDER) -> MnistSource:
    """The training IDX pair in `mnist_folder`, else in `data_home()`, else the embedded sample (with one warning)."""
    folder = resolve_mnist_folder(mnist_folder)
    found = _pair(folder, f"run ./load_mnist.sh {folder}")
    if found is None:
        home = data_home()
        found = _pair(home, "run digitgenerator-download")
    if found is not None:
        return found
    if str(folder) not in _warned_folders:
        _warned_folders.add(str(folder))
        warnings.warn(
            f"no MNIST files in {folder}/ or {home}/; using the embedded sample of 5,000 digits. "
            "Run digitgenerator-download to get all 60,000.",
            EmbeddedSampleWarning,
            stacklevel=3,
        )
    return sample_source()


def _stat_key(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def cache_path(source: MnistSource, cache_folder: Path) -> Path:
    """The cache file for this source: its name changes whenever a source file changes."""
    key = json.dumps([CACHE_FORMAT, _stat_key(source.images), _stat_key(source.labels)])
    return cache_folder / f"{CACHE_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"


def _idx_count(path: Path, magic: int) -> int:
    """The item count from an IDX header, reading only its first 8 bytes."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as f:
            head = f.read(8)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip data ({exc}); delete it and fetch it again") from None
    if len(head) < 8 or struct.unpack(">I", head[:4])[0] != magic:
        raise ValueError(f"{path}: not an IDX file with magic number {magic}")
    return struct.unpack(">I", head[4:])[0]


def _load_cache(path: Path, expected_rows: int) -> np.ndarray | None:
    """The memory-mapped cache table (N, 785), or None when it is missing, corrupt or not this data's."""
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged .npy header fails in many ways (even tokenize errors): rebuild
        return None
    if table.dtype != np.uint8 or table.shape != (expected_rows + 1, _ROW):
        return None
    trailer = bytes(table[-1, :20])
    rows = table[:-1]
    if trailer[:8] != _TRAILER_TAG or int.from_bytes(trailer[12:20], "big") != expected_rows:
        return None
    if zlib.crc32(rows) != int.from_bytes(trailer[8:12], "big"):
        return None
    return rows


def _build_table(source: MnistSource) -> np.ndarray:
    """The cache table: one row per digit (label, 784 pixels), then the trailer row."""
    images, labels = read_images_and_labels(source.images, source.labels)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or images.dtype != np.uint8:
        raise ValueError(f"{source.images}: expected uint8 images of {IMAGE_SIZE}x{IMAGE_SIZE}, got {images.dtype} {images.shape[1:]}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"{source.labels}: label {int(labels.max())} is not a digit 0-9")
    n = len(labels)
    table = np.zeros((n + 1, _ROW), dtype=np.uint8)
    table[:n, 0] = labels
    table[:n, 1:] = images.reshape(n, -1)
    trailer = _TRAILER_TAG + zlib.crc32(table[:n]).to_bytes(4, "big") + n.to_bytes(8, "big")
    table[n, : len(trailer)] = np.frombuffer(trailer, np.uint8)
    return table


def load_mnist(
    mnist_folder: str | os.PathLike = DEFAULT_MNIST_FOLDER,
    preprocessed_folder: str | os.PathLike = DEFAULT_PREPROCESSED_FOLDER,
) -> tuple[np.ndarray, np.ndarray, MnistSource]:
    """Load MNIST through the cache: uint8 images (N, 28, 28), int8 labels (N,), and the source.

    The images are a read-only memory-mapped view when the cache could be used.
    """
    if preprocessed_folder is not None:  # here, so that the embedded sample, which needs no cache, checks it too
        checks.path(preprocessed_folder, "preprocessed_folder")
    source = locate_mnist(mnist_folder)
    if source.is_sample:
        # 5,000 digits inflate in about 40 ms: no cache file, so a command leaves only what it was asked for.
        table = _build_table(source)[:-1]
    else:
        table = _cached_table(source, resolve_cache_folder(preprocessed_folder))
    images = table[:, 1:].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = np.ascontiguousarray(table[:, 0]).astype(np.int8)
    return images, labels, source


def _cached_table(source: MnistSource, folder: Path) -> np.ndarray:
    """The table (N, 785) of a source: the memory-mapped cache when it holds, else built and cached."""
    path = cache_path(source, folder)
    table = _load_cache(path, _idx_count(source.labels, LABELS_MAGIC))
    if table is None:
        full = _build_table(source)
        table = full[:-1]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Each process writes its own temporary file and renames it into
            # place, so concurrent builders never expose a partial cache.
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, full, allow_pickle=False)
        except OSError as exc:
            warnings.warn(f"cannot write the cache in {folder} ({exc}); working from memory", stacklevel=3)
    return table


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read a block at a time (MNIST's files, model weights, downloads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_is_intact() -> bool:
    """Whether the embedded sample matches the SHA-256 recorded in its PROVENANCE.json."""
    provenance = json.loads((SAMPLE_DIR / "PROVENANCE.json").read_text())
    return all(file_sha256(SAMPLE_DIR / name) == digest for name, digest in provenance["files"].items())


__all__ = [
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "cache_home",
    "data_home",
    "mnist_resources",
    "IMAGES_MAGIC",
    "MnistSource",
    "load_mnist",
    "locate_mnist",
    "sample_source",
]
