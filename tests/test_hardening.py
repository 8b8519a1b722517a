"""Hostile inputs and faults: each gives one clear error in seconds, never a hang, a blow-up or a wrong result."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, make_digits, write_random_model
from digitgenerator import Digitgenerator
from digitgenerator.atomic import host_tag
from digitgenerator.cli import dataset_main, main
from digitgenerator.compose import MAX_WIDTH, plan_layout
from digitgenerator.data import cache_path, load_mnist, locate_mnist, resolve_cache_folder
from digitgenerator.dataset import DatasetSpec
from digitgenerator.idx import encode_idx, read_idx, write_idx
from digitgenerator.model import CONFIG_FILE, DEFAULT_CONFIG, WEIGHTS_FILE, Vae


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# ----------------------------------------------------------------------------- 1. sizes


@pytest.mark.parametrize(
    "args, message",
    [
        (["--digits", "1", "2", "--spacing", "0", "100000000", "--width", "300"], "spacing must be between 0 and 500000"),
        (["--digits", "1", "2", "3", "--spacing", "300000", "300000"], "the limit is 500000"),
        (["--digits", "1", "--width", "1000000000"], "--width must be between"),
    ],
)
def test_huge_sizes_are_refused_at_once(tmp_path, capsys, args, message):
    start = time.monotonic()
    assert main([*args, "--outfile", str(tmp_path / "x.png")]) == 2
    assert message in one_line(capsys)
    assert time.monotonic() - start < 5 and not (tmp_path / "x.png").exists()


def test_huge_sizes_through_the_api():
    gen = Digitgenerator(seed=0)
    with pytest.raises(ValueError, match="image_width .* must be between 0 and 500000"):
        gen.draw_from_mnist([1], image_width=10**9)
    with pytest.raises(ValueError, match="spacing_range max must be between 0 and 500000"):
        gen.draw_from_mnist([1, 2], (0, 10**9))


def test_exact_width_with_a_huge_spacing_range_is_fast():
    start = time.monotonic()
    layout = plan_layout([28] * 20, (0, MAX_WIDTH), 5000, np.random.default_rng(0))
    assert time.monotonic() - start < 1
    assert layout.canvas == 5000 and layout.offsets[-1] + 28 == 5000


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(0, 50), st.integers(0, 60), st.integers(0, 2**31), st.data())
def test_exact_spacings_fill_the_width_within_the_range(n, lo, extra, seed, data):
    hi = lo + extra
    gaps = n - 1
    width = data.draw(st.integers(28 * n + gaps * lo, 28 * n + gaps * hi))
    layout = plan_layout([28] * n, (lo, hi), width, np.random.default_rng(seed))
    spaces = np.diff(layout.offsets) - 28
    assert layout.canvas == width == layout.offsets[-1] + 28
    assert np.all((spaces >= lo) & (spaces <= hi))


def test_exact_spacings_are_random_not_fixed():
    seen = {tuple(np.diff(plan_layout([28] * 5, (0, 20), 28 * 5 + 40, np.random.default_rng(s)).offsets)) for s in range(30)}
    assert len(seen) > 10


# ----------------------------------------------------------------------------- 2. counts


def test_an_absurd_count_is_refused_before_anything_is_written(tmp_path, capsys):
    assert dataset_main(["--count", "1000000000000", "--out", str(tmp_path / "d")]) == 2
    assert "--count must be between" in one_line(capsys)
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="count"):
        DatasetSpec(count=10**12)


def test_a_billion_image_job_starts_writing_at_once_in_little_memory(tmp_path):
    # Listing a billion indices up front takes tens of GB; streaming them takes nothing.
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
        "from digitgenerator.cli import dataset_main; sys.exit(dataset_main(sys.argv[1:]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "--count", "1000000000", "--out", "big", "--no-progress",
                             "--length", "1", "1"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.PIPE)
    manifest = tmp_path / "big" / "manifest.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not manifest.exists() or manifest.stat().st_size < 1000) and proc.poll() is None:
        time.sleep(0.05)
    alive = proc.poll() is None
    proc.kill()
    _, err = proc.communicate()
    assert alive, err.decode()
    assert manifest.stat().st_size >= 1000


# ----------------------------------------------------------------------------- 3. IDX and gzip


@pytest.fixture
def good_gz():
    return gzip.compress(encode_idx(np.zeros((3, 28, 28), np.uint8)), mtime=0)


def corruptions(good: bytes) -> dict[str, bytes]:
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    crc = bytearray(good)
    crc[-6] ^= 0x01  # the CRC-32 in the gzip trailer
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    header = encode_idx(np.zeros((1, 28, 28), np.uint8))
    bomb_bytes = bomb.compress(header) + bomb.compress(b"\0" * (64 << 20)) + bomb.flush()
    huge = b"\0\0\x08\x03" + (2**31).to_bytes(4, "big") * 2 + (28).to_bytes(4, "big")
    return {
        "truncated": good[: len(good) // 2],
        "flipped byte": bytes(flipped),
        "bad checksum": bytes(crc),
        "bomb": bomb_bytes,
        "overflowing dimensions": gzip.compress(huge + b"\0" * 64),
        "truncated header": gzip.compress(b"\0\0\x08\x03\0\0"),
    }


@pytest.mark.parametrize("kind", ["truncated", "flipped byte", "bad checksum", "bomb", "overflowing dimensions", "truncated header"])
def test_corrupt_gzip_is_a_value_error_naming_the_file(tmp_path, good_gz, kind):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(corruptions(good_gz)[kind])
    start = time.monotonic()
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        read_idx(path)
    assert time.monotonic() - start < 2, "a bomb must not be inflated whole"


def test_corrupt_mnist_folder_gives_one_line_on_the_command_line(tmp_path, capsys, good_gz):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(corruptions(good_gz)["flipped byte"])
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    assert main(["--digits", "1", "--mnist-folder", str(folder), "--outfile", str(tmp_path / "x.png")]) == 2
    assert "train-images-idx3-ubyte.gz" in one_line(capsys)
    labels = gzip.compress(b"\0\0\x08\x01" + b"\0\0\0\x05" + b"\1\2", mtime=0)  # header says 5, file holds 2
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    assert main(["--digits", "1", "--mnist-folder", str(folder), "--outfile", str(tmp_path / "x.png")]) == 2
    assert "train-labels-idx1-ubyte.gz" in one_line(capsys)


def test_zero_images_is_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte holds no images"):
        Digitgenerator(folder, tmp_path / "cache")


# ----------------------------------------------------------------------------- 4. cache


@pytest.fixture
def cached(mnist_folder, tmp_path):
    load_mnist(mnist_folder, tmp_path / "cache")
    return cache_path(locate_mnist(mnist_folder), resolve_cache_folder(tmp_path / "cache"))


@pytest.mark.parametrize("offset", list(range(0, 128, 7)))
def test_a_damaged_cache_header_is_rebuilt(mnist_folder, tmp_path, cached, offset):
    raw = bytearray(cached.read_bytes())
    raw[offset] ^= 0x5A
    cached.write_bytes(bytes(raw))
    images, labels, _ = load_mnist(mnist_folder, tmp_path / "cache")
    truth_images, truth_labels = make_digits()
    np.testing.assert_array_equal(labels, truth_labels)
    np.testing.assert_array_equal(images, truth_images)


@pytest.mark.parametrize("row, column", [(0, 0), (7, 0), (29, 0), (12, 300)])
def test_a_flipped_label_or_pixel_in_the_cache_is_noticed(mnist_folder, tmp_path, cached, row, column):
    table = np.load(cached)
    table[row, column] ^= 0x01
    with open(cached, "wb") as f:
        np.save(f, table)
    images, labels, _ = load_mnist(mnist_folder, tmp_path / "cache")
    truth_images, truth_labels = make_digits()
    np.testing.assert_array_equal(labels, truth_labels)
    np.testing.assert_array_equal(images, truth_images)


# ----------------------------------------------------------------------------- 5. model files


@pytest.mark.parametrize(
    "change, message",
    [
        ({"latent_dim": "16"}, "latent_dim"),
        ({"latent_dim": None}, "latent_dim"),
        ({"sharpness": float("nan")}, "sharpness"),
        ({"sharpness": None}, "sharpness"),
        ({"hidden_units": 10**9}, "hidden_units"),
        ({"conv_channels": [32]}, "conv_channels"),
        ({"kernel_size": 2.5}, "kernel_size"),
    ],
)
def test_a_bad_model_config_names_the_key(tmp_path, change, message):
    folder = write_random_model(tmp_path / "m")
    config = {**json.loads((folder / CONFIG_FILE).read_text()), **change}
    (folder / CONFIG_FILE).write_text(json.dumps(config).replace("NaN", "NaN"))
    with pytest.raises(ValueError, match=message):
        Vae(folder)


def test_a_bad_model_config_is_one_line_on_the_command_line(tmp_path, capsys):
    folder = write_random_model(tmp_path / "m")
    (folder / CONFIG_FILE).write_text(json.dumps({**DEFAULT_CONFIG, "sharpness": float("nan")}))
    assert main(["--digits", "1", "--cvae", "1", "--model-dir", str(folder), "--outfile", str(tmp_path / "x.png")]) == 2
    assert "sharpness" in one_line(capsys)


def _npz_member_header(shape) -> bytes:
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    return np.lib.format.magic(1, 0) + _pad_header(repr(header))


def _pad_header(text: str) -> bytes:
    text = text + " " * ((64 - (len(text) + 11) % 64) % 64) + "\n"
    return len(text).to_bytes(2, "little") + text.encode()


def test_an_npz_member_declaring_a_huge_shape_is_refused_from_its_header(tmp_path):
    import zipfile

    folder = write_random_model(tmp_path / "m")
    path = folder / WEIGHTS_FILE
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["latent_mean/kernel.npy"] = _npz_member_header((2**20, 2**20)) + b"\0" * 64
    members["unused.npy"] = _npz_member_header((2**30, 2**30)) + b"\0" * 64  # never read
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    start = time.monotonic()
    with pytest.raises(ValueError, match="latent_mean/kernel has shape"):
        Vae(folder)
    assert time.monotonic() - start < 2


def test_an_unused_member_is_never_read(tmp_path):
    import zipfile

    folder = write_random_model(tmp_path / "m")
    with zipfile.ZipFile(folder / WEIGHTS_FILE, "a") as z:
        z.writestr("huge_unused.npy", _npz_member_header((2**30, 2**30)) + b"\0" * 64)
    vae = Vae(folder)
    assert vae.sample([1, 2], np.random.default_rng(0)).shape == (2, 28, 28)


# ----------------------------------------------------------------------------- 6. dataset folders


def test_a_second_exporter_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "d"
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    with open(out / ".manifest.jsonl.lock", "a+") as lock:  # as a running exporter holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 2
        assert "another digitgenerator-dataset is writing" in one_line(capsys)
    before = (out / "manifest.jsonl").read_text()
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 0
    assert (out / "manifest.jsonl").read_text() == before and len(before.splitlines()) == 4


def test_two_exporters_started_together_never_duplicate_lines(tmp_path):
    code = "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main(sys.argv[1:]))"
    args = [sys.executable, "-c", code, "--count", "400", "--out", "d", "--no-progress", "--length", "3", "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
    assert sorted(p.returncode for p in procs) in ([0, 0], [0, 2])
    assert dataset_main(["--count", "400", "--out", str(tmp_path / "d"), "--no-progress", "--length", "3", "3"]) == 0
    files = [json.loads(line)["file"] for line in (tmp_path / "d" / "manifest.jsonl").read_text().splitlines()]
    assert files == [f"{i:07d}.png" for i in range(400)]


@pytest.mark.parametrize("line", ["not json at all", '{"text": "12"}', "[1, 2]"])
def test_a_hand_edited_manifest_line_is_one_clear_line(tmp_path, capsys, line):
    out = tmp_path / "d"
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 0
    with open(out / "manifest.jsonl", "a") as f:
        f.write(line + "\n")
    assert dataset_main(["--count", "6", "--out", str(out), "--no-progress"]) == 2  # another job: refused first
    capsys.readouterr()
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 2
    assert "manifest.jsonl line 5 is not a manifest row" in one_line(capsys)


def test_a_damaged_job_file_is_one_clear_line(tmp_path, capsys):
    out = tmp_path / "d"
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    (out / "dataset.json").write_text("{broken")
    assert dataset_main(["--count", "4", "--out", str(out), "--no-progress"]) == 2
    assert "dataset.json is not a digitgenerator job file" in one_line(capsys)


def test_a_users_folder_is_not_adopted(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "0000003.png").write_bytes(b"my own picture")
    assert dataset_main(["--count", "5", "--out", str(out), "--no-progress"]) == 2
    assert "not a dataset job" in one_line(capsys)
    assert (out / "0000003.png").read_bytes() == b"my own picture"
    assert sorted(p.name for p in out.iterdir()) == ["0000003.png"]


@pytest.mark.parametrize("where, message", [("afile", "afile is a file, not a folder"),
                                             ("afile/sub", "afile/sub cannot be made: ")])
@pytest.mark.parametrize("command", ["dataset", "train"])
def test_a_file_in_place_of_the_output_folder_is_one_clear_line(tmp_path, capsys, where, message, command):
    from digitgenerator.cli import train_main

    (tmp_path / "afile").write_bytes(b"mine")
    if command == "dataset":  # checked before any digit is made or TensorFlow imported
        assert dataset_main(["--count", "3", "--out", str(tmp_path / where), "--no-progress"]) == 2
    else:
        assert train_main(["--epochs", "1", "--out-dir", str(tmp_path / where)]) == 2
    err = one_line(capsys)
    assert message in err and "Errno" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_bytes() == b"mine"


def test_the_api_refuses_a_file_for_a_folder_before_any_work(tmp_path):
    from digitgenerator.dataset import DatasetSpec
    from digitgenerator.export import export
    from digitgenerator.train import train_cvae

    (tmp_path / "afile").write_bytes(b"mine")
    with pytest.raises(ValueError, match="out_dir .*afile/q cannot be made: .*afile is a file"):
        export(DatasetSpec(count=2), tmp_path / "afile" / "q")
    with pytest.raises(ValueError, match="out_dir .*afile is a file, not a folder"):  # before TensorFlow is imported
        train_cvae(np.zeros((4, 28, 28), np.uint8), np.arange(4), tmp_path / "afile", epochs=1, batch_size=2)
    for bad in ("", 3):
        with pytest.raises(ValueError, match="out_dir must be a folder path"):
            export(DatasetSpec(count=2), bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ----------------------------------------------------------------------------- 7. output names


def test_a_255_byte_file_name_is_written(tmp_path):
    name = "a" * 251 + ".png"
    assert main(["--digits", "1", "--outfile", str(tmp_path / name)]) == 0
    assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob(".*")), "no temporary left behind"


def test_a_short_write_is_continued_and_a_failed_one_leaves_nothing(tmp_path, monkeypatch):
    """os.write may write less than asked (a signal, a full pipe of a FUSE file system): the rest
    follows; when writing fails, neither the file nor its temporary is left."""
    from digitgenerator import atomic

    data = os.urandom(10_000)
    real_write = os.write
    monkeypatch.setattr(atomic.os, "write", lambda fd, b: real_write(fd, bytes(b[:777])))
    atomic.atomic_write_bytes(tmp_path / "a.bin", data)
    assert (tmp_path / "a.bin").read_bytes() == data

    def full(fd, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        atomic.atomic_write_bytes(tmp_path / "b.bin", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_written_files_have_the_modes_of_any_new_file(tmp_path):
    """rw for whom the umask allows, never executable: what open(path, "wb") would have made."""
    old = os.umask(0o022)
    try:
        assert main(["--digits", "1", "--outfile", str(tmp_path / "x.png")]) == 0
        assert dataset_main(["--count", "1", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "x.png", tmp_path / "d" / "manifest.jsonl", *(tmp_path / "d").glob("*.png")):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_an_outfile_that_is_a_folder_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "out.png").mkdir()
    assert main(["--random", "5", "--cvae", "1", "--outfile", str(tmp_path / "out.png")]) == 2
    assert "is an existing folder" in one_line(capsys)


def test_save_latest_as_png_with_no_name_is_a_value_error():
    gen = Digitgenerator(seed=0)
    gen.draw_from_mnist([1])
    with pytest.raises(ValueError, match="must be a path ending in .png"):
        gen.save_latest_as_png(None)


def test_a_killed_generate_png_leaves_no_temporary_behind(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f".x.png~digitgenerator-{host_tag()}-{dead.pid}-1.tmp"
    leftover.write_bytes(b"half a png")
    users = tmp_path / f".draft.{dead.pid}.tmp"
    users.write_bytes(b"mine")
    assert main(["--digits", "1", "--outfile", str(tmp_path / "x.png")]) == 0
    assert not leftover.exists() and users.exists()


# ----------------------------------------------------------------------------- 9. API values


def test_style_of_a_nan_image_is_refused(random_model):
    gen = Digitgenerator(model_dir=random_model)
    image = np.full((28, 28), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one clear error, no numpy warning on the way
        with pytest.raises(ValueError, match=r"\(28, 28\) array in \[0, 1\].*none finite, with NaN"):
            gen.style_of(image, 3)
    image[0, 0] = 2.0
    with pytest.raises(ValueError, match=r"values 2.0..2.0, with NaN"):
        gen.style_of(image, 3)
    with pytest.raises(ValueError, match="28, 28"):
        gen.style_of(np.zeros((5, 5)), 3)


@pytest.mark.parametrize("value", [1e38, -1e6, np.inf, np.nan])
def test_an_extreme_style_is_refused(random_model, value):
    gen = Digitgenerator(model_dir=random_model)
    with pytest.raises(ValueError, match="within"):
        gen.sample_from_vae([1, 2], style=np.full(16, value))
    fine = gen.sample_from_vae([1, 2], style=np.full(16, 3.0))
    assert np.all(np.isfinite(fine))


# ----------------------------------------------------------------------------- what the mutation run found


@pytest.mark.parametrize("code, dtype", [(0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")])
def test_every_idx_type_reads_back_its_values(tmp_path, code, dtype):
    values = np.array([[-3, 7, 100], [0, 1, -128]]).astype(dtype)
    raw = bytes([0, 0, code, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + values.tobytes()
    (tmp_path / "x.idx").write_bytes(raw)
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(raw))
    for name in ("x.idx", "x.idx.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), values.astype(np.dtype(dtype).newbyteorder("=")))


def test_a_header_over_the_size_limit_says_so(tmp_path):
    labels = b"\0\0\x08\x01" + (2**31 + 100).to_bytes(4, "big")  # 2 GiB and a bit: over the limit, under 3**31
    (tmp_path / "l.gz").write_bytes(gzip.compress(labels + b"\0" * 10))
    with pytest.raises(ValueError, match="over the .* limit"):
        read_idx(tmp_path / "l.gz")


@pytest.mark.parametrize("content", [b"\0\0\x08", b"\0\0\x08\x01\0", b"\0\0\x08\x03\0\0\0\x05"])
def test_a_truncated_label_header_is_a_value_error(tmp_path, content):
    folder = tmp_path / "m"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    (folder / "train-labels-idx1-ubyte").write_bytes(content)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        Digitgenerator(folder, tmp_path / "cache")


def test_images_of_another_size_and_labels_past_nine_are_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((5, 20, 20), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected uint8 images of 28x28"):
        Digitgenerator(folder, tmp_path / "cache")
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.array([1, 2, 10, 3, 4], np.uint8))
    with pytest.raises(ValueError, match="label 10 is not a digit"):
        Digitgenerator(folder, tmp_path / "cache")


def test_a_nested_cache_folder_is_created(tmp_path, mnist_folder):
    cache = tmp_path / "a" / "b" / "c"
    Digitgenerator(mnist_folder, cache)
    assert len(list(cache.glob("digitgenerator-mnist-*.npy"))) == 1


@pytest.mark.parametrize("shape", [(2, 3, 4), (0, 5), (5,)])
def test_only_non_empty_2d_images_are_written(tmp_path, shape):
    from digitgenerator.png import write_png

    with pytest.raises(ValueError, match="non-empty 2-D image"):
        write_png(tmp_path / "x.png", np.zeros(shape, np.float32))
    assert not (tmp_path / "x.png").exists()


def test_stretched_boxes_are_scaled_to_the_final_width():
    gen = Digitgenerator(seed=0)
    image = gen.draw_from_mnist([1, 2, 3], (4, 4), 60, fit="stretch")
    scale = 60 / (3 * 28 + 2 * 4)
    assert image.shape == (28, 60)
    assert gen.latest_layout.boxes() == [(round(k * 32 * scale), round(28 * scale)) for k in range(3)]


def test_a_blank_digit_has_an_empty_ink_box(tmp_path):
    folder = tmp_path / "blank"
    folder.mkdir()
    images, labels = make_digits(1)
    images[labels == 5] = 0  # the 5 is a blank page
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    out = tmp_path / "d"
    assert dataset_main(["--count", "40", "--out", str(out), "--mnist-folder", str(folder), "--length", "3", "3",
                         "--width", "200", "--stretch", "--no-progress"]) == 0
    seen = 0
    for line in (out / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        for digit, (bx, bw), (x, y, w, h) in zip(row["text"], row["boxes"], row["ink_boxes"]):
            if digit == "5":
                assert (w, h, y) == (0, 0, 0) and x == bx
                seen += 1
            else:
                assert w > 0 and h > 0 and bx <= x < bx + bw
    assert seen > 0


def test_out_of_range_values_are_clipped_not_wrapped(tmp_path):
    from digitgenerator.png import read_png, write_png

    write_png(tmp_path / "c.png", np.array([[1.5, -0.5, 0.5, 1.0]], np.float32))
    assert (np.rint(read_png(tmp_path / "c.png") * 255).astype(int) == [[255, 0, 128, 255]]).all()


def test_a_name_over_255_bytes_is_refused_up_front(tmp_path, capsys):
    assert main(["--digits", "1", "--outfile", str(tmp_path / ("b" * 252 + ".png"))]) == 2
    assert "longer than 255 bytes" in one_line(capsys)


def test_an_npz_member_of_integers_is_refused(tmp_path):
    folder = write_random_model(tmp_path / "m")
    with np.load(folder / WEIGHTS_FILE) as npz:
        weights = {k: npz[k] for k in npz.files}
    weights["latent_mean/bias"] = weights["latent_mean/bias"].astype(np.int32)
    np.savez(folder / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match="latent_mean/bias holds int32, not floats"):
        Vae(folder)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.integer(-1, "count", low=0), "count must be >= 0, got -1"),
        (lambda c: c.integer(7, "digits", high=5), "digits must be <= 5, got 7"),
        (lambda c: c.integer(9, "length", 1, 8), "length must be between 1 and 8, got 9"),
        (lambda c: c.number(-0.5, "blur", low=0.0), "blur must be >= 0, got -0.5"),
        (lambda c: c.number(float("nan"), "blur", high=1.0), "blur must be a finite number <= 1"),
        (lambda c: c.seed(2**128), "seed must be between 0 and"),
        (lambda c: c.seed(-1), "seed must be between 0 and"),
    ],
)
def test_bound_errors_name_the_value_and_the_bounds_that_apply(call, message):
    from digitgenerator import checks

    with pytest.raises(ValueError, match=re.escape(message)):
        call(checks)


def test_the_largest_seed_numpy_takes_is_accepted():
    from digitgenerator import checks

    assert checks.seed(2**128 - 1) == 2**128 - 1
    np.random.default_rng(checks.seed(2**128 - 1))
