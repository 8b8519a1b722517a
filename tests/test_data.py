import multiprocessing
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from digitgenerator.data import CACHE_PREFIX, load_mnist, locate_mnist, mnist_resources, sample_is_intact
from digitgenerator.idx import write_idx

from conftest import make_digits


def caches(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{CACHE_PREFIX}*.npy"))


def test_reads_mnist_folder_and_caches_memory_mapped_uint8(mnist_folder, tmp_path):
    images, labels, source = load_mnist(mnist_folder, tmp_path / "cache")
    expected_images, expected_labels = make_digits()
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert labels.dtype == np.int8 and images.dtype == np.uint8
    assert not source.is_sample
    (cache,) = caches(tmp_path / "cache")
    again, _, _ = load_mnist(mnist_folder, tmp_path / "cache")
    assert isinstance(again.base, np.memmap) or isinstance(again.base.base, np.memmap)
    assert caches(tmp_path / "cache") == [cache]


def test_falls_back_to_the_embedded_sample_with_one_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"embedded sample of 5,000 digits.*digitgenerator-download"):
        images, labels, source = load_mnist(tmp_path / "empty", tmp_path)
    assert source.is_sample and images.shape == (5000, 28, 28)
    assert np.bincount(labels).tolist() == [500] * 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mnist(tmp_path / "empty", tmp_path)  # said once is enough


def test_embedded_sample_matches_its_provenance():
    assert sample_is_intact()


def test_half_a_dataset_is_an_error_that_says_what_to_do(mnist_folder):
    (mnist_folder / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte\[\.gz\] is missing; run ./load_mnist.sh"):
        locate_mnist(mnist_folder)


def test_environment_variables_replace_the_defaults(mnist_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITGENERATOR_MNIST_DATA", str(mnist_folder))
    monkeypatch.setenv("DIGITGENERATOR_CACHE", str(tmp_path / "envcache"))
    images, _, source = load_mnist()
    assert source.images.parent == mnist_folder and len(images) == 30
    assert len(caches(tmp_path / "envcache")) == 1


def test_cache_is_rebuilt_when_the_source_changes(mnist_folder, tmp_path):
    load_mnist(mnist_folder, tmp_path)
    images, labels = make_digits(n_per_class=4, seed=1)
    write_idx(mnist_folder / "train-images-idx3-ubyte", images)
    write_idx(mnist_folder / "train-labels-idx1-ubyte", labels)
    got, got_labels, _ = load_mnist(mnist_folder, tmp_path)
    np.testing.assert_array_equal(got, images)
    assert len(got_labels) == 40


@pytest.mark.parametrize("damage", ["garbage", "truncate", "bad_label", "another_format"])
def test_corrupt_cache_is_rebuilt(mnist_folder, tmp_path, damage):
    """A damaged cache, or one of another format (whose rows may mean something else, though its checksum
    and count hold), is rebuilt from the IDX files, never read."""
    load_mnist(mnist_folder, tmp_path)
    (cache,) = caches(tmp_path)
    raw = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(b"not a numpy file at all")
    elif damage == "truncate":
        cache.write_bytes(raw[: len(raw) // 2])
    elif damage == "bad_label":
        table = np.load(cache)
        table[0, 0] = 200
        np.save(cache, table)
    else:
        import zlib

        table = np.load(cache)
        n = len(table) - 1
        table[0, 1:] = 255 - table[0, 1:]
        trailer = b"DGCACHE1" + zlib.crc32(table[:n]).to_bytes(4, "big") + n.to_bytes(8, "big")
        table[n, : len(trailer)] = np.frombuffer(trailer, np.uint8)
        np.save(cache, table)
    images, labels, _ = load_mnist(mnist_folder, tmp_path)
    expected_images, expected_labels = make_digits()
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_unwritable_cache_folder_still_works(mnist_folder, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="cannot write the cache"):
        images, _, _ = load_mnist(mnist_folder, blocker / "cache")
    assert len(images) == 30


def _build(args):
    folder, cache = args
    images, labels, _ = load_mnist(folder, cache)
    return int(images.sum()), int(labels.sum())


def test_concurrent_builders_never_expose_a_partial_cache(tmp_path):
    images, labels = make_digits(n_per_class=300)
    folder = tmp_path / "big"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build, [(str(folder), str(tmp_path / "c"))] * 6)
    assert set(results) == {(int(images.sum()), int(labels.sum()))}
    assert len(caches(tmp_path / "c")) == 1
    assert not [p for p in os.listdir(tmp_path / "c") if p.endswith(".tmp")]


def test_the_resource_table_lists_the_four_published_files():
    mirrors, files = mnist_resources()
    assert sorted(files) == sorted(f"{kind}-{part}-idx{dims}-ubyte.gz" for kind in ("train", "t10k")
                                   for part, dims in (("images", 3), ("labels", 1)))
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in files.values())
    assert len(mirrors) == 2 and all(m.startswith("https://") and m.endswith("/") for m in mirrors)
