"""Synthetic OCR datasets: many labelled digit-sequence images, reproducible and resumable.

The parts live one concern to a module; this module keeps the names README
documents importable from one place:
- `spec`: `DatasetSpec`, and image i of a job as a pure function of (seed, i);
- `formats`: PNG files + manifest, or WebDataset tar shards;
- `job`: the job file, manifests, locks, and what a job was made from;
- `export`: running a job here, on worker processes, or on Dask (`cluster`);
- `loaders`: `batches` and `tf_dataset` for training loops (`digitgenerator.torch` for PyTorch).
"""

from .export import CHUNK, MAX_WORKERS, Progress, export
from .formats import DEFAULT_SHARD_SIZE, FORMATS, PNG_LEVEL
from .job import JOB_FILE, check_shard, job_lock, manifest_name, read_job, read_manifest, shard_range
from .loaders import batches, tf_dataset
from .spec import MAX_COUNT, MAX_LENGTH, SOURCES, DatasetSpec, item_rng, make_items

__all__ = [
    "CHUNK", "DEFAULT_SHARD_SIZE", "FORMATS", "JOB_FILE", "MAX_COUNT", "MAX_LENGTH", "MAX_WORKERS", "PNG_LEVEL",
    "SOURCES", "DatasetSpec", "Progress", "batches", "check_shard", "export", "item_rng", "job_lock",
    "make_items", "manifest_name", "read_job", "read_manifest", "shard_range", "tf_dataset",
]
