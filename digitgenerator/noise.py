"""The corruption model used for denoising: salt-and-pepper replacement."""

from __future__ import annotations

import numpy as np

MAX_TRAIN_NOISE = 0.6  # training draws each image's noise probability from U(0, 0.6)


def check_noise_prob(noise_prob) -> float:
    """noise_prob as a float in [0, 1], or ValueError."""
    from . import checks

    return checks.number(noise_prob, "noise_prob", 0.0, 1.0)


def corrupt(images: np.ndarray, noise_prob, rng: np.random.Generator) -> np.ndarray:
    """Replace each pixel, with probability p, by a random 0 or 1.

    images: float (..., 28, 28) in [0, 1]. noise_prob: a scalar, or one value
    per image (shape images.shape[:1]). Returns float32 of the same shape.
    """
    images = np.asarray(images, dtype=np.float32)
    p = np.asarray(noise_prob, dtype=np.float32)
    if p.ndim:
        p = p.reshape(p.shape + (1,) * (images.ndim - p.ndim))
    replace = rng.random(images.shape, dtype=np.float32) < p
    salt = rng.integers(0, 2, size=images.shape).astype(np.float32)
    return np.where(replace, salt, images)
