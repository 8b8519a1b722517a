"""Pixel-exact 8-bit grayscale PNG output."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path


def to_uint8(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """A float image in [0, 1] (1 = ink) as uint8 gray; invert=True gives black ink on white."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    gray = np.clip(image, 0.0, 1.0)
    if invert:
        gray = 1.0 - gray
    return np.rint(gray * 255.0).astype(np.uint8)


def check_png_path(filename: str | os.PathLike) -> Path:
    """The path, if it names a .png file in an existing, writable folder; else an error."""
    path = Path(filename)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file {str(path)!r} must end in .png")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable")
    return path


def write_png(filename: str | os.PathLike, image: np.ndarray, invert: bool = False) -> Path:
    """Write a (H, W) float image as an H x W 8-bit grayscale PNG, atomically."""
    from PIL import Image

    path = check_png_path(filename)
    gray = to_uint8(image, invert)
    with atomic_path(path) as tmp:
        Image.fromarray(gray, mode="L").save(tmp, format="PNG")
    return path


def read_png(filename: str | os.PathLike) -> np.ndarray:
    """A grayscale PNG as float32 (H, W) in [0, 1]."""
    from PIL import Image

    with Image.open(filename) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
