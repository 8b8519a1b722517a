"""What a dataset job makes: `DatasetSpec`, and image i of a job as a pure function of (seed, i).

Image i draws everything (its length, digits, source digits or latents,
augmentation, spacing) from its own stream `numpy.random.default_rng([seed, i])`,
so the result does not depend on how a job is split into shards, workers,
machines or interrupted runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from . import checks
from .augment import Augment
from .compose import FITS, check_layout_width, check_spacing, check_width, compose, ink_boxes, ink_profiles, profile_bounds
from .data import IMAGE_SIZE, NUM_CLASSES
from .realistic import Realistic

SOURCES = ("mnist", "cvae")
MAX_COUNT = 1_000_000_000  # images in one job: more is a typing error (1e9 small PNGs fill about 5 TB)
MAX_LENGTH = 1000  # digits in one image


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
    every_digit: bool = False  # source "cvae": every training digit's handwriting (Vae.sample_latents)

    def __post_init__(self):
        object.__setattr__(self, "realistic", Realistic.coerce(self.realistic))
        if not isinstance(self.every_digit, bool):
            raise ValueError(f"every_digit must be True or False, got {self.every_digit!r}")
        if self.every_digit and (self.source != "cvae" or self.realistic is not None):
            raise ValueError("every_digit applies to source 'cvae' without realistic (whose numbers share one handwriting)")
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
        if not self.every_digit:  # likewise
            del out["every_digit"]
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


def make_items(gen, spec: DatasetSpec, indices, as_uint8: bool = False) -> list[tuple[np.ndarray, str, list, list]]:
    """For the given global indices: images (float32 (height, W), 1 = ink), digit strings,
    boxes [[x, width], ...] and ink boxes [[x, y, width, height], ...].

    as_uint8: images as the uint8 (height, W) gray the writers store: `png.to_uint8`
    of the float image, inverted when spec.dark_on_light (the default job then
    skips the float image altogether).
    """
    if len(indices) == 0:
        return []
    rngs = [item_rng(spec.seed, int(i)) for i in indices]
    digits = [rng.integers(0, NUM_CLASSES, int(rng.integers(spec.length[0], spec.length[1], endpoint=True))) for rng in rngs]
    if spec.source == "cvae":
        # Draw every image's latents from its own stream, then decode them all in one batch;
        # a realistic number is written in one handwriting (one latent for all its digits).
        if spec.realistic is not None:
            latents = [np.tile(gen.vae.sample_style(rng, labels=d), (len(d), 1)) for d, rng in zip(digits, rngs)]
        else:
            latents = [gen.vae.sample_latents(d, rng, every_digit=spec.every_digit) for d, rng in zip(digits, rngs)]
        decoded = gen.vae.decode(np.concatenate(latents), np.concatenate(digits))
        glyph_sets = np.split(decoded, np.cumsum([len(d) for d in digits])[:-1])
    else:
        # One gather and one conversion for the whole chunk (gen.real_digits does the same per number).
        stored = gen.uint8_digits(gen.pick_many(digits, rngs))
        everything = stored.astype(np.float32) / np.float32(255.0)
        glyph_sets = np.split(everything, np.cumsum([len(d) for d in digits])[:-1])
    texts = ["".join(map(str, d)) for d in digits]
    if spec.source == "mnist" and spec.width is None and not (spec.ink_spacing or spec.augment.active or spec.realistic):
        return _natural_boxes(spec, texts, stored, everything, rngs, as_uint8)
    if spec.augment.active:
        glyph_sets = [[spec.augment.apply(g, rng) for g in glyphs] for glyphs, rng in zip(glyph_sets, rngs)]
    if spec.realistic is not None:
        from .realistic import write

        done = write([np.asarray(g, np.float32) for g in glyph_sets], spec.realistic, rngs, spec.width, spec.fit)
        return [(_as(image, as_uint8, spec), text, [[int(x), int(w)] for x, _, w, _ in boxes.tolist()], boxes.tolist())
                for text, (image, boxes) in zip(texts, done)]
    # Where the ink is, for every glyph of the chunk in one pass (per number it cost more than composing).
    profiles = None
    if not spec.ink_spacing and not spec.augment.active and glyph_sets:
        rows_any, cols_any = ink_profiles(np.concatenate(glyph_sets))
        bounds = np.cumsum([len(g) for g in glyph_sets])[:-1]
        profiles = list(zip(np.split(rows_any, bounds), np.split(cols_any, bounds)))
    items = []
    for k, (text, glyphs, rng) in enumerate(zip(texts, glyph_sets, rngs)):
        glyphs = list(glyphs)
        image, layout = compose(glyphs, spec.spacing, spec.width, rng, spec.fit, spec.ink_spacing)
        inked = [list(b) for b in ink_boxes(glyphs, layout, spec.ink_spacing, profiles[k] if profiles else None)]
        items.append((_as(image, as_uint8, spec), text, [list(b) for b in layout.boxes()], inked))
    return items


def _as(image: np.ndarray, as_uint8: bool, spec: DatasetSpec) -> np.ndarray:
    from .png import to_uint8

    return to_uint8(image, spec.dark_on_light) if as_uint8 else image


def _natural_boxes(spec: DatasetSpec, texts: list[str], stored: np.ndarray, glyphs: np.ndarray, rngs, as_uint8: bool) -> list:
    """make_items for real digits in 28-pixel boxes at natural width (the default job), a chunk at once.

    stored: the chunk's digits as uint8 (n, 28, 28), glyphs the same as float32.
    The same draws, pixels and boxes as `compose` and `ink_boxes` (tests compare
    them with the general path): each image's gaps come from its own stream as
    in `plan_layout`; the image is pasted in uint8 and divided by 255 once, the
    value every pasted float pixel has; ink bounds are read off one profile of
    the whole chunk. Composing number by number cost twice as much.
    """
    lo, hi = spec.spacing
    inked, top, bottom, first, last = profile_bounds(*ink_profiles(glyphs))
    items, start = [], 0
    for text, rng in zip(texts, rngs):
        n = len(text)
        gaps = rng.integers(lo, hi, size=n - 1, endpoint=True).tolist()
        offsets = [0]
        for gap in gaps:
            offsets.append(offsets[-1] + IMAGE_SIZE + gap)
        width = offsets[-1] + IMAGE_SIZE
        check_layout_width(n, hi, width)
        canvas = np.zeros((IMAGE_SIZE, width), np.uint8)
        boxes, ink = [], []
        for j, x in enumerate(offsets):
            k = start + j
            canvas[:, x : x + IMAGE_SIZE] = stored[k]
            boxes.append([x, IMAGE_SIZE])
            ink.append([x + first[k], top[k], last[k] - first[k], bottom[k] - top[k]] if inked[k] else [x, 0, 0, 0])
        start += n
        # u / 255 in float32 is what every pasted pixel is; to_uint8 gives back u, or 255 - u
        # inverted (tests check all 256 values).
        if as_uint8:
            image = 255 - canvas if spec.dark_on_light else canvas
        else:
            image = canvas.astype(np.float32) / np.float32(255.0)
        items.append((image, text, boxes, ink))
    return items
