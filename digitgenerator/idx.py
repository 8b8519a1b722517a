"""Read and write IDX files, the format of the MNIST database.

An IDX file is a 4-byte magic number -- two zero bytes, a type code and the
number of dimensions -- then one big-endian uint32 per dimension, then the
payload in C order (http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS").
MNIST uses type 0x08 (unsigned byte): images are magic 2051 (0x0803, three
dimensions), labels 2049 (0x0801, one dimension).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

UBYTE = 0x08
IMAGES_MAGIC = 0x0803  # 2051: unsigned bytes, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 0x0801  # 2049: unsigned bytes, 1 dimension (N,)
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 2**31  # 2 GiB: thirty times MNIST's training images; a header asking for more is corrupt or hostile

# Type codes of the IDX format and the big-endian numpy dtype each stands for.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic.

    A gzip stream is inflated only as far as the IDX header inside it says the
    file goes (plus one byte, to notice trailing data): a small file that
    inflates to gigabytes is refused, never read whole.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an IDX file") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        head = inflate.decompress(raw, 4)
        if len(head) == 4 and head[:2] == b"\0\0":
            head += inflate.decompress(inflate.unconsumed_tail, 4 * head[3])
        size = _declared_size(head, str(path)) if len(head) >= 4 else len(head)
        body = inflate.decompress(inflate.unconsumed_tail, max(size - len(head), 0) + 1)
    except zlib.error as exc:
        raise ValueError(f"{path}: corrupt gzip data ({exc}); delete it and fetch it again") from None
    data = head + body
    if len(data) <= size and not inflate.eof:  # asked for one byte more than needed and the stream did not end
        raise ValueError(f"{path}: corrupt gzip data (the stream stops early); delete it and fetch it again")
    return data


def _declared_size(head: bytes, name: str) -> int:
    """The total bytes an IDX file with this header must have; ValueError past MAX_IDX_BYTES."""
    zero, type_code, ndim = struct.unpack(">HBB", head[:4])
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0 or len(head) < 4 + 4 * ndim:
        return len(head)  # parse_idx says what is wrong
    shape = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
    size = 4 + 4 * ndim + math.prod(shape) * IDX_DTYPES[type_code].itemsize
    if size > MAX_IDX_BYTES:
        raise ValueError(f"{name}: header declares shape {shape} ({size:,} bytes), over the {MAX_IDX_BYTES:,}-byte limit; the file is corrupt")
    return size


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array of the shape and type its header states."""
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        magic = struct.unpack(">I", data[:4])[0]
        raise ValueError(f"{name}: bad IDX magic number {magic:#010x} (not an IDX file)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{name}: truncated header ({len(data)} bytes, {ndim} dimensions declared)")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow, whatever the header says
    payload = len(data) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise ValueError(
            f"{name}: payload {what}: header says shape {shape} ({expected} bytes), file holds {payload}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or .gz) into a numpy array; check its magic number."""
    path = Path(path)
    data = _read_bytes(path)
    array = parse_idx(data, str(path))
    if expect_magic is not None:
        magic = struct.unpack(">I", data[:4])[0]
        if magic != expect_magic:
            raise ValueError(f"{path}: magic number {magic} where {expect_magic} was expected")
    return array


def read_images_and_labels(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Read an MNIST-style pair: uint8 images (N, rows, cols) and uint8 labels (N,)."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) == 0:
        raise ValueError(f"{images_path} holds no images (its header says 0); fetch it again")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of an unsigned-byte array (the inverse of parse_idx for uint8)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"only uint8 arrays are written as IDX, got {array.dtype}")
    header = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as IDX, gzipped when the name ends in .gz; atomically."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        # mtime=0 keeps the bytes (and so the checksum) the same on every run.
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(path, data)
