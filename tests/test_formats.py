"""--format webdataset: tar shards read back by the real webdataset and Hugging Face readers; jobs know their digits."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from digitgenerator import Digitgenerator
from digitgenerator.cli import dataset_main
from digitgenerator.dataset import DatasetSpec, export, make_items, read_manifest
from digitgenerator.formats import tar_header
from digitgenerator.png import read_png

from conftest import ROOT, write_random_model

ARGS = ["--length", "2", "5", "--seed", "3", "--no-progress"]


def run(*args):
    return dataset_main([*args, *ARGS])


def tar_samples(folder):
    """{key: (png bytes, json dict)} over every shard, in member order, and the member names per shard."""
    samples, names = {}, {}
    for path in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            names[path.name] = [m.name for m in members]
            for m in members:
                key, ext = m.name.split(".")
                data = tar.extractfile(m).read()
                png, meta = samples.get(key, (None, None))
                samples[key] = (data, meta) if ext == "png" else (png, json.loads(data))
    return samples, names


@pytest.mark.parametrize("name,size", [("0000000.png", 0), ("1234567.json", 297), ("x" * 99, 8**11 - 1)])
def test_tar_headers_are_the_ones_tarfile_writes(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    assert tar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT)


def test_what_a_ustar_header_cannot_hold_is_refused():
    """A size past the 11 octal digits of the size field, as tarfile refuses it; a name of 100 bytes or
    more (the field holds 100, and the names written here are always NUL-terminated)."""
    info = tarfile.TarInfo("a.png")
    info.size, info.mode, info.mtime = 8**11, 0o644, 0
    with pytest.raises(ValueError):
        info.tobuf(tarfile.USTAR_FORMAT)
    for name, size in (("a.png", 8**11), ("x" * 100, 0)):
        with pytest.raises(ValueError, match="does not fit a ustar header"):
            tar_header(name, size)


def test_shards_hold_every_image_once_with_its_label_and_boxes(tmp_path, capsys):
    assert run("--count", "45", "--out", "wd", "--format", "webdataset", "--shard-size", "20") == 0
    assert "3 tar shards" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "wd").iterdir()) == [
        "dataset.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    samples, names = tar_samples(tmp_path / "wd")
    # Members of one sample follow each other (png, then json), shards hold consecutive indices.
    assert names["shard-000002.tar"] == [f"{i:07d}.{ext}" for i in range(40, 45) for ext in ("png", "json")]
    assert sorted(samples) == [f"{i:07d}" for i in range(45)]
    # The same pixels and rows as the PNG format of the same job.
    assert run("--count", "45", "--out", "png") == 0
    rows = {r["file"][:-4]: r for r in read_manifest(tmp_path / "png" / "manifest.jsonl")}
    for key, (png, meta) in samples.items():
        (tmp_path / "x.png").write_bytes(png)
        assert np.array_equal(read_png(tmp_path / "x.png"), read_png(tmp_path / "png" / f"{key}.png"))
        assert {**meta, "file": f"{key}.png"} == rows[key]


def test_the_webdataset_package_reads_the_shards(tmp_path):
    wds = pytest.importorskip("webdataset")
    assert run("--count", "30", "--out", "wd", "--format", "webdataset", "--shard-size", "8") == 0
    urls = [str(p) for p in sorted((tmp_path / "wd").glob("shard-*.tar"))]
    read = list(wds.WebDataset(urls, shardshuffle=False).decode("l").to_tuple("__key__", "png", "json"))
    items = make_items(Digitgenerator(), DatasetSpec(count=30, length=(2, 5), seed=3), range(30))
    assert [key for key, _, _ in read] == [f"{i:07d}" for i in range(30)]
    for (key, image, meta), (want, text, boxes, _) in zip(read, items):
        assert meta["text"] == text and meta["boxes"] == boxes
        assert np.array_equal(np.rint(image * 255), np.rint(want * 255))


def test_hugging_face_datasets_loads_the_shards(tmp_path):
    datasets = pytest.importorskip("datasets")
    assert run("--count", "25", "--out", "wd", "--format", "webdataset", "--shard-size", "10") == 0
    files = [str(p) for p in sorted((tmp_path / "wd").glob("shard-*.tar"))]
    data = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf"))
    assert data.num_rows == 25
    items = make_items(Digitgenerator(), DatasetSpec(count=25, length=(2, 5), seed=3), range(25))
    for row, (image, text, _, inked) in zip(data, items):
        assert row["json"]["text"] == text and row["json"]["ink_boxes"] == inked
        assert row["png"].size == (image.shape[1], image.shape[0])
        assert np.array_equal(np.asarray(row["png"]), np.rint(image * 255).astype(np.uint8))


def test_a_killed_run_resumes_shard_by_shard_to_the_same_bytes(tmp_path):
    args = ["--count", "3000", "--length", "6", "8", "--format", "webdataset", "--shard-size", "250", "--seed", "5", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args, "--out", "cut"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "cut").glob("shard-*.tar"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cut").glob("shard-*.tar")}
    assert 2 <= len(done) < 12, "the run was not interrupted mid-way"
    assert dataset_main([*args, "--out", "cut"]) == 0
    assert all((tmp_path / "cut" / name).stat().st_mtime_ns == t for name, t in done.items())  # kept, not redone
    assert dataset_main([*args, "--out", "whole"]) == 0
    listing = lambda d: {p.name: p.read_bytes() for p in (tmp_path / d).iterdir()}  # noqa: E731
    assert listing("cut") == listing("whole")  # and no temporary file left behind


@pytest.mark.parametrize("format", ["png", "webdataset"])
def test_a_resumed_job_counts_on_from_what_is_written(tmp_path, capsys, format):
    """The progress of a resumed job starts at the images already there and ends at the job's count."""
    import re

    args = ["--count", "40", "--length", "1", "2", "--format", format, *(["--shard-size", "10"] if format == "webdataset" else [])]
    assert dataset_main([*args, "--out", "d", "--no-progress"]) == 0
    if format == "webdataset":
        (tmp_path / "d" / "shard-000002.tar").unlink()  # one shard of ten to make again
    else:
        manifest = tmp_path / "d" / "manifest.jsonl"
        manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:30]))  # ten rows to make again
    capsys.readouterr()
    assert dataset_main([*args, "--out", "d"]) == 0
    counts = [int(m.group(1)) for m in re.finditer(r"\] (\d+)/40 images", capsys.readouterr().err)]
    assert counts and counts[0] > 30 and counts[-1] == 40


def test_shard_option_splits_the_tar_shards_between_machines(tmp_path):
    for i in range(3):
        assert run("--count", "70", "--out", "parts", "--format", "webdataset", "--shard-size", "10", "--shard", f"{i}/3") == 0
    assert run("--count", "70", "--out", "whole", "--format", "webdataset", "--shard-size", "10") == 0
    tars = lambda d: {p.name: p.read_bytes() for p in (tmp_path / d).glob("*.tar")}  # noqa: E731
    assert len(tars("whole")) == 7 and tars("parts") == tars("whole")


def test_resuming_in_another_format_or_shard_size_is_refused(tmp_path, capsys):
    assert run("--count", "20", "--out", "wd", "--format", "webdataset", "--shard-size", "10") == 0
    capsys.readouterr()
    assert run("--count", "20", "--out", "wd", "--format", "webdataset", "--shard-size", "5") == 2
    assert run("--count", "20", "--out", "wd") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("another format" in line for line in err)
    assert sorted(p.name for p in (tmp_path / "wd").glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]


@pytest.mark.parametrize("bad,message", [
    (["--format", "tiff"], "invalid choice"),
    (["--format", "webdataset", "--shard-size", "0"], "--shard-size"),
    (["--format", "webdataset", "--shard-size", "1000001"], "--shard-size"),
    (["--shard-size", "10"], "applies to --format webdataset"),
    (["--shard-size", "10000"], "applies to --format webdataset"),  # even the default size, when given
    (["--dask", "nonsense"], "--dask must be"),
    (["--dask", "http://127.0.0.1:8786"], "--dask must be"),
    (["--dask", "local", "--shard", "0/2"], "leave out --shard"),
])
def test_bad_format_options_give_one_line(tmp_path, capsys, bad, message):
    assert dataset_main(["--count", "5", "--out", "x", *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("shard", [[], ["--shard", "0/1"]])
def test_dask_takes_the_whole_job(tmp_path, monkeypatch, shard):
    """--dask with no --shard, or the whole job's 0/1, reaches export (a stand-in here: no cluster is started)."""
    from digitgenerator import dataset

    calls = []

    def fake_export(spec, out, shard, *args, dask=None, **kwargs):
        calls.append((spec.count, shard, dask))
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text("{}\n" * spec.count)
        return manifest

    monkeypatch.setattr(dataset, "export", fake_export)
    assert dataset_main(["--count", "3", "--out", "x", "--dask", "local", *shard]) == 0
    assert calls == [(3, (0, 1), "local")]


def test_a_job_refuses_other_mnist_data_and_resumes_with_the_same(tmp_path, mnist_folder, capsys):
    assert run("--count", "10", "--out", "ds", "--mnist-folder", str(mnist_folder)) == 0
    job = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert job["digits"]["images_sha256"] and job["digits"]["embedded_sample"] is False
    capsys.readouterr()
    assert run("--count", "10", "--out", "ds") == 2  # the embedded sample instead of those files
    err = capsys.readouterr().err
    assert "another MNIST data" in err and len(err.strip().splitlines()) == 1
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in mnist_folder.iterdir():  # the same files elsewhere are the same digits
        (copy / f.name).write_bytes(f.read_bytes())
    assert run("--count", "12", "--out", "ds2", "--mnist-folder", str(mnist_folder)) == 0
    assert run("--count", "12", "--out", "ds2", "--mnist-folder", str(copy)) == 0


def test_a_cvae_job_refuses_another_model(tmp_path, capsys):
    one, two = write_random_model(tmp_path / "one", seed=0), write_random_model(tmp_path / "two", seed=1)
    base = ["--count", "6", "--out", "cv", "--source", "cvae"]
    assert run(*base, "--model-dir", str(one)) == 0
    capsys.readouterr()
    assert run(*base, "--model-dir", str(two)) == 2
    assert "another CVAE model" in capsys.readouterr().err
    assert run(*base, "--model-dir", str(one)) == 0


def test_job_files_from_before_digit_sources_still_resume(tmp_path):
    spec = DatasetSpec(count=8, length=(2, 3))
    export(spec, tmp_path / "old", progress=False)
    job_path = tmp_path / "old" / "dataset.json"
    job = json.loads(job_path.read_text())
    del job["digits"], job["output"]
    job_path.write_text(json.dumps(job))
    export(DatasetSpec(count=8, length=(2, 3)), tmp_path / "old", progress=False)
    assert len(read_manifest(tmp_path / "old" / "manifest.jsonl")) == 8


def test_a_shard_is_byte_for_byte_the_archive_tarfile_writes(tmp_path):
    import io
    import zlib

    assert run("--count", "7", "--out", "wd", "--format", "webdataset") == 0
    shard = (tmp_path / "wd" / "shard-000000.tar").read_bytes()
    samples, _ = tar_samples(tmp_path / "wd")
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, (png, meta) in sorted(samples.items()):
            for name, data in ((f"{key}.png", png), (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    assert shard == reference.getvalue()
    # Each PNG is gray 8-bit with one IDAT: zlib's run-length strategy over filter-0 rows.
    png = samples["0000000"][0]
    pixels = np.rint(read_png_bytes(tmp_path, png) * 255).astype(np.uint8)
    rows = np.hstack([np.zeros((pixels.shape[0], 1), np.uint8), pixels]).tobytes()
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    idat = packer.compress(rows) + packer.flush()
    assert png[33:37] == len(idat).to_bytes(4, "big") and png[41 : 41 + len(idat)] == idat


def read_png_bytes(tmp_path, data):
    (tmp_path / "one.png").write_bytes(data)
    return read_png(tmp_path / "one.png")


def test_progress_counts_the_shards_already_made(tmp_path, capsys):
    base = ["--count", "45", "--out", "wd", "--format", "webdataset", "--shard-size", "10", "--length", "2", "3"]
    assert dataset_main(base) == 0
    (tmp_path / "wd" / "shard-000002.tar").unlink()
    capsys.readouterr()
    assert dataset_main(base) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[") and " 45/45 images" in lines[0]  # 35 were there: one unit of 10
    assert dataset_main([*base[:3], "wd2", *base[4:], "--shard", "2/3"]) == 0  # shards 3 and 4: images 30..44
    assert " 15/15 images" in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_default_shard_size_is_ten_thousand(tmp_path, capsys):
    assert run("--count", "10001", "--length", "1", "1", "--out", "wd", "--format", "webdataset") == 0
    assert "2 tar shards of up to 10000 images" in capsys.readouterr().out
    with tarfile.open(tmp_path / "wd" / "shard-000000.tar") as tar:
        assert len(tar.getnames()) == 2 * 10_000
    with tarfile.open(tmp_path / "wd" / "shard-000001.tar") as tar:
        assert tar.getnames() == ["0010000.png", "0010000.json"]


def test_export_shows_progress_unless_asked_not_to(tmp_path, capsys):
    export(DatasetSpec(count=3, length=(1, 2)), tmp_path / "a")
    assert "3/3 images" in capsys.readouterr().err
    export(DatasetSpec(count=3, length=(1, 2)), tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_the_longest_number_is_a_thousand_digits():
    assert DatasetSpec(count=1, length=(1000, 1000)).length == (1000, 1000)
    with pytest.raises(ValueError, match="length"):
        DatasetSpec(count=1, length=(1, 1001))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_dataset_workers_can_keep_freed_memory_under_dasks_malloc_settings():
    code = "from digitgenerator.png import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"
