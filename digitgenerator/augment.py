"""Seeded distortions of single digits, for OCR training data (all off by default).

Each acts on one float32 (28, 28) digit with 1 = ink, using scipy.ndimage:
rotation and shear as one affine map about the digit's centre, elastic
distortion as in Simard, Steinkraus & Platt 2003 (section 2: a random
displacement field smoothed by a Gaussian of width sigma, scaled by alpha),
and stroke thickness by grey dilation or erosion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import checks
from .data import IMAGE_SIZE


@dataclass(frozen=True)
class Augment:
    """Maximum strength of each distortion; 0 turns it off."""

    rotate: float = 0.0  # degrees, uniform in [-rotate, rotate]
    shear: float = 0.0  # degrees of horizontal shear, uniform in [-shear, shear]
    elastic: float = 0.0  # alpha, the smoothed field's scale: at sigma 4, pixels move about alpha/20 (a digit's furthest about alpha/7)
    elastic_sigma: float = 4.0  # smoothness of the displacement field, pixels
    thickness: int = 0  # stroke change in pixels, uniform integer in [-thickness, thickness]

    def __post_init__(self):
        for name, high in (("rotate", 90.0), ("shear", 60.0), ("elastic", 100.0), ("elastic_sigma", 50.0)):
            object.__setattr__(self, name, checks.number(getattr(self, name), name, 0.0, high))
        if self.elastic_sigma == 0 and self.elastic:
            raise ValueError("elastic_sigma must be positive when elastic is on")
        object.__setattr__(self, "thickness", checks.integer(self.thickness, "thickness", 0, 3))

    @property
    def active(self) -> bool:
        return bool(self.rotate or self.shear or self.elastic or self.thickness)

    def apply(self, digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A distorted copy of one (28, 28) digit; the same rng state gives the same result."""
        if not self.active:
            return digit
        from scipy import ndimage

        out = np.asarray(digit, dtype=np.float32)
        if self.rotate or self.shear:
            angle = np.deg2rad(rng.uniform(-self.rotate, self.rotate))
            shear = np.tan(np.deg2rad(rng.uniform(-self.shear, self.shear)))
            # Output pixel (r, c) reads input at M @ (r, c) + offset; M maps about the centre.
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            matrix = rotation @ np.array([[1.0, 0.0], [shear, 1.0]])
            centre = np.array([(IMAGE_SIZE - 1) / 2] * 2)
            out = ndimage.affine_transform(out, matrix, centre - matrix @ centre, order=1, mode="constant")
        if self.elastic:
            dr, dc = (
                ndimage.gaussian_filter(rng.uniform(-1, 1, out.shape), self.elastic_sigma) * self.elastic
                for _ in range(2)
            )
            rows, cols = np.meshgrid(np.arange(IMAGE_SIZE), np.arange(IMAGE_SIZE), indexing="ij")
            out = ndimage.map_coordinates(out, [rows + dr, cols + dc], order=1, mode="constant")
        if self.thickness:
            step = int(rng.integers(-self.thickness, self.thickness, endpoint=True))
            if step:
                morph = ndimage.grey_dilation if step > 0 else ndimage.grey_erosion
                out = morph(out, size=(abs(step) + 1, abs(step) + 1))
        return np.clip(out, 0.0, 1.0).astype(np.float32)
