"""Running a dataset job: its work split into units, run here (worker processes) or on Dask.

A unit is a list of image indices and, for WebDataset, the tar shard they
fill. PNG units are CHUNK images not yet in the manifest; a unit's rows are
appended to the manifest only after its PNGs are in place, and in order, so
the manifest is the same however the work was run. A tar unit is done when
its shard exists. Either way a re-run finishes what is missing and nothing
else.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import checks
from .atomic import atomic_write_bytes, remove_stale_temporaries
from .data import DEFAULT_MNIST_FOLDER, DEFAULT_PREPROCESSED_FOLDER, EmbeddedSampleWarning
from .formats import DEFAULT_SHARD_SIZE, check_output, shard_count, tar_indices, tar_name, write_pngs, write_tar
from .png import keep_freed_memory
from .job import describe, digit_source, job_lock, manifest_name, open_job, read_manifest, shard_range
from .spec import DatasetSpec, make_items

CHUNK = 64  # images per PNG unit
MAX_WORKERS = 256
WINDOW = 8  # units in flight per worker: the work is streamed, never listed whole


@dataclass(frozen=True)
class Unit:
    """Images to make: their global indices, and the tar shard they fill (None: PNG files)."""

    indices: range | list
    tar: str | None = None


@dataclass(frozen=True)
class Task:
    """Everything a worker (a process here or a Dask worker elsewhere) needs to run units."""

    spec: DatasetSpec
    out: str
    gen_args: tuple  # (mnist_folder, preprocessed_folder, model_dir)
    digits: tuple  # the job's digit source, as sorted items: a worker with other data or another model refuses


# One Digitgenerator per worker process and task, made on first use.
_generators: dict = {}


def _generator(task: Task):
    from .generator import Digitgenerator

    gen = _generators.get(task)
    if gen is None:
        keep_freed_memory()
        with warnings.catch_warnings():  # a worker elsewhere: the client has told the user where the digits come from
            warnings.simplefilter("ignore", EmbeddedSampleWarning)
            gen = Digitgenerator(task.gen_args[0], task.gen_args[1], model_dir=task.gen_args[2])
        mine = digit_source(task.spec, gen)
        if tuple(sorted(mine.items())) != task.digits:
            raise ValueError(f"this worker's digits ({mine}) are not the job's ({dict(task.digits)}); "
                             "give every worker the same MNIST files and model")
        _generators.clear()  # one job at a time per process
        _generators[task] = gen
    return gen


def run_unit(task: Task, unit: Unit) -> list[dict] | int:
    """Make a unit's images and write them: PNG manifest rows, or the tar's sample count."""
    gen = _generator(task)
    if unit.tar is None:
        return write_pngs(Path(task.out), task.spec, unit.indices, make_items(gen, task.spec, unit.indices, as_uint8=True))
    return write_tar(Path(task.out) / unit.tar, task.spec, unit.indices,
                     lambda chunk: make_items(gen, task.spec, chunk, as_uint8=True))


def export(
    spec: DatasetSpec,
    out_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    mnist_folder=DEFAULT_MNIST_FOLDER,
    preprocessed_folder=DEFAULT_PREPROCESSED_FOLDER,
    model_dir=None,
    progress: bool = True,
    format: str = "png",
    shard_size: int = DEFAULT_SHARD_SIZE,
    dask: str | None = None,
) -> Path:
    """Write this shard of the job into out_dir; resume if it was interrupted.

    format: "png" (PNG files and a manifest) or "webdataset" (tar shards of
    shard_size images). dask: a scheduler address ("tcp://host:port") or
    "local" (a LocalCluster of `workers` processes) to run on Dask instead of
    local worker processes. Returns the manifest (png) or the folder
    (webdataset). ValueError, before anything is written, when out_dir holds
    another job, or the same job made from other digits.
    """
    output = check_output(format, shard_size)
    shard_range(spec.count, shard)  # checks the shard
    workers = checks.integer(workers, "workers", 1, MAX_WORKERS)
    out = checks.output_folder(out_dir, "out_dir")
    from .generator import Digitgenerator

    # Fail here (bad data, no model) before anything is written.
    gen = Digitgenerator(mnist_folder, preprocessed_folder, model_dir=model_dir)
    digits = digit_source(spec, gen)
    open_job(out, describe(spec, output, digits))
    remove_stale_temporaries(out)  # from an earlier run that was killed mid-write
    task = Task(spec, str(out.absolute()), (mnist_folder, preprocessed_folder, model_dir), tuple(sorted(digits.items())))
    _generators.clear()
    _generators[task] = gen
    lock = manifest_name(shard) if format == "png" else f"shards-{shard[0]}-of-{shard[1]}"
    with job_lock(out, lock):
        if format == "png":
            plan = _PngPlan(task, out / manifest_name(shard), shard_range(spec.count, shard))
        else:
            plan = _TarPlan(task, shard, output["shard_size"])
        bar = Progress(plan.total, plan.already, enabled=progress)
        if dask is not None:
            from .cluster import run_on_dask

            run_on_dask(dask, workers, task, plan, bar)
        else:
            _run_here(workers, task, plan, bar)
        bar.close()
    remove_stale_temporaries(out)  # a lost worker's partial shard
    return plan.result


class _PngPlan:
    """PNG units: CHUNK indices not yet in the manifest; rows appended in order."""

    def __init__(self, task: Task, manifest: Path, indices: range):
        self.result = manifest
        if not manifest.exists():  # the manifest exists from the job's start, empty for a job of no images
            atomic_write_bytes(manifest, b"")
        done = {row["file"] for row in read_manifest(manifest)}
        self.total = len(indices)
        self.already = sum(1 for i in indices if f"{i:07d}.png" in done) if done else 0
        self.pending = self.total - self.already
        self.units = (Unit(chunk) for chunk in _pending_chunks(indices, done))
        self._log = None

    def record(self, rows: list[dict]) -> int:
        if self._log is None:
            self._log = open(self.result, "a", encoding="utf-8")
        self._log.write("".join(json.dumps(r) + "\n" for r in rows))
        self._log.flush()
        return len(rows)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


class _TarPlan:
    """Tar units: this machine's share of the tar shards, those not yet on disk."""

    def __init__(self, task: Task, shard: tuple[int, int], shard_size: int):
        out, count = Path(task.out), task.spec.count
        tars = shard_range(shard_count(count, shard_size), shard)
        self.result = out
        self.total = min(tars.stop * shard_size, count) - min(tars.start * shard_size, count)
        todo = [k for k in tars if not (out / tar_name(k)).exists()]
        self.already = self.total - sum(len(tar_indices(k, count, shard_size)) for k in todo)
        self.pending = self.total - self.already
        self.units = (Unit(tar_indices(k, count, shard_size), tar_name(k)) for k in todo)

    def record(self, n: int) -> int:
        return n

    def close(self) -> None:
        pass


def _run_here(workers: int, task: Task, plan, bar: "Progress") -> None:
    if workers == 1 or plan.pending <= CHUNK:
        results, pool = (run_unit(task, unit) for unit in plan.units), None
    else:
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = context.Pool(workers, _init_worker, (task, 1))
        results = _windowed(pool, plan.units, workers * WINDOW)
    try:
        for result in results:
            bar.advance(plan.record(result))
    finally:
        plan.close()
        if pool is not None:
            pool.terminate()


_pool_task: dict = {}


def _init_worker(task: Task, threads: int | None = None) -> None:
    """Pool initializer: the task, and one BLAS thread per process when several share the cores."""
    _pool_task["task"] = task
    if task.spec.source == "cvae" and threads == 1:
        from .model import _blas_controller

        gen = _generator(task)
        gen.vae.threads = 1
        _pool_task["blas_limit"] = _blas_controller().limit(limits=1, user_api="blas")


def _pool_work(unit: Unit):
    return run_unit(_pool_task["task"], unit)


def _pending_chunks(indices: range, done: set) -> Iterator[list[int]]:
    """The indices not yet in the manifest, CHUNK at a time, lazily (a job may hold a billion)."""
    chunk = []
    for i in indices:
        if not done or f"{i:07d}.png" not in done:
            chunk.append(i)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _windowed(pool, units: Iterator[Unit], window: int) -> Iterator:
    """pool.imap over `window` units at a time, in order: Pool.imap alone would list every unit up front."""
    while True:
        batch = list(itertools.islice(units, window))
        if not batch:
            return
        yield from pool.imap(_pool_work, batch)  # in order, so the manifest stays sorted


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.done, self.enabled = total, done, enabled and total > 0
        self.start, self.first = time.perf_counter(), done
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        rate = (self.done - self.first) / max(time.perf_counter() - self.start, 1e-9)
        filled = 30 * self.done // self.total
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} images, {rate:,.0f}/s"
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif 10 * self.done // self.total > self.last_decile:
            self.last_decile = 10 * self.done // self.total
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
