import gzip
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from digitgenerator.idx import IMAGES_MAGIC, LABELS_MAGIC, encode_idx, parse_idx, read_idx, read_images_and_labels, write_idx

from conftest import FASHION, SHARED_MNIST, make_digits, needs_fashion, needs_shared_mnist


def header(magic, *dims):
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims)


def test_header_is_parsed_against_an_independent_encoding():
    payload = bytes(range(2 * 3 * 4))
    array = parse_idx(header(IMAGES_MAGIC, 2, 3, 4) + payload)
    assert array.shape == (2, 3, 4) and array.dtype == np.uint8
    assert array.ravel().tolist() == list(payload)


@pytest.mark.parametrize("gz", [False, True])
def test_write_then_read_round_trip(tmp_path, gz):
    images, labels = make_digits()
    name = "x-images" + (".gz" if gz else "")
    write_idx(tmp_path / name, images)
    write_idx(tmp_path / ("x-labels" + (".gz" if gz else "")), labels)
    got_images, got_labels = read_images_and_labels(tmp_path / name, tmp_path / ("x-labels" + (".gz" if gz else "")))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x12\x34\x08\x03" + bytes(12), "bad IDX magic"),
        (b"\x00\x00\x07\x03" + bytes(12), "bad IDX magic"),
        (header(IMAGES_MAGIC, 2, 28)[:10], "truncated header"),
        (header(IMAGES_MAGIC, 2, 28, 28) + bytes(28 * 28 * 2 - 1), "payload truncated"),
        (header(IMAGES_MAGIC, 2, 28, 28) + bytes(28 * 28 * 2 + 5), "trailing bytes"),
    ],
)
def test_corrupt_headers_and_payloads_raise_value_error_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_wrong_magic_for_the_role(tmp_path):
    images, labels = make_digits()
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "labels", labels)
    with pytest.raises(ValueError, match="magic number 2049 where 2051"):
        read_images_and_labels(tmp_path / "labels", tmp_path / "labels")


def test_count_mismatch_between_images_and_labels(tmp_path):
    images, labels = make_digits()
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "labels", labels[:-1])
    with pytest.raises(ValueError, match="30 images but .* 29 labels"):
        read_images_and_labels(tmp_path / "images", tmp_path / "labels")


def test_corrupt_gzip_and_missing_file(tmp_path):
    good = gzip.compress(encode_idx(np.zeros((3, 2, 2), np.uint8)))
    (tmp_path / "bad.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "nothing-here")


def test_only_uint8_is_written():
    with pytest.raises(ValueError, match="uint8"):
        encode_idx(np.zeros(3, np.float32))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)))
def test_encode_parse_round_trip_property(array):
    data = encode_idx(array)
    assert len(data) == 4 + 4 * array.ndim + array.size
    np.testing.assert_array_equal(parse_idx(data), array)
    # Any shortening of the payload is detected, never misread.
    with pytest.raises(ValueError):
        parse_idx(data[:-1])


@needs_fashion
def test_reads_real_fashion_mnist_files():
    images, labels = read_images_and_labels(FASHION / "t10k-images-idx3-ubyte.gz", FASHION / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced
    train = read_idx(FASHION / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)
    assert train.shape == (60_000,)


@needs_fashion
def test_corrupted_copy_of_a_real_file_is_rejected(tmp_path):
    raw = gzip.decompress((FASHION / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "cut").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="payload truncated"):
        read_idx(tmp_path / "cut")
    flipped = bytearray(raw)
    flipped[3] = 3  # a labels file that claims three dimensions
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        read_idx(tmp_path / "flipped", LABELS_MAGIC)


@needs_shared_mnist
def test_reads_the_real_mnist_test_set_with_published_checksums():
    from digitgenerator.data import mnist_resources

    MNIST_FILES = mnist_resources()[1]

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert hashlib.sha256((SHARED_MNIST / name).read_bytes()).hexdigest() == MNIST_FILES[name]
    images, labels = read_images_and_labels(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz", LABELS_MAGIC).shape == (60_000,)
