import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from digitgenerator import Digitgenerator
from digitgenerator.augment import Augment
from digitgenerator.cli import dataset_main
from digitgenerator.dataset import DatasetSpec, batches, export, make_items, read_manifest
from digitgenerator.png import read_png

from conftest import ROOT, needs_tf


def pngs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_ten_thousand_images_match_their_manifest(tmp_path, capsys):
    code = dataset_main(["--count", "10000", "--out", "ds", "--length", "1", "8", "--workers", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    assert [r["file"] for r in rows] == [f"{i:07d}.png" for i in range(10_000)]
    # Independent check of the digits: every box must hold, pixel for pixel, a real
    # MNIST digit with the label the manifest states.
    gen = Digitgenerator()
    label_of = {bytes(img.tobytes()): int(lab) for img, lab in zip(np.rint(gen.images * 255).astype(np.uint8), gen.labels)}
    lengths = set()
    for row in rows:
        image = np.rint(read_png(tmp_path / "ds" / row["file"]) * 255).astype(np.uint8)
        assert image.shape == (28, row["width"])
        assert len(row["boxes"]) == len(row["text"])
        lengths.add(len(row["text"]))
        for (x, w), char in zip(row["boxes"], row["text"]):
            assert w == 28 and label_of.get(image[:, x : x + w].tobytes()) == int(char)
    assert lengths == set(range(1, 9))


def test_interrupted_run_resumes_to_the_same_files(tmp_path):
    args = ["--count", "1500", "--length", "6", "8", "--rotate", "5", "--seed", "4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args, "--out", "cut"], env=env)
    manifest = tmp_path / "cut" / "manifest.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not manifest.exists() or manifest.stat().st_size < 20_000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_manifest(manifest)
    assert 0 < len(partial) < 1500, "the run was not interrupted mid-way"
    for row in partial:  # consistent at every moment: each line names a complete file
        assert read_png(tmp_path / "cut" / row["file"]).shape[1] == row["width"]
    assert dataset_main([*args, "--out", "cut"]) == 0
    assert dataset_main([*args, "--out", "whole"]) == 0
    assert pngs(tmp_path / "cut") == pngs(tmp_path / "whole")
    assert manifest.read_text() == (tmp_path / "whole" / "manifest.jsonl").read_text()
    assert [p.name for p in (tmp_path / "cut").iterdir() if p.name.startswith(".")] == []
    assert dataset_main([*args, "--out", "cut"]) == 0  # a finished job re-runs as a no-op
    assert len(read_manifest(manifest)) == 1500


def test_shards_split_the_job_without_overlap(tmp_path):
    base = ["--count", "101", "--length", "2", "3", "--seed", "9", "--no-progress"]
    assert dataset_main([*base, "--out", "all"]) == 0
    for i in range(3):
        assert dataset_main([*base, "--out", "shards", "--shard", f"{i}/3"]) == 0
    joined = "".join((tmp_path / "shards" / f"manifest-{i:05d}-of-00003.jsonl").read_text() for i in range(3))
    assert joined == (tmp_path / "all" / "manifest.jsonl").read_text()
    assert pngs(tmp_path / "shards") == pngs(tmp_path / "all")


def test_workers_do_not_change_the_result(tmp_path):
    base = ["--count", "300", "--seed", "2", "--no-progress", "--ink-spacing", "--elastic", "6", "--thickness", "1"]
    assert dataset_main([*base, "--out", "one"]) == 0
    assert dataset_main([*base, "--out", "two", "--workers", "2"]) == 0
    assert pngs(tmp_path / "one") == pngs(tmp_path / "two")


def test_other_options_reach_the_images(tmp_path):
    assert dataset_main(["--count", "20", "--out", "w", "--width", "300", "--invert", "--length", "3", "5", "--no-progress"]) == 0
    for row in read_manifest(tmp_path / "w" / "manifest.jsonl"):
        image = read_png(tmp_path / "w" / row["file"])
        assert image.shape == (28, 300) and image[0, 0] == 1.0  # white paper


def test_a_job_of_no_images_has_an_empty_manifest(tmp_path, capsys):
    for _ in range(2):  # and running it again finds it done
        assert dataset_main(["--count", "0", "--out", "none", "--no-progress"]) == 0
        assert "none/manifest.jsonl: 0 images" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["dataset.json", "manifest.jsonl"]
    assert (tmp_path / "none" / "manifest.jsonl").read_bytes() == b"" and read_manifest(tmp_path / "none" / "manifest.jsonl") == []


def test_width_0_is_the_natural_width(tmp_path):
    assert dataset_main(["--count", "6", "--out", "a", "--no-progress"]) == 0
    assert dataset_main(["--count", "6", "--out", "b", "--width", "0", "--no-progress"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(files) > 6
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--count", "5", "--length", "0", "3"], "length must be between 1"),
        (["--count", "5", "--length", "4", "2"], "length (4, 2): min is greater than max"),
        (["--count", "-1"], "--count must be between 0 and 1000000000"),
        (["--count", "5", "--source", "gan"], "invalid choice"),
        (["--count", "5", "--shard", "3/2"], "shard 3/2"),
        (["--count", "5", "--shard", "x"], "shard must look like I/N"),
        (["--count", "5", "--width", "50", "--length", "3", "3"], "width 50 cannot hold 3 digits"),
        (["--count", "5", "--rotate", "-4"], "--rotate must be >= 0, got -4"),
        (["--count", "5", "--rotate", "400"], "rotate must be between 0 and 90, got 400"),
        (["--count", "5", "--source", "cvae", "--model-dir", "nowhere"], "no CVAE model"),
    ],
)
def test_bad_options_one_line_nothing_written(tmp_path, capsys, argv, message):
    code = dataset_main([*argv, "--out", "bad"])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()


def test_a_folder_holding_another_job_is_refused(tmp_path, capsys):
    assert dataset_main(["--count", "3", "--out", "d", "--no-progress"]) == 0
    assert dataset_main(["--count", "3", "--out", "d", "--seed", "1", "--no-progress"]) == 2
    assert "holds a different dataset job" in capsys.readouterr().err


def test_a_job_of_an_older_version_with_other_defaults_names_that_version(tmp_path, capsys):
    """An older version's --realistic job (its settings without today's digit_gap) is refused, naming the version
    that can finish it; the same job, its settings unchanged, still resumes under any version."""
    import json

    from digitgenerator import __version__

    argv = ["--count", "3", "--out", "d", "--realistic", "--no-progress"]
    assert dataset_main(argv) == 0
    job_file = tmp_path / "d" / "dataset.json"
    job = json.loads(job_file.read_text())
    job["digitgenerator_version"] = "0.9.0"
    job_file.write_text(json.dumps(job))
    assert dataset_main(argv) == 0  # same settings: an older version's job of them resumes
    del job["spec"]["realistic"]["hand"]["digit_gap"]
    job_file.write_text(json.dumps(job))
    capsys.readouterr()
    assert dataset_main(argv) == 2
    err = capsys.readouterr().err
    assert f"made by digitgenerator 0.9.0, whose images this version ({__version__})" in err and "finish it with 0.9.0" in err


def test_cvae_source(tmp_path, random_model):
    spec = DatasetSpec(count=12, length=(2, 4), source="cvae", seed=1)
    manifest = export(spec, tmp_path / "c", model_dir=random_model, progress=False)
    assert len(read_manifest(manifest)) == 12


def test_batches_for_training_loops_match_the_export(tmp_path):
    spec = DatasetSpec(count=10, length=(2, 5), spacing=(1, 3), seed=5)
    gen = Digitgenerator()
    (images, labels), (rest, _) = list(batches(gen, spec, batch_size=8))
    assert images.shape == (8, 28, 5 * 28 + 4 * 3) and images.dtype == np.float32
    assert rest.shape[0] == 2
    items = make_items(gen, spec, range(8))
    for k, (image, text, _, _) in enumerate(items):
        np.testing.assert_array_equal(images[k, :, : image.shape[1]], image)
        assert "".join(str(d) for d in labels[k] if d >= 0) == text
        assert (labels[k, len(text) :] == -1).all()


@needs_tf
def test_tf_dataset_adapter():
    from digitgenerator.dataset import tf_dataset

    spec = DatasetSpec(count=6, length=(1, 3), seed=0)
    (images, labels), = [(x.numpy(), y.numpy()) for x, y in tf_dataset(Digitgenerator(), spec, batch_size=6)]
    assert images.shape == (6, 28, 3 * 28 + 2 * 4) and labels.shape == (6, 3)


def test_tf_is_not_imported_without_the_adapter():
    code = "import sys; import digitgenerator.dataset; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_augmentation_is_seeded_and_bounded():
    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = 1.0
    aug = Augment(rotate=15, shear=10, elastic=8, thickness=1)
    a = aug.apply(digit, np.random.default_rng(3))
    b = aug.apply(digit, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (28, 28) and 0 <= a.min() and a.max() <= 1 and not np.array_equal(a, digit)
    assert Augment().apply(digit, np.random.default_rng(0)) is digit  # off by default
    rotated = Augment(rotate=90).apply(digit, np.random.default_rng(0))
    assert rotated.sum() > 0.5 * digit.sum()  # the stroke is moved, not lost


@pytest.mark.parametrize("kwargs", [{"rotate": -1}, {"thickness": 1.5}, {"elastic": float("nan")}])
def test_bad_augmentation(kwargs):
    with pytest.raises(ValueError):
        Augment(**kwargs)


def test_stale_temporaries_of_dead_writers_are_cleaned(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no running process
    out = tmp_path / "d"
    out.mkdir()
    from digitgenerator.atomic import host_tag

    host = host_tag()
    stale = out / f".0000000.png~digitgenerator-{host}-{dead.pid}-1.tmp"
    alive = out / f".0000001.png~digitgenerator-{host}-{os.getpid()}-1.tmp"
    elsewhere = out / f".0000002.png~digitgenerator-{'0' * 8 if host != '0' * 8 else '1' * 8}-{dead.pid}-1.tmp"
    users = out / f".notes.{dead.pid}.tmp"  # looks like a pid-tagged temporary, but is not the tool's
    for path in (stale, alive, elsewhere, users):
        path.write_bytes(b"some bytes")
    export(DatasetSpec(count=2, length=(1, 1)), out, progress=False)
    assert not stale.exists()
    assert alive.exists() and elsewhere.exists() and users.exists()


@pytest.mark.parametrize("spacing,length", [((4, 4), (8, 8)), ((0, 9), (1, 8)), ((0, 0), (1, 1))])
def test_the_default_job_is_what_compose_makes_of_each_images_draws(spacing, length):
    from digitgenerator.compose import compose, ink_boxes
    from digitgenerator.dataset import item_rng

    gen = Digitgenerator()
    spec = DatasetSpec(count=300, length=length, spacing=spacing, seed=11)
    for index, (image, text, boxes, inked) in zip(range(300), make_items(gen, spec, range(300))):
        rng = item_rng(11, index)
        digits = rng.integers(0, 10, int(rng.integers(length[0], length[1], endpoint=True)))
        glyphs = list(gen.real_digits(digits, rng))
        want, layout = compose(glyphs, spacing, None, rng)
        assert text == "".join(map(str, digits)) and np.array_equal(image, want) and image.dtype == want.dtype
        assert boxes == [list(b) for b in layout.boxes()]
        assert inked == [list(b) for b in ink_boxes(glyphs, layout)]


def test_a_digit_without_ink_has_an_empty_ink_box_at_its_place(tmp_path):
    from digitgenerator.compose import compose, ink_boxes
    from digitgenerator.dataset import item_rng
    from digitgenerator.idx import write_idx

    from conftest import make_digits

    images, labels = make_digits()
    images[labels == 0] = 0  # every 0 is a blank page
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    gen = Digitgenerator(tmp_path, tmp_path / "cache")
    spec = DatasetSpec(count=40, length=(3, 3), seed=3)
    blanks = 0
    for index, (_, text, boxes, inked) in enumerate(make_items(gen, spec, range(spec.count))):
        rng = item_rng(3, index)
        digits = rng.integers(0, 10, int(rng.integers(3, 3, endpoint=True)))
        glyphs = list(gen.real_digits(digits, rng))
        assert inked == [list(b) for b in ink_boxes(glyphs, compose(glyphs, (4, 4), None, rng)[1])]
        for digit, (x, _), box in zip(text, boxes, inked):
            if digit == "0":
                blanks += 1
                assert box == [x, 0, 0, 0]
            else:
                assert box[2] > 0 and box[3] > 0
    assert blanks > 0


def test_the_narrowest_width_that_holds_the_digits_is_allowed():
    need = 3 * 28 + 2 * 4  # three boxes and two gaps of at least 4
    image = make_items(Digitgenerator(), DatasetSpec(count=1, length=(3, 3), width=need), range(1))[0][0]
    assert image.shape == (28, need)
    with pytest.raises(ValueError, match=f"width {need - 1} cannot hold 3 digits"):
        DatasetSpec(count=1, length=(3, 3), width=need - 1)


def test_stored_gray_is_exactly_the_float_image_rounded():
    from digitgenerator.png import to_uint8

    u = np.arange(256, dtype=np.uint8).reshape(16, 16)
    f = u.astype(np.float32) / np.float32(255)
    assert np.array_equal(to_uint8(f), u) and np.array_equal(to_uint8(f, invert=True), 255 - u)
    gen = Digitgenerator()
    for spec in (DatasetSpec(count=40, length=(1, 8)), DatasetSpec(count=40, invert=True),
                 DatasetSpec(count=40, realistic=True), DatasetSpec(count=40, width=300)):
        floats, grays = make_items(gen, spec, range(40)), make_items(gen, spec, range(40), as_uint8=True)
        for (image, text, boxes, ink), (gray, text2, boxes2, ink2) in zip(floats, grays):
            assert gray.dtype == np.uint8 and np.array_equal(gray, to_uint8(image, spec.dark_on_light))
            assert (text, boxes, ink) == (text2, boxes2, ink2)


def test_no_indices_make_no_items():
    gen = Digitgenerator()
    for spec in (DatasetSpec(count=5), DatasetSpec(count=5, realistic=True)):
        assert make_items(gen, spec, range(0)) == [] and make_items(gen, spec, [], as_uint8=True) == []


def test_batches_hold_64_images_by_default(tmp_path):
    """The documented batch size: 64 images a batch, the last one the rest."""
    spec = DatasetSpec(count=70, length=(1, 1), seed=2)
    sizes = [images.shape[0] for images, _ in batches(Digitgenerator(), spec)]
    assert sizes == [64, 6]


@needs_tf
def test_tf_dataset_batches_hold_64_images_by_default():
    from digitgenerator.dataset import tf_dataset

    spec = DatasetSpec(count=65, length=(1, 1), seed=2)
    assert [int(x.shape[0]) for x, _ in tf_dataset(Digitgenerator(), spec)] == [64, 1]


def test_stale_temporaries_of_running_writers_are_left_alone_and_counted(tmp_path):
    """A live writer's temporary stays and the writer is not disturbed; the count returned is the removed files."""
    from digitgenerator.atomic import host_tag, remove_stale_temporaries

    # A writer that any signal but the liveness probe (signal 0) would end (SIGHUP too, even under nohup).
    writer = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); time.sleep(60)"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        host = host_tag()
        live = tmp_path / f".a.png~digitgenerator-{host}-{writer.pid}-1.tmp"
        stale = [tmp_path / f".{k}.png~digitgenerator-{host}-{dead.pid}-{k}.tmp" for k in range(3)]
        for path in (live, *stale):
            path.write_bytes(b"x")
        assert remove_stale_temporaries(tmp_path) == 3
        assert live.exists() and not any(p.exists() for p in stale)
        assert remove_stale_temporaries(tmp_path) == 0
        assert writer.poll() is None, "the live writer was signalled"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()


def test_temporary_names_keep_80_characters_of_the_target():
    """A 255-byte name (the longest most file systems take) still has a valid temporary, recognisably its own."""
    from digitgenerator.atomic import MAX_STEM, temp_name

    assert MAX_STEM == 80
    name = "n" * 79 + "xyz" + "q" * 173
    tmp = os.path.basename(temp_name(os.path.join("folder", name)))
    assert tmp.startswith("." + "n" * 79 + "x~digitgenerator-")
    assert len(tmp.encode()) <= 255


def test_progress_is_a_line_per_tenth_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    """Without --no-progress a job reports on stderr: one line per 10% reached (stderr is captured, not a
    terminal), each a 30-character bar filled in proportion, the count done and the rate. On a terminal,
    one line rewritten in place, ended when the job is."""
    import re

    bar = r"\[(#*)(\.*)\] (\d+)/{} images, [\d,]+/s"
    monkeypatch.chdir(tmp_path)
    assert dataset_main(["--count", "1000", "--out", "d", "--length", "1", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "note: no MNIST files" not in line]
    parsed = [re.fullmatch(bar.format(1000), line) for line in err]
    assert all(parsed), err
    done = [int(m.group(3)) for m in parsed]
    assert [10 * d // 1000 for d in done] == list(range(11)) and done[-1] == 1000
    assert all(len(m.group(1)) == 30 * d // 1000 and len(m.group(1) + m.group(2)) == 30 for m, d in zip(parsed, done))
    assert dataset_main(["--count", "1", "--out", "one", "--length", "1", "1"]) == 0  # even a job of one image
    err = [line for line in capsys.readouterr().err.splitlines() if "note: no MNIST files" not in line]
    assert len(err) == 1 and re.fullmatch(bar.format(1), err[0]) and err[0].startswith("[" + "#" * 30 + "] 1/1")

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert dataset_main(["--count", "100", "--out", "e", "--length", "1", "1"]) == 0
    lines = capsys.readouterr().err.split("\n")
    drawn = [line for line in lines if line.startswith("\r[")]
    assert len(drawn) == 1 and all("\r" not in line for line in lines if line not in drawn)
    frames = [re.fullmatch(bar.format(100), frame) for frame in drawn[0].split("\r")[1:]]
    assert all(frames) and [int(m.group(3)) for m in frames] == [64, 100] and frames[-1].group(2) == ""
