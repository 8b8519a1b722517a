"""Pixel-exact 8-bit grayscale PNG output."""

from __future__ import annotations

import functools
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint8(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """A float image in [0, 1] (1 = ink) as uint8 gray; invert=True gives black ink on white."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    gray = np.clip(image, 0.0, 1.0)  # a new array: the passes below work in place
    if invert:
        np.subtract(1.0, gray, out=gray)
    gray *= 255.0
    return np.rint(gray, out=gray).astype(np.uint8)


def check_png_path(filename: str | os.PathLike) -> Path:
    """The path, if it names a .png file in an existing, writable folder; else an error."""
    if not isinstance(filename, (str, os.PathLike)):
        raise ValueError(f"output file {filename!r} must be a path ending in .png")
    path = Path(filename)
    if len(os.fsencode(path.name)) > 255:  # before any look at the file system, which would fail less clearly
        raise ValueError(f"output file name {path.name[:40]}... is longer than 255 bytes")
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file {os.fspath(filename)!r} must end in .png")  # Path("") would print '.'
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise ValueError(f"output file {path} is an existing folder; name a .png file")
    return path


# mallopt(3) parameters (glibc's malloc.h): blocks above M_MMAP_THRESHOLD get their own mmap, and
# free() hands the top of the heap back to the system beyond M_TRIM_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_MMAP_BELOW, _KEEP_HEAP_BELOW = 32 << 20, 64 << 20  # 32 MiB: the most glibc itself adapts to


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let this process reuse freed memory for the next zlib stream (glibc; False elsewhere).

    Every zlib stream allocates about 256 KiB of state (deflateInit with 15
    window bits and memLevel 8). glibc adapts its thresholds so that such
    blocks are reused, unless they were set by hand: Dask's workers start with
    MALLOC_TRIM_THRESHOLD_=65536, which hands the memory back on every free and
    maps it again, page by page, on the next stream: measured 90 us more per PNG,
    a third of an 8-digit image's cost. Called once per dataset worker; it
    keeps up to 64 MiB of freed memory for reuse.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_MMAP_BELOW) and mallopt(_M_TRIM_THRESHOLD, _KEEP_HEAP_BELOW))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(gray: np.ndarray, level: int = 6, strategy: int = zlib.Z_DEFAULT_STRATEGY, engine: str = "zlib") -> bytes:
    """The bytes of an 8-bit grayscale PNG of a uint8 (H, W) array.

    PNG 1.2 (RFC 2083): signature, IHDR (width, height, bit depth 8, colour
    type 0 = gray), one IDAT holding the zlib stream of the rows, each prefixed
    by filter type 0, and IEND. Written here rather than through Pillow because
    Pillow's per-image overhead dominated dataset export. strategy: zlib's.
    engine="isal": the zlib stream comes from ISA-L (Intel's Intelligent Storage
    Acceleration library, through python-isal) at its `level` (0-3), and
    strategy is not used: on scanned paper, where the grain leaves string
    matching little to find, ISA-L's level 1 took 48 us per 8-digit image
    against 101 us for zlib's fastest choice (Huffman coding alone), for 0.7%
    smaller files (bench/speed.py --only png).
    """
    if engine not in ("zlib", "isal"):
        raise ValueError(f"engine must be 'zlib' or 'isal', got {engine!r:.40}")
    h, w = gray.shape
    rows = np.empty((h, w + 1), np.uint8)
    rows[:, 0] = 0  # filter type "None" for every row
    rows[:, 1:] = gray
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    if engine == "isal":
        from isal import isal_zlib

        idat = isal_zlib.compress(rows.tobytes(), level)
    elif strategy == zlib.Z_DEFAULT_STRATEGY:
        idat = zlib.compress(rows.tobytes(), level)
    else:
        packer = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 8, strategy)
        idat = packer.compress(rows.tobytes()) + packer.flush()
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_png(
    filename: str | os.PathLike, image: np.ndarray, invert: bool = False, check: bool = True, level: int = 6,
    strategy: int = zlib.Z_DEFAULT_STRATEGY,
) -> Path:
    """Write a (H, W) float image as an H x W 8-bit grayscale PNG, atomically (level: zlib 1-9)."""
    path = check_png_path(filename) if check else filename
    atomic_write_bytes(path, encode_png(to_uint8(image, invert), level, strategy))
    return Path(path)


def read_png(filename: str | os.PathLike) -> np.ndarray:
    """A grayscale PNG as float32 (H, W) in [0, 1]."""
    from PIL import Image

    with Image.open(filename) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
