"""A dataset job on disk: its job file, its manifests, its locks, and what it was made from.

`dataset.json` records what the job makes (the spec), how it is written (the
format) and what its digits come from (the data files' or the model's
SHA-256), so that a re-run resumes exactly that job and anything else is
refused with one line before a byte is written.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from . import __version__
from .atomic import atomic_write_bytes
from .data import file_sha256
from .spec import DatasetSpec

JOB_FILE = "dataset.json"


def check_shard(shard) -> tuple[int, int]:
    """(i, n) with 0 <= i < n, or ValueError."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_range(count: int, shard: tuple[int, int]) -> range:
    """Global indices of shard i of n: contiguous, disjoint, covering 0..count-1."""
    i, n = check_shard(shard)
    return range(i * count // n, (i + 1) * count // n)


def manifest_name(shard: tuple[int, int]) -> str:
    i, n = shard
    return "manifest.jsonl" if n == 1 else f"manifest-{i:05d}-of-{n:05d}.jsonl"


def read_manifest(path: Path) -> list[dict]:
    """Manifest rows; a torn last line (from a kill mid-write) is cut off the file.

    A line that is not a manifest row (hand-edited, say) is a ValueError naming it.
    """
    if not path.exists():
        return []
    raw = path.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        with open(path, "r+b") as f:
            f.truncate(len(keep))
    rows = []
    for number, line in enumerate(keep.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("file"), str):
            raise ValueError(f"{path} line {number} is not a manifest row ({line[:40]!r}); fix or delete that line")
        rows.append(row)
    return rows


def read_job(path: Path) -> dict:
    """The job description in dataset.json; ValueError when it is not one."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        job = None
    if not isinstance(job, dict) or not isinstance(job.get("spec"), dict):
        raise ValueError(f"{path} is not a digitgenerator job file; restore it, or use another folder")
    return job


@contextlib.contextmanager
def job_lock(out: Path, name: str):
    """Hold an exclusive lock on `out/.NAME.lock`: a second exporter of the same part of a job is refused."""
    import fcntl

    lock_path = out / f".{name}.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another digitgenerator-dataset is writing {out / name}; wait for it, or use another folder") from None
        try:
            yield
        finally:
            # Removed while still held, so the folder keeps only what was asked for; an exporter that
            # opened it just before is then locking a deleted file, a window of microseconds.
            lock_path.unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def digit_source(spec: DatasetSpec, gen) -> dict:
    """What the job's digits are made from: the MNIST files' or the CVAE files' SHA-256.

    Content, not paths or times: the same files copied to another machine are
    the same source, and a retrained model or another data set is not.
    """
    if spec.source == "cvae":
        from .model import CONFIG_FILE, WEIGHTS_FILE, find_model_dir

        gen.vae.check_every_digit(spec.every_digit)  # a model that cannot: say so before the job folder is made
        folder = gen.vae.model_dir or find_model_dir(gen.model_dir)
        return {"model_sha256": file_sha256(folder / WEIGHTS_FILE), "config_sha256": file_sha256(folder / CONFIG_FILE)}
    return {"images_sha256": file_sha256(gen.source.images), "labels_sha256": file_sha256(gen.source.labels),
            "embedded_sample": gen.source.is_sample}


def describe(spec: DatasetSpec, output: dict, source: dict) -> dict:
    """The job file's content."""
    return {"digitgenerator_version": __version__, "spec": spec.to_json(), "output": output, "digits": source}


def open_job(out: Path, job: dict) -> None:
    """Check that `out` is new, empty, or holds this very job, and record the job there.

    ValueError before anything is written when it holds another job, other
    digits, another format, or files that are not a job. Job files written
    before formats and digit sources were recorded resume as PNG jobs whose
    source cannot be checked.
    """
    job_path = out / JOB_FILE
    if job_path.exists():
        old = read_job(job_path)
        if old.get("spec") != job["spec"]:
            made_by = old.get("digitgenerator_version")
            if made_by and made_by != job["digitgenerator_version"]:
                raise ValueError(f"{out} holds a dataset job made by digitgenerator {made_by}, whose images this version "
                                 f"({job['digitgenerator_version']}) does not make the same; finish it with {made_by}, or use another folder")
            raise ValueError(f"{out} holds a different dataset job ({job_path}); use another folder or the same options")
        if old.get("output", {"format": "png"}) != job["output"]:
            raise ValueError(f"{out} holds this job in another format ({old.get('output')}); use another folder or that format")
        if "digits" in old and old["digits"] != job["digits"]:
            what = "CVAE model" if "model_sha256" in job["digits"] else "MNIST data"
            raise ValueError(f"{out} was made from another {what} than this run would use "
                             f"({JOB_FILE} records {old['digits']}); use the same data and model, or another folder")
    elif out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise ValueError(f"{out} holds files but no {JOB_FILE}: it is not a dataset job; use an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"cannot write into {out}")
    if not job_path.exists():
        atomic_write_bytes(job_path, (json.dumps(job, indent=2) + "\n").encode())
