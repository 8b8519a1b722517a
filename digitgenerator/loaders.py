"""Training-loop adapters: numpy batches and a tf.data.Dataset of a job's images, made in memory.

The images are the ones `export` writes for the same spec (see `spec`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .spec import DatasetSpec, make_items


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

