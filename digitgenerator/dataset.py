"""Synthetic OCR datasets: many labelled digit-sequence images, reproducible and resumable.

Image i of a job is a pure function of (seed, i): its own random stream
`numpy.random.default_rng([seed, i])` draws its length, digits, source digits
or latents, augmentation and spacing. So the result does not depend on how the
job is split into shards, workers or interrupted runs.

On disk: `DIR/NNNNNNN.png` (the global index) and a JSON Lines manifest, one
line per image: {"file", "text", "boxes": [[x, width], ...], "ink_boxes":
[[x, y, width, height], ...], "width", "height"}. A line is
appended only after its PNG has been renamed into place, so every line names a
complete file; a re-run skips the indices already listed and finishes the job.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__, checks
from .atomic import atomic_write_bytes, remove_stale_temporaries
from .augment import Augment
from .compose import FITS, check_spacing, check_width, compose, ink_boxes
from .data import IMAGE_SIZE, NUM_CLASSES
from .png import write_png
from .realistic import Realistic

SOURCES = ("mnist", "cvae")
JOB_FILE = "dataset.json"
CHUNK = 64  # images per task handed to a worker
PNG_LEVEL = 1
MAX_COUNT = 1_000_000_000  # images in one job: more is a typing error (1e9 small PNGs fill about 5 TB)
MAX_LENGTH = 1000  # digits in one image
MAX_WORKERS = 256
WINDOW = 8  # chunks in flight per worker: the work is streamed, never listed whole


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate: `count` images of `length` (min, max) random digits each."""

    count: int
    length: tuple[int, int] = (1, 8)
    spacing: tuple[int, int] = (4, 4)
    width: int | None = None
    source: str = "mnist"
    invert: bool = False
    ink_spacing: bool = False
    fit: str = "pad"
    seed: int = 0
    augment: Augment = field(default_factory=Augment)
    realistic: Realistic | None = None  # True: the recommended mix (see digitgenerator.realistic)

    def __post_init__(self):
        object.__setattr__(self, "realistic", Realistic.coerce(self.realistic))
        object.__setattr__(self, "count", checks.integer(self.count, "count", 0, MAX_COUNT))
        lo, hi = checks.int_pair(self.length, "length", 1, MAX_LENGTH)
        object.__setattr__(self, "length", (lo, hi))
        object.__setattr__(self, "spacing", check_spacing(self.spacing))
        object.__setattr__(self, "width", check_width(self.width))
        checks.choice(self.source, "source", SOURCES)
        checks.choice(self.fit, "fit", FITS)
        object.__setattr__(self, "seed", checks.seed(self.seed))
        need = hi * IMAGE_SIZE + (hi - 1) * self.spacing[0]
        if self.realistic is not None and (self.spacing != (4, 4) or self.ink_spacing):
            raise ValueError("spacing and ink_spacing apply to the box layout; with realistic set the gaps with Handwriting.gap (--gap)")
        if self.realistic is None and self.width is not None and self.fit == "pad" and self.width < need:
            raise ValueError(
                f"width {self.width} cannot hold {hi} digits with spacing >= {self.spacing[0]}: "
                f"use at least {need}, fewer digits, or stretch"
            )

    def to_json(self) -> dict:
        out = {**asdict(self), "length": list(self.length), "spacing": list(self.spacing)}
        del out["realistic"]
        if self.realistic is not None:  # absent otherwise, so that earlier jobs still resume
            out["realistic"] = self.realistic.to_json()
        return out

    @property
    def max_width(self) -> int:
        """The widest image this spec can produce."""
        hi_len = self.length[1]
        if self.realistic is not None:
            return self.width or self.realistic.max_width(hi_len)
        return self.width or hi_len * IMAGE_SIZE + (hi_len - 1) * self.spacing[1]

    @property
    def height(self) -> int:
        """The height of every image."""
        return IMAGE_SIZE if self.realistic is None else self.realistic.hand.height

    @property
    def dark_on_light(self) -> bool:
        """Whether images are written black ink on white (realistic images are, unless inverted)."""
        return self.invert != (self.realistic is not None)


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image `index`: independent of shards, workers and restarts."""
    return np.random.default_rng([seed, index])


def make_items(gen, spec: DatasetSpec, indices) -> list[tuple[np.ndarray, str, list, list]]:
    """For the given global indices: images (float32 (height, W), 1 = ink), digit strings,
    boxes [[x, width], ...] and ink boxes [[x, y, width, height], ...]."""
    rngs = [item_rng(spec.seed, int(i)) for i in indices]
    digits = [rng.integers(0, NUM_CLASSES, int(rng.integers(spec.length[0], spec.length[1], endpoint=True))) for rng in rngs]
    if spec.source == "cvae":
        # Draw every image's latents from its own stream, then decode them all in one batch;
        # a realistic number is written in one handwriting (one latent for all its digits).
        if spec.realistic is not None:
            latents = [np.tile(gen.vae.sample_style(rng, labels=d), (len(d), 1)) for d, rng in zip(digits, rngs)]
        else:
            latents = [gen.vae.sample_latents(d, rng) for d, rng in zip(digits, rngs)]
        decoded = gen.vae.decode(np.concatenate(latents), np.concatenate(digits))
        glyph_sets = np.split(decoded, np.cumsum([len(d) for d in digits])[:-1])
    else:
        glyph_sets = [gen.real_digits(d, rng) for d, rng in zip(digits, rngs)]
    texts = ["".join(map(str, d)) for d in digits]
    if spec.augment.active:
        glyph_sets = [[spec.augment.apply(g, rng) for g in glyphs] for glyphs, rng in zip(glyph_sets, rngs)]
    if spec.realistic is not None:
        from .realistic import write

        done = write([np.asarray(g, np.float32) for g in glyph_sets], spec.realistic, rngs, spec.width, spec.fit)
        return [(image, text, [[int(x), int(w)] for x, _, w, _ in boxes.tolist()], boxes.tolist())
                for text, (image, boxes) in zip(texts, done)]
    items = []
    for text, glyphs, rng in zip(texts, glyph_sets, rngs):
        image, layout = compose(list(glyphs), spec.spacing, spec.width, rng, spec.fit, spec.ink_spacing)
        inked = [list(b) for b in ink_boxes(list(glyphs), layout, spec.ink_spacing)]
        items.append((image, text, [list(b) for b in layout.boxes()], inked))
    return items


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
def job_lock(out: Path, manifest: Path):
    """Hold an exclusive lock on this manifest's lock file: a second exporter of the same shard is refused."""
    import fcntl

    lock_path = out / f".{manifest.name}.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another digitgenerator-dataset is writing {manifest}; wait for it, or use another folder") from None
        try:
            yield
        finally:
            # Removed while still held, so the folder keeps only what was asked for; an exporter that
            # opened it just before is then locking a deleted file, a window of microseconds.
            lock_path.unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


# Worker state: one Digitgenerator per process, built by _init.
_worker: dict = {}


def _init(gen_args: tuple, spec: DatasetSpec, out_dir: str, threads: int | None = None) -> None:
    from .generator import Digitgenerator

    gen = Digitgenerator(*gen_args[:2], model_dir=gen_args[2])
    if spec.source == "cvae" and threads == 1:
        # Several worker processes share the cores: one thread each, BLAS included.
        from .model import _blas_controller

        gen.vae.threads = 1
        _worker["blas_limit"] = _blas_controller().limit(limits=1, user_api="blas")
    _worker.update(gen=gen, spec=spec, out=str(out_dir))


def _work(indices: list[int]) -> list[dict]:
    gen, spec, out = _worker["gen"], _worker["spec"], _worker["out"]
    strategy = zlib.Z_HUFFMAN_ONLY if spec.realistic is not None and spec.realistic.paper is not None else zlib.Z_DEFAULT_STRATEGY
    rows = []
    for index, (image, text, boxes, inked) in zip(indices, make_items(gen, spec, indices)):
        name = f"{index:07d}.png"
        # The folder was checked up front; zlib level 1 halves encoding time for ~10% more bytes.
        write_png(os.path.join(out, name), image, spec.dark_on_light, check=False, level=PNG_LEVEL, strategy=strategy)
        rows.append({"file": name, "text": text, "boxes": boxes, "ink_boxes": inked,
                     "width": int(image.shape[1]), "height": int(image.shape[0])})
    return rows


def export(
    spec: DatasetSpec,
    out_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    mnist_folder="mnist_data",
    preprocessed_folder=".",
    model_dir=None,
    progress: bool = True,
) -> Path:
    """Write this shard's images and manifest into out_dir; resume if it was interrupted.

    Returns the manifest path. Raises ValueError, before writing anything, when
    out_dir holds a different job.
    """
    indices = shard_range(spec.count, shard)
    workers = checks.integer(workers, "workers", 1, MAX_WORKERS)
    out = Path(out_dir)
    job = {"digitgenerator_version": __version__, "spec": spec.to_json()}
    job_path = out / JOB_FILE
    if job_path.exists():
        if read_job(job_path).get("spec") != job["spec"]:
            raise ValueError(f"{out} holds a different dataset job ({job_path}); use another folder or the same options")
    elif out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise ValueError(f"{out} holds files but no {JOB_FILE}: it is not a dataset job; use an empty or new folder")
    gen_args = (mnist_folder, preprocessed_folder, model_dir)
    _init(gen_args, spec, str(out))  # fail here (bad data, no model) before anything is written
    if spec.source == "cvae":
        _worker["gen"].vae  # noqa: B018 - loads the model now, so a missing one stops the job up front
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"cannot write into {out}")
    remove_stale_temporaries(out)  # from an earlier run that was killed mid-write
    if not job_path.exists():
        atomic_write_bytes(job_path, (json.dumps(job, indent=2) + "\n").encode())
    manifest = out / manifest_name(shard)
    with job_lock(out, manifest):
        return _export_locked(spec, out, manifest, indices, workers, gen_args, progress)


def _export_locked(spec, out: Path, manifest: Path, indices: range, workers: int, gen_args, progress: bool) -> Path:
    done = {row["file"] for row in read_manifest(manifest)}
    already = sum(1 for i in indices if f"{i:07d}.png" in done) if done else 0
    chunks = _pending_chunks(indices, done)
    bar = Progress(len(indices), already, enabled=progress)
    with open(manifest, "a", encoding="utf-8") as log:
        if workers == 1 or len(indices) - already <= CHUNK:
            results = map(_work, chunks)
            pool = None
        else:
            pool = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn").Pool(
                workers, _init, (gen_args, spec, str(out), 1)
            )
            results = _windowed(pool, chunks, workers * WINDOW)
        try:
            for rows in results:
                log.write("".join(json.dumps(row) + "\n" for row in rows))
                log.flush()
                bar.advance(len(rows))
        finally:
            if pool is not None:
                pool.terminate()
    bar.close()
    return manifest


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


def _windowed(pool, chunks: Iterator[list[int]], window: int) -> Iterator[list[dict]]:
    """pool.imap over `window` chunks at a time, in order: Pool.imap alone would list every chunk up front."""
    import itertools

    while True:
        batch = list(itertools.islice(chunks, window))
        if not batch:
            return
        yield from pool.imap(_work, batch)  # in order, so the manifest stays sorted


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, done: int = 0, enabled: bool = True):
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


def batches(
    gen,
    spec: DatasetSpec,
    batch_size: int = 64,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, labels) batches for training loops, the same images `export` writes.

    images: float32 (B, height, W) with W = spec.max_width (narrower images are
    padded on the right with background; 1 - ink when the export writes them
    black on white: spec.invert, or realistic without it). labels:
    int64 (B, max_length), the digits, padded with -1. Covers indices
    start..stop-1 (stop defaults to spec.count).
    """
    stop = spec.count if stop is None else stop
    width, max_len = spec.max_width, spec.length[1]
    for s in range(start, stop, batch_size):
        items = make_items(gen, spec, range(s, min(s + batch_size, stop)))
        images = np.zeros((len(items), spec.height, width), np.float32)
        labels = np.full((len(items), max_len), -1, np.int64)
        for k, (image, text, _, _) in enumerate(items):
            images[k, :, : image.shape[1]] = image
            labels[k, : len(text)] = [int(c) for c in text]
        yield (1.0 - images if spec.dark_on_light else images), labels


def tf_dataset(gen, spec: DatasetSpec, batch_size: int = 64):
    """A tf.data.Dataset of the `batches` (needs TensorFlow, imported only here)."""
    import tensorflow as tf

    signature = (
        tf.TensorSpec((None, spec.height, spec.max_width), tf.float32),
        tf.TensorSpec((None, spec.length[1]), tf.int64),
    )
    return tf.data.Dataset.from_generator(lambda: batches(gen, spec, batch_size), output_signature=signature)
