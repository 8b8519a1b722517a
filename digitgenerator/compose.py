"""Lay digits out side by side: spacing, exact widths, ink trimming.

All images here are float32 arrays of height IMAGE_SIZE with 0 for background
and 1 for ink; a sequence of n digits of widths w_i is placed left to right
with n - 1 gaps drawn from `spacing_range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import checks
from .data import IMAGE_SIZE, NUM_CLASSES

FITS = ("pad", "stretch")
INK_THRESHOLD = 0.1  # a column holds ink when some pixel exceeds this
MAX_WIDTH = 500_000  # pixels: a float32 image of 28 x 500,000 is 56 MB; wider is a typing error, not a number


@dataclass(frozen=True)
class Layout:
    """Where each digit sits on a canvas, and the final width the canvas is resized to.

    offsets/widths are in canvas pixels; `width` differs from `canvas` only
    with fit="stretch". `boxes` gives (x, width) in final-image pixels.
    """

    offsets: tuple[int, ...]
    widths: tuple[int, ...]
    canvas: int
    width: int

    def boxes(self) -> list[tuple[int, int]]:
        """(x offset, width) of each digit in the final image."""
        scale = self.width / self.canvas
        return [(round(x * scale), round(w * scale)) for x, w in zip(self.offsets, self.widths)]


def check_digits(digits) -> np.ndarray:
    """The digits as an int64 array (n,), or ValueError naming the bad one."""
    if isinstance(digits, (str, bytes)) or np.ndim(digits) != 1:
        raise ValueError(f"digits must be a non-empty sequence of integers 0-9, got {digits!r}")
    values = [checks.integer(d, "digit", 0, NUM_CLASSES - 1) for d in digits]
    if not values:
        raise ValueError("digits is empty: give at least one digit 0-9")
    return np.asarray(values, dtype=np.int64)


def check_spacing(spacing_range) -> tuple[int, int]:
    """(min, max) spacing as ints in 0..MAX_WIDTH with min <= max, or ValueError."""
    return checks.int_pair(spacing_range, "spacing_range", 0, MAX_WIDTH)


def check_width(image_width) -> int | None:
    """None for natural width (None or 0), else a positive int, or ValueError."""
    if image_width is None:
        return None
    return checks.integer(image_width, "image_width (0 or None: natural width)", 0, MAX_WIDTH) or None


def _exact_spacings(n_gaps: int, total: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """n_gaps random spacings in [lo, hi] that add up to `total` (lo*n <= total <= hi*n), in O(n_gaps).

    Each gap gets lo plus a random share of the extra (total - n lo), in
    proportion to a uniform weight and capped at hi - lo; what rounding and
    the caps leave over is handed out in a random order to gaps with room.
    """
    extra, cap = total - n_gaps * lo, hi - lo
    weights = rng.random(n_gaps)
    share = np.minimum(np.floor(weights / max(weights.sum(), 1e-12) * extra), cap).astype(np.int64)
    left = extra - int(share.sum())
    order = rng.permutation(n_gaps)
    room = cap - share[order]
    take = np.minimum(room, np.maximum(left - (np.cumsum(room) - room), 0))
    share[order] += take
    return lo + share


def plan_layout(
    widths,
    spacing_range=(4, 4),
    image_width=None,
    rng: np.random.Generator | None = None,
    fit: str = "pad",
) -> Layout:
    """Choose the spacings for digits of the given widths.

    Natural width (image_width None/0): each gap is uniform on [min, max], both
    ends included. Exact width W: gaps stay in [min, max] and add up to the
    room left when that is possible; when W is wider than the widest spacing
    allows, gaps take the max and the rest becomes even left/right margins;
    when W is narrower than the tightest spacing allows, fit="pad" raises
    ValueError and fit="stretch" places the digits at min spacing and resizes
    the image horizontally to W (the only case that distorts digits).
    """
    lo, hi = check_spacing(spacing_range)
    width = check_width(image_width)
    if fit not in FITS:
        raise ValueError(f"fit {fit!r} is not one of {FITS}")
    rng = np.random.default_rng() if rng is None else rng
    widths = [int(w) for w in widths]
    n_gaps = len(widths) - 1
    ink = sum(widths)
    margin = 0
    if width is None:
        gaps = rng.integers(lo, hi, size=n_gaps, endpoint=True)
    elif ink + n_gaps * lo <= width <= ink + n_gaps * hi:
        gaps = _exact_spacings(n_gaps, width - ink, lo, hi, rng)
    elif width > ink + n_gaps * hi:
        if fit == "stretch":
            gaps = rng.integers(lo, hi, size=n_gaps, endpoint=True)
        else:
            gaps = np.full(n_gaps, hi)
            margin = (width - ink - n_gaps * hi) // 2
    elif fit == "stretch":
        gaps = np.full(n_gaps, lo)
    else:
        raise ValueError(
            f"image_width {width} is too narrow for {len(widths)} digits with spacing >= {lo}: "
            f"at least {ink + n_gaps * lo} pixels are needed (or squeeze them with fit='stretch', --stretch on the command line)"
        )
    natural = ink + int(np.sum(gaps)) + 2 * margin
    check_layout_width(len(widths), hi, natural)
    offsets = [margin]
    for w, gap in zip(widths, gaps.tolist()):
        offsets.append(offsets[-1] + w + gap)
    canvas = offsets[len(widths) - 1] + widths[-1] + margin
    if width is not None and fit == "pad":
        canvas = width  # the right margin takes the odd pixel
    return Layout(tuple(offsets[: len(widths)]), tuple(widths), canvas, width or canvas)


def check_layout_width(n_digits: int, hi: int, natural: int) -> None:
    """ValueError when a layout comes out wider than MAX_WIDTH."""
    if natural > MAX_WIDTH:
        raise ValueError(f"{n_digits} digits with spacing up to {hi} make an image {natural} pixels wide; the limit is {MAX_WIDTH}")


def ink_bounds(glyph: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[int, int]:
    """(first, last + 1) column of a (28, w) glyph that holds ink; the whole glyph if blank."""
    cols = np.flatnonzero(glyph.max(axis=0) > threshold)
    if cols.size == 0:
        return 0, glyph.shape[1]
    return int(cols[0]), int(cols[-1]) + 1


def trim_to_ink(glyphs: list[np.ndarray]) -> list[np.ndarray]:
    """Each glyph cut down to its ink columns (for spacing measured between strokes)."""
    return [g[:, slice(*ink_bounds(g))] for g in glyphs]


def render(glyphs: list[np.ndarray], layout: Layout) -> np.ndarray:
    """Paste glyphs (each (28, w_i)) at the layout's offsets: float32 (28, layout.width)."""
    image = np.zeros((IMAGE_SIZE, layout.canvas), dtype=np.float32)
    for glyph, x in zip(glyphs, layout.offsets):
        image[:, x : x + glyph.shape[1]] = glyph
    if layout.width != layout.canvas:
        image = _resize_width(image, layout.width)
    return image


def _resize_width(image: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(image, mode="F").resize((width, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def ink_boxes(
    glyphs: list[np.ndarray], layout: Layout, ink_spacing: bool = False, profiles: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[int, int, int, int]]:
    """(x, y, width, height) of each glyph's ink (pixels > INK_THRESHOLD) in the image `render` makes.

    glyphs are the ones given to `compose` (before trimming); with fit="stretch"
    the columns are scaled to the final width, rounded outwards. profiles:
    `ink_profiles(glyphs)` when the caller has them (computed for many numbers at once).
    """
    if ink_spacing:
        glyphs, profiles = trim_to_ink(glyphs), None
    if not glyphs:
        return []
    scale = layout.width / layout.canvas
    # The first and last ink row and column of every glyph at once (one stack when the
    # shapes agree, as they do without ink_spacing): a loop of small numpy calls per
    # glyph cost more than composing the image.
    inked, top, bottom, first, last = profile_bounds(*(ink_profiles(glyphs) if profiles is None else profiles))
    out = []
    for k, x in enumerate(layout.offsets):
        if not inked[k]:
            out.append((round(x * scale), 0, 0, 0))
            continue
        x0, x1 = x + first[k], x + last[k]
        left, right = math.floor(x0 * scale), min(layout.width, math.ceil(x1 * scale))
        out.append((left, top[k], right - left, bottom[k] - top[k]))
    return out


def profile_extent(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From a boolean profile (n, size) (which rows, or columns, of each glyph hold ink):
    the first True index, one past the last, and whether there is any, (n,) each
    (0, size and False for a glyph without ink)."""
    return profile.argmax(1), profile.shape[1] - profile[:, ::-1].argmax(1), profile.any(1)


def profile_bounds(rows_any: np.ndarray, cols_any: np.ndarray) -> tuple[list, list, list, list, list]:
    """From `ink_profiles`: per glyph whether it holds ink, its first and past-the-last ink row
    (top, bottom) and column (first, last), as lists."""
    top, bottom, inked = profile_extent(rows_any)
    first, last, _ = profile_extent(cols_any)
    return inked.tolist(), top.tolist(), bottom.tolist(), first.tolist(), last.tolist()


def ink_profiles(glyphs) -> tuple[np.ndarray, np.ndarray]:
    """Which rows (n, H) and columns (n, W_max) of each glyph hold ink; narrower glyphs padded with False.

    glyphs: a list of 2-D arrays, or one (n, H, W) array.
    """
    if isinstance(glyphs, np.ndarray) or all(g.shape == glyphs[0].shape for g in glyphs):
        ink = np.asarray(glyphs) > INK_THRESHOLD
        return ink.any(axis=2), ink.any(axis=1)
    height, width = max(g.shape[0] for g in glyphs), max(g.shape[1] for g in glyphs)
    rows_any, cols_any = np.zeros((len(glyphs), height), bool), np.zeros((len(glyphs), width), bool)
    for k, g in enumerate(glyphs):
        ink = g > INK_THRESHOLD
        rows_any[k, : g.shape[0]], cols_any[k, : g.shape[1]] = ink.any(axis=1), ink.any(axis=0)
    return rows_any, cols_any


def compose(
    glyphs: list[np.ndarray],
    spacing_range=(4, 4),
    image_width=None,
    rng: np.random.Generator | None = None,
    fit: str = "pad",
    ink_spacing: bool = False,
) -> tuple[np.ndarray, Layout]:
    """Lay out and paste glyphs: (float32 image (28, W), Layout).

    ink_spacing=True trims each glyph to its ink first, so that the spacing is
    what a reader sees between strokes rather than between 28-pixel boxes
    (MNIST boxes carry about 4 blank pixels on each side).
    """
    if ink_spacing:
        glyphs = trim_to_ink(glyphs)
    layout = plan_layout([g.shape[1] for g in glyphs], spacing_range, image_width, rng, fit)
    return render(glyphs, layout), layout
