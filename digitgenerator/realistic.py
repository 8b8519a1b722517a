"""The recommended mix for OCR training data: handwriting layout plus paper and scanner.

`Realistic()` is what `--realistic` turns on; each part can be changed
(`Realistic(hand=Handwriting(gap=(-4, 2)), paper=None)`). `write` turns sets of
digit glyphs into finished images and the ink box of every digit, for one
number (the API) or a whole chunk of a dataset at once, with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import checks, handwriting
from .compose import FITS
from .handwriting import MARGIN, Handwriting
from .paper import COMB_PADDING, Paper, guide_mask, scan



@dataclass(frozen=True)
class Realistic:
    """Handwriting layout (`hand`) and, unless None, paper and scanner (`paper`)."""

    hand: Handwriting = field(default_factory=Handwriting)
    paper: Paper | None = field(default_factory=Paper)

    def __post_init__(self):
        if not isinstance(self.hand, Handwriting):
            raise ValueError(f"hand must be a Handwriting, got {self.hand!r:.60}")
        if self.paper is not None and not isinstance(self.paper, Paper):
            raise ValueError(f"paper must be a Paper or None, got {self.paper!r:.60}")

    @classmethod
    def coerce(cls, value) -> "Realistic | None":
        """True -> the recommended mix, False/None -> off, a Realistic -> itself."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        raise ValueError(f"realistic must be True, False or a Realistic(...), got {value!r:.60}")

    def to_json(self) -> dict:
        return {"hand": self.hand.to_json(), "paper": None if self.paper is None else self.paper.to_json()}

    def max_width(self, digits: int) -> int:
        """An upper bound on the natural width of a number of `digits` digits."""
        return 2 * MARGIN + 1 + digits * (self.hand.max_tile + max(self.hand.gap[1], 2 * COMB_PADDING[1], 0))


def write(glyph_sets, realistic: Realistic, rngs, width: int | None = None, fit: str = "pad"):
    """Finished numbers: a list of (float32 image (height, W), int boxes (n, 4) of x, y, width, height).

    glyph_sets: one float array (n_i, 28, 28) per number (0 paper, 1 ink);
    rngs: one Generator per number, used in a fixed order (guides, layout,
    then paper), so a number's image depends only on its own stream.
    width: None for natural width; else numbers narrower than it are centred
    on the paper and wider ones squeezed to it, as a writer squeezes a number
    into a field (fit="stretch" resizes every number to it).
    """
    checks.choice(fit, "fit", FITS)
    kinds, draws = [], []
    for glyphs, rng in zip(glyph_sets, rngs):
        kind = realistic.paper.draw_guides(rng) if realistic.paper is not None else "none"
        cells = int(rng.integers(*COMB_PADDING, endpoint=True)) if kind == "comb" else 0
        kinds.append(kind)
        draws.append(handwriting.draw(realistic.hand, len(glyphs), rng, cells))
    placements = handwriting.write_numbers(glyph_sets, realistic.hand, draws)
    out = []
    for p, kind, rng in zip(placements, kinds, rngs):
        ink = handwriting.render(p)
        mask = guide_mask(ink.shape, kind, p.boxes, p.cells, rng) if kind != "none" else None
        boxes = p.boxes
        stretch = fit == "stretch"
        ink, boxes = handwriting.fit_width(ink, p.boxes, width, stretch)
        if mask is not None:
            mask = handwriting.fit_width(mask, p.boxes, width, stretch)[0]
        image = ink if realistic.paper is None else scan(ink, realistic.paper, rng, mask)
        out.append((image, boxes))
    return out
