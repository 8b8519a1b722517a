"""Numbers laid out the way people write them: placed by their ink, touching, off a baseline, one hand.

A writer has one hand: the whole number shares one slant and one stroke width
(with a little variation per digit), while each digit's size and height on the
line wander a little. Digits are placed by their ink, not by 28-pixel boxes:
the signed gap between one digit's rightmost ink column and the next one's
leftmost is drawn from `Handwriting.gap`, so a negative gap makes strokes
touch or overlap. A writer also has a spacing habit: one person crowds a
number, another spreads it, so each number draws its own window of
2 * digit_gap + 1 gap values inside `gap`, and each of its gaps from that window.

Each digit (28, 28) is warped by one affine map about its ink centre (size s,
slant: x' = s (x - tan(theta) y)) into a tile by inverse mapping with bilinear
interpolation, all digits of a number in one vectorised call; the tile is
sized for that number's digits (at most TILE), and a pixel's value does not
depend on the tile's size, so a number comes out the same alone or in a dataset.
Overlapping strokes are combined as ink on paper is: transmittances multiply
(Beer-Lambert), so darkness = 1 - (1 - a)(1 - b) >= max(a, b), never less
than either stroke.

Images are float32 (height, W): 0 paper, 1 ink, as everywhere in the package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import checks
from .compose import INK_THRESHOLD, profile_extent
from .data import IMAGE_SIZE

TILE = 96  # the largest tile a warped digit is drawn into: room for 1.6x size and 30 degrees of slant
MNIST_INK = 20  # MNIST digits are size-normalised to a 20 x 20 box (LeCun et al. 1998)
MARGIN = 2  # paper left and right of the number, pixels
MAX_HEIGHT = 512
MAX_SCALE = 1.6
MAX_SLANT = 30.0
MAX_GAP = 50
MAX_STROKE = 1.0
NUMBER_CHOICES = 4  # what `draw` picks once per number: size, slant, pen and spacing


@dataclass(frozen=True)
class Handwriting:
    """How a number is written. Ranges are uniform, both ends included; 0 turns a variation off.

    gap: (min, max) pixels between neighbouring digits' ink, negative = overlapping; every gap lies here.
    digit_gap: a number's gaps vary by up to +/- this many pixels about its own spacing, drawn uniformly
        from what `gap` leaves (a value of (max - min) / 2 or more draws every gap from all of `gap`).
    jitter: each digit's height on the line varies by up to +/- jitter pixels.
    scale: (min, max) size of the number relative to an MNIST digit (20 px of ink).
    digit_scale: each digit's size varies by up to +/- this fraction of the number's.
    slant: the number's slant in degrees, uniform in [-slant, slant] (positive leans right).
    digit_slant: each digit's slant varies by up to +/- this many degrees.
    stroke: the number's stroke width changes by up to +/- stroke pixels (dilation or erosion).
    digit_stroke: each digit's stroke varies by up to +/- this many pixels more.
    height: the image height in pixels.
    """

    gap: tuple[int, int] = (-6, 8)
    digit_gap: int = 2
    jitter: float = 2.5
    scale: tuple[float, float] = (0.8, 1.2)
    digit_scale: float = 0.15
    slant: float = 12.0
    digit_slant: float = 3.0
    stroke: float = 0.6
    digit_stroke: float = 0.15
    height: int = 40

    def __post_init__(self):
        lo, hi = checks.int_pair(self.gap, "gap", low=-MAX_GAP, high=MAX_GAP)
        object.__setattr__(self, "gap", (lo, hi))
        s_lo, s_hi = checks.float_pair(self.scale, "scale", low=0.3, high=MAX_SCALE)
        object.__setattr__(self, "scale", (s_lo, s_hi))
        object.__setattr__(self, "digit_gap", checks.integer(self.digit_gap, "digit_gap", low=0, high=MAX_GAP))
        for name, high in (("jitter", 10.0), ("digit_scale", 0.3), ("slant", MAX_SLANT), ("digit_slant", 10.0),
                           ("stroke", MAX_STROKE), ("digit_stroke", MAX_STROKE)):
            object.__setattr__(self, name, checks.number(getattr(self, name), name, low=0.0, high=high))
        object.__setattr__(self, "height", checks.integer(self.height, "height", low=8, high=MAX_HEIGHT))
        if self.slant + self.digit_slant > MAX_SLANT:
            raise ValueError(f"slant {self.slant} + digit_slant {self.digit_slant} exceeds {MAX_SLANT} degrees")
        if self.stroke + self.digit_stroke > MAX_STROKE:
            raise ValueError(f"stroke {self.stroke} + digit_stroke {self.digit_stroke} exceeds {MAX_STROKE} pixel")
        if self.scale[1] * (1 + self.digit_scale) > MAX_SCALE:
            raise ValueError(f"scale up to {self.scale[1]} with digit_scale {self.digit_scale} exceeds {MAX_SCALE}x")
        need = self.min_height
        if self.height < need:
            raise ValueError(
                f"height {self.height} is too small for digits up to {self.scale[1]}x with jitter {self.jitter}: "
                f"use at least {need}, or lower scale/jitter"
            )

    @property
    def min_height(self) -> int:
        """The smallest image height that holds the tallest MNIST digit at the highest and lowest jitter."""
        tallest = (MNIST_INK + 2 * (self.stroke + self.digit_stroke)) * self.scale[1] * (1 + self.digit_scale)
        return int(np.ceil(tallest + 2 * self.jitter)) + 2

    @property
    def max_tile(self) -> int:
        """The widest a warped digit can be: a whole 28-pixel glyph at the largest size and slant."""
        size = self.scale[1] * (1 + self.digit_scale)
        slant = np.tan(np.deg2rad(self.slant + self.digit_slant))
        return min(TILE, 2 * int(np.ceil(size * (IMAGE_SIZE / 2 + 2) * (1 + slant))) + 3)

    def to_json(self) -> dict:
        return {**asdict(self), "gap": list(self.gap), "scale": list(self.scale)}


@dataclass(frozen=True)
class Draw:
    """One number's random choices (drawn before any pixel work, so batching never changes them)."""

    scales: np.ndarray  # (n,) size of each digit
    slants: np.ndarray  # (n,) tan of each digit's slant
    strokes: np.ndarray  # (n,) stroke change of each digit, pixels
    gaps: np.ndarray  # (n - 1,) ink gaps, pixels
    dys: np.ndarray  # (n,) vertical offsets, pixels
    cells: int = 0  # > 0: comb boxes of this many pixels of padding around each digit (see paper.Paper.guides)


def draw(hand: Handwriting, n: int, rng: np.random.Generator, cells: int = 0) -> Draw:
    """Draw the random choices of one n-digit number (one call to the generator, in a fixed layout):
    four for the number (size, slant, pen, spacing), then five per digit (n - 1 gaps)."""
    u = rng.random(NUMBER_CHOICES + 5 * n - 1)
    sym = 2 * u - 1  # uniform on [-1, 1]: times half, uniform on [-half, half]
    scale = hand.scale[0] + (hand.scale[1] - hand.scale[0]) * u[0]
    slant, stroke = hand.slant * sym[1], hand.stroke * sym[2]
    k = NUMBER_CHOICES
    scales = scale * (1 + hand.digit_scale * sym[k : k + n])
    slants = np.tan(np.deg2rad(slant + hand.digit_slant * sym[k + n : k + 2 * n]))
    strokes = stroke + hand.digit_stroke * sym[k + 2 * n : k + 3 * n]
    dys = np.rint(hand.jitter * sym[k + 3 * n : k + 4 * n])
    # The writer's spacing: a window of `window` gap values, its lowest uniform on the `slots` places
    # that `gap` leaves it; each gap uniform in the window (min(..., count - 1): u * count can round up to count).
    lo, hi = hand.gap
    window = min(2 * hand.digit_gap + 1, hi - lo + 1)
    slots = hi - lo + 2 - window
    lowest = lo + min(int(u[3] * slots), slots - 1)
    gaps = lowest + np.minimum((u[k + 4 * n :] * window).astype(np.int64), window - 1)
    return Draw(scales, slants, strokes, gaps, dys, cells)


def _padded(glyphs: np.ndarray, before: int = 1, after: int = 1) -> np.ndarray:
    """glyphs (n, h, w) with `before`/`after` zero rows and columns around each (np.pad without its overhead)."""
    n, h, w = glyphs.shape
    out = np.zeros((n, h + before + after, w + before + after), np.float32)
    out[:, before : before + h, before : before + w] = glyphs
    return out


def change_stroke(glyphs: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """Thicken (stroke > 0) or thin (< 0) each glyph (n, h, w) by up to one pixel.

    A fraction |stroke| of the way to its grey dilation (or erosion) by a plus-shaped
    3x3 element, which grows a stroke by one pixel on each side at |stroke| = 1.
    """
    out = glyphs.astype(np.float32, copy=True)
    for sign, extreme in ((1, np.maximum), (-1, np.minimum)):
        pick = np.flatnonzero(sign * strokes > 0)
        if pick.size == 0:
            continue
        p = _padded(glyphs[pick])
        centre = p[:, 1:-1, 1:-1]  # the glyphs themselves (the sets picked for each sign never share a glyph)
        morphed = extreme(p[:, :-2, 1:-1], p[:, 2:, 1:-1])
        for view in (p[:, 1:-1, :-2], p[:, 1:-1, 2:], centre):
            extreme(morphed, view, out=morphed)
        # centre + amount (morphed - centre), in place
        morphed -= centre
        morphed *= (sign * strokes[pick]).astype(np.float32)[:, None, None]
        morphed += centre
        out[pick] = morphed
    return out


FAINT = 1.0 / 512  # glyph values below this (under half a grey level) are paper: they bound the warp's work


def glyph_bounds(glyphs: np.ndarray) -> tuple[np.ndarray, ...]:
    """What `warp` needs to know of each glyph (n, h, w): its ink centre (cy, cx) and how far
    its support (every non-zero pixel) reaches from it (up/down, left/right), float (n,) each.

    A glyph without ink is centred on its image; one without support reaches nowhere.
    Computed for a whole chunk of glyphs at once (numpy's per-call cost dominates per number).
    """
    n, h, w = glyphs.shape
    ink, support = glyphs > INK_THRESHOLD, glyphs >= FAINT
    r0, r_end, inked = profile_extent(ink.any(2))
    c0, c_end, _ = profile_extent(ink.any(1))
    cy = np.where(inked, (r0 + r_end - 1) / 2, (h - 1) / 2)
    cx = np.where(inked, (c0 + c_end - 1) / 2, (w - 1) / 2)
    sr0, sr_end, held = profile_extent(support.any(2))
    sc0, sc_end, _ = profile_extent(support.any(1))
    reach_v = np.where(held, np.maximum(cy - sr0, sr_end - 1 - cy) + 1, 0)
    reach_u = np.where(held, np.maximum(cx - sc0, sc_end - 1 - cx) + 1, 0)
    return cy, cx, reach_v, reach_u


def warp(glyphs: np.ndarray, scales: np.ndarray, slants: np.ndarray, bounds: tuple | None = None) -> np.ndarray:
    """Resize and slant each glyph about its ink centre: (n, h, w) -> float32 tiles (n, TH, TW).

    Tile pixel (i, j) sits at integer offsets (v, u) = (i - TH // 2, j - TW // 2)
    from the ink centre and reads the glyph at y = v / s + cy,
    x = (u + tan(theta) v) / s + cx (a slant to the right moves the top of the
    digit right), bilinearly, with zeros outside. TH x TW is the smallest
    that holds every digit of the batch; a pixel's value does not depend on
    it, so a digit comes out the same alone or in a batch.
    Bilinear interpolation is separable: each tile row first blends two source
    rows (y depends on the row alone), then two neighbouring source columns,
    fetched as one pair per pixel.
    bounds: `glyph_bounds(glyphs)` of float32 glyphs already zero below FAINT, when the caller has them.
    """
    n, h, w = glyphs.shape
    if bounds is None:
        glyphs = np.where(glyphs < FAINT, np.float32(0), glyphs.astype(np.float32))
        bounds = glyph_bounds(glyphs)
    cy, cx, reach_v, reach_u = bounds
    # Tile size: where the warped support (every non-zero pixel, one more for interpolation) can reach.
    reach_v = scales * reach_v
    reach_u = scales * reach_u + np.abs(slants) * reach_v
    th = min(TILE, 2 * int(np.ceil(reach_v.max(initial=0))) + 3)
    tw = min(TILE, 2 * int(np.ceil(reach_u.max(initial=0))) + 3)
    v = (np.arange(th) - th // 2).astype(np.float32)
    u = (np.arange(tw) - tw // 2).astype(np.float32)
    inv = (1.0 / scales).astype(np.float32)[:, None]
    # Source coordinates in the padded glyph (one zero row/column before, two after), clipped
    # onto the zero border, where a clipped point reads exactly zero.
    y = np.clip(v[None, :] * inv + (cy.astype(np.float32)[:, None] + 1), 0, h + 1)  # (n, TH)
    whole = np.floor(y)  # y >= 0: its integer part, in float32 (an int32 would make the blend below float64)
    fy = (y - whole)[:, :, None]
    y0 = whole.astype(np.int32)
    padded = _padded(glyphs, 1, 2)
    line = np.arange(n)[:, None]
    above = padded[line, y0]
    below = padded[line, y0 + 1]
    below -= above
    below *= fy
    wp = w + 3
    # Neighbouring columns side by side, read in one gather as a pair (a complex64 holds two float32);
    # each tile row's source row (n, TH, wp), above + fy (below - above), is written straight into it.
    pairs = np.empty((n, th, wp, 2), np.float32)
    src = np.add(above, below, out=pairs[..., 0])
    pairs[:, :, :-1, 1] = src[:, :, 1:]  # the last pair is never read: x <= w + 1 = wp - 2
    pairs = pairs.view(np.complex64).reshape(-1)
    shift = (slants.astype(np.float32)[:, None] * v[None, :]) * inv + (cx.astype(np.float32)[:, None] + 1)  # (n, TH)
    x = (u[None, None, :] * inv[:, :, None]) + shift[:, :, None]
    np.clip(x, 0, w + 1, out=x)
    whole = np.floor(x)  # as for y
    x -= whole  # now the fraction
    x0 = whole.astype(np.int32)
    x0 += (np.arange(n * th, dtype=np.int32) * wp).reshape(n, th, 1)
    got = pairs[x0]
    left, right = got.real, got.imag
    right -= left  # left + x (right - left), in place but for the result
    right *= x
    return right + left


@dataclass(frozen=True)
class Placement:
    """Where each warped tile goes: its top-left corner, and the ink box it leaves in the image.

    boxes: (n, 4) int (x, y, width, height) of each digit's ink (pixels > INK_THRESHOLD)
    in the image. cells: (n, 2) (x, width) of comb cells, empty without comb boxes.
    """

    tiles: np.ndarray  # (n, TH, TW)
    corners: np.ndarray  # (n, 2) int (top, left) of each tile in the image
    boxes: np.ndarray  # (n, 4)
    height: int
    width: int
    cells: np.ndarray  # (n, 2), or (0, 2) without comb boxes


def _ink_extents(tiles: np.ndarray) -> np.ndarray:
    """(n, 4) int: first row, last row + 1, first column, last column + 1 of each tile's ink
    (a one-pixel box at the centre for a tile without ink)."""
    n, th, tw = tiles.shape
    # The ink as 0/1 float32, counted per row and per column by matrix products (exact: at most TILE
    # ones): numpy's reductions over short axes cost more (a number's 8 tiles: 29 against 51 us for
    # maximum.reduce of the uint8 view; this runs once per number).
    ink = (tiles > INK_THRESHOLD).astype(np.float32)
    r0, r1, inked = profile_extent((ink.reshape(n * th, tw) @ np.ones(tw, np.float32)).reshape(n, th) > 0)
    c0, c1, _ = profile_extent(np.ones(th, np.float32) @ ink > 0)  # (th,) @ (n, th, tw) -> (n, tw)
    out = np.stack([r0, r1, c0, c1], axis=1).astype(np.int64)
    out[~inked] = [th // 2, th // 2 + 1, tw // 2, tw // 2 + 1]
    return out


def place(tiles: np.ndarray, d: Draw, height: int, ext: np.ndarray | None = None) -> Placement:
    """Put the tiles of one number side by side by their ink, on a shared baseline.

    Each digit's ink bottom sits on the baseline, moved by its dy; the number is
    centred vertically. Without comb cells, digit k + 1's first ink column is
    digit k's last + 1 + gap; with them, each digit is centred in a cell of the
    widest digit's width plus 2 * d.cells. (Plain Python: a number has a few
    digits, and numpy's per-call cost would outweigh its speed.)
    """
    ext = (_ink_extents(tiles) if ext is None else ext).tolist()
    n = len(ext)
    ink_w = [c1 - c0 for _, _, c0, c1 in ext]
    ink_h = [r1 - r0 for r0, r1, _, _ in ext]
    # Vertical: bottoms on a common line, then the whole number centred in the height.
    bottoms = [int(v) for v in d.dys.tolist()]
    tops = [b - h for b, h in zip(bottoms, ink_h)]
    shift = (height - (max(bottoms) - min(tops))) // 2 - min(tops)
    ink_top = [t + shift for t in tops]
    if d.cells:
        cell = max(ink_w) + 2 * d.cells
        lefts = [MARGIN + k * cell + (cell - w) // 2 for k, w in enumerate(ink_w)]
        cells = np.array([[MARGIN + k * cell, cell] for k in range(n)], np.int64)
        width = MARGIN * 2 + n * cell + 1
    else:
        lefts = [MARGIN]
        for w, gap in zip(ink_w[:-1], d.gaps.tolist()):
            lefts.append(lefts[-1] + w + gap)
        push = MARGIN - min(lefts)  # a large overlap must not push ink off the left edge
        if push > 0:
            lefts = [x + push for x in lefts]
        cells = np.zeros((0, 2), np.int64)
        width = max(x + w for x, w in zip(lefts, ink_w)) + MARGIN
    corners = np.array([[t - e[0], x - e[2]] for t, x, e in zip(ink_top, lefts, ext)], np.int64)
    boxes = [[x, t, w, h] for x, t, w, h in zip(lefts, ink_top, ink_w, ink_h)]
    # Across, the number always fits (lefts >= MARGIN, width = the last ink + MARGIN); a height below
    # the digits' (the API validates it, place alone does not) cuts ink off at the top and bottom.
    if min(ink_top) < 0 or max(t + h for t, h in zip(ink_top, ink_h)) > height:
        boxes = [_visible_box(tile, top, left, height, width) for tile, (top, left) in zip(tiles, corners.tolist())]
    return Placement(tiles, corners, np.array(boxes, np.int64).reshape(-1, 4), height, width, cells)


def _visible_box(tile: np.ndarray, top: int, left: int, height: int, width: int) -> list[int]:
    """The ink box (x, y, width, height) of the part of a tile placed at (top, left) that lies in the
    image (a cut-off digit's remaining ink can be narrower as well as shorter); [x, y, 0, 0] if none."""
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(height, top + tile.shape[0]), min(width, left + tile.shape[1])
    ink = tile[y0 - top : max(y0, y1) - top, x0 - left : max(x0, x1) - left] > INK_THRESHOLD
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return [x0, y0, 0, 0]
    return [x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0]) + 1, int(rows[-1] - rows[0]) + 1]


def render(p: Placement, only: int | None = None) -> np.ndarray:
    """The number's ink: float32 (height, width); `only=k` draws digit k alone.

    Ink combines as transmittances multiply: paper under two strokes is darker
    than under either, never lighter.
    """
    light = np.ones((p.height, p.width), np.float32)
    th, tw = p.tiles.shape[1:]
    clear = 1.0 - p.tiles  # each tile's transmittance, in one pass
    for k, (tile, (top, left)) in enumerate(zip(clear, p.corners.tolist())):
        if only is not None and k != only:
            continue
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(p.height, top + th), min(p.width, left + tw)
        if y1 > y0 and x1 > x0:
            light[y0:y1, x0:x1] *= tile[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.subtract(1.0, light, out=light)


def fit_width(image: np.ndarray, boxes: np.ndarray, width: int | None, stretch: bool = False):
    """Meet an exact width: a narrower image is centred between paper margins, a wider one
    squeezed horizontally (as a writer squeezes a number into a field); stretch=True resizes either.

    Returns (image, boxes) with the boxes moved or scaled to match.
    """
    if width is None or width == image.shape[1]:
        return image, boxes
    h, w = image.shape
    if width > w and not stretch:
        left = (width - w) // 2
        out = np.zeros((h, width), np.float32)
        out[:, left : left + w] = image
        return out, boxes + np.array([left, 0, 0, 0])
    from PIL import Image

    out = np.clip(np.asarray(Image.fromarray(image, mode="F").resize((width, h), Image.Resampling.BILINEAR)), 0, 1)
    scale = width / w
    x0 = np.floor(boxes[:, 0] * scale)
    x1 = np.ceil((boxes[:, 0] + boxes[:, 2]) * scale)
    scaled = boxes.copy()
    scaled[:, 0], scaled[:, 2] = x0, x1 - x0
    return out.astype(np.float32), scaled


def write_numbers(glyph_sets: list[np.ndarray], hand: Handwriting, draws: list[Draw]) -> list[Placement]:
    """Place many numbers: each glyph set (n_i, 28, 28) with its Draw.

    Strokes change for all digits at once; each number is warped on its own,
    into tiles sized for its own digits (a batch-wide tile would be as large
    as the largest digit of the batch, and cost more than the batching saves).
    """
    sizes = [len(g) for g in glyph_sets]
    glyphs = np.concatenate([np.asarray(g, np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE) for g in glyph_sets])
    strokes = np.concatenate([d.strokes for d in draws])
    glyphs = change_stroke(glyphs, strokes)  # a new array: clipped and cleaned in place
    np.clip(glyphs, 0, 1, out=glyphs)
    glyphs[glyphs < FAINT] = 0
    bounds = glyph_bounds(glyphs)
    out, start = [], 0
    for n, d in zip(sizes, draws):
        part = slice(start, start + n)
        tiles = warp(glyphs[part], d.scales, d.slants, tuple(b[part] for b in bounds))
        out.append(place(tiles, d, hand.height))
        start += n
    return out
