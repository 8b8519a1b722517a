"""Paper and scanner: the page a number was written on, as a scan shows it.

Works in reflectance (1 = white) and multiplies, as light does: the paper
reflects (1 - tone) unevenly (a smooth texture), printed guide lines and then
ink absorb a share of it (ink of darkness k over stroke coverage a leaves
1 - k a), the scanner's optics blur it (or its firmware sharpens it, as
scanners and phone cameras do), its sensor adds grain, and its contrast is
set. The result goes back to the package's convention, darkness (0 paper,
1 ink), so that PNGs of it are written black ink on white.

Texture and grain are cut at random offsets from two fixed random fields made
once per process from a constant seed, rather than drawn per pixel: the same
seed gives the same bytes, and an image costs a slice instead of a draw per
pixel.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from . import checks

GUIDES = ("none", "line", "comb", "mixed")
MIXED_GUIDES = (("none", 0.5), ("line", 0.25), ("comb", 0.25))  # what "mixed" draws, with probabilities
BANK_SHAPE = (256, 2048)  # the texture and grain fields, pixels
TEXTURE_CELL = 8  # the texture varies smoothly over about this many pixels
BANK_SEED = 20_241_124
COMB_PADDING = (3, 6)  # pixels between a digit's ink and its comb box, uniform
MAX_SHARPEN = 2.0  # an unsharp mask of amount 2 already rings: strokes get a white halo
# Texture and grain are fractions of the paper's brightness; past half of it they rival
# the ink's own contrast. Blur is the share of the way to the 3x3 binomial smoothing.
MAX_TEXTURE = MAX_NOISE = 0.5
MAX_BLUR = 1.0


@dataclass(frozen=True)
class Paper:
    """How the page and the scan look. Ranges are uniform per image; 0 turns an effect off.

    tone: (min, max) darkness of the paper (0 white).
    ink: (min, max) darkness of the ink.
    texture: largest amplitude of the paper's smooth unevenness (darkness).
    noise: largest standard deviation of the scanner's per-pixel grain.
    blur: largest blur: the image moves this fraction of the way to its 3x3
        binomial smoothing ([1 2 1]/4 each way, a Gaussian of sigma ~0.7 px).
    sharpen: largest sharpening (an unsharp mask, as scanners and phone cameras
        apply): the image moves this multiple of its difference from that
        smoothing away from it. Each scan draws one amount, uniform from
        sharpening `sharpen` to blurring `blur`.
    contrast: (min, max) scanner contrast about mid-grey.
    guides: printed guides: "none", "line" (a rule under the number, as on
        amount fields), "comb" (one box per digit, as for postcodes) or "mixed"
        (none 50%, line 25%, comb 25%).
    guide_ink: (min, max) darkness of the printed guides.
    """

    tone: tuple[float, float] = (0.0, 0.15)
    ink: tuple[float, float] = (0.7, 1.0)
    texture: float = 0.03
    noise: float = 0.03
    blur: float = 1.0
    sharpen: float = 1.0
    contrast: tuple[float, float] = (0.85, 1.15)
    guides: str = "mixed"
    guide_ink: tuple[float, float] = (0.2, 0.5)

    def __post_init__(self):
        for name in ("tone", "ink", "guide_ink"):
            object.__setattr__(self, name, checks.float_pair(getattr(self, name), name, low=0.0, high=1.0))
        object.__setattr__(self, "contrast", checks.float_pair(self.contrast, "contrast", low=0.1, high=4.0))
        for name, high in (("texture", MAX_TEXTURE), ("noise", MAX_NOISE), ("blur", MAX_BLUR), ("sharpen", MAX_SHARPEN)):
            object.__setattr__(self, name, checks.number(getattr(self, name), name, low=0.0, high=high))
        checks.choice(self.guides, "guides", GUIDES)
        if self.ink[1] <= self.tone[0]:
            raise ValueError(f"ink darkness {self.ink} must exceed the paper tone {self.tone}, or the ink is invisible")

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def draw_guides(self, rng: np.random.Generator) -> str:
        """The guide kind of one image (drawn even when fixed, so that every image uses one draw)."""
        u = float(rng.random())
        if self.guides != "mixed":
            return self.guides
        for kind, p in MIXED_GUIDES:
            if u < p:
                return kind
            u -= p
        return MIXED_GUIDES[-1][0]


@functools.lru_cache(maxsize=1)
def _banks() -> tuple[np.ndarray, np.ndarray]:
    """(texture, grain): smooth and white unit-variance fields of BANK_SHAPE, float32, made once."""
    from PIL import Image

    rng = np.random.default_rng(BANK_SEED)
    h, w = BANK_SHAPE
    coarse = rng.standard_normal((h // TEXTURE_CELL, w // TEXTURE_CELL), dtype=np.float32)
    smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC), np.float32)
    smooth = smooth / smooth.std()
    grain = rng.standard_normal((h, w), dtype=np.float32)
    return smooth, grain


def _cut(bank: np.ndarray, shape: tuple[int, int], u: float, v: float) -> np.ndarray:
    """A (h, w) window of the bank at relative offset (u, v) in [0, 1); tiled when the bank is smaller."""
    h, w = shape
    bh, bw = bank.shape
    if h > bh or w > bw:
        bank = np.tile(bank, (-(-h // bh) + 1, -(-w // bw) + 1))
        bh, bw = bank.shape
    r, c = int(u * (bh - h + 1)), int(v * (bw - w + 1))
    return bank[r : r + h, c : c + w]


def _smooth(x: np.ndarray) -> np.ndarray:
    """The 3x3 binomial smoothing [1 2 1]/4 (x) [1 2 1]/4, edges repeated."""
    h, w = x.shape
    p = np.empty((h + 2, w + 2), np.float32)
    p[1:-1, 1:-1] = x
    p[0, 1:-1], p[-1, 1:-1] = x[0], x[-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    rows = p[:-2] + p[2:]
    rows += 2 * p[1:-1]
    out = rows[:, :-2] + rows[:, 2:]
    out += 2 * rows[:, 1:-1]
    out *= 0.0625
    return out


def guide_mask(shape: tuple[int, int], kind: str, boxes: np.ndarray, cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where the printed guides are: float32 (h, w), 1 on a guide line.

    line: one rule 1-3 pixels under the lowest ink. comb: each cell's left and
    right edges and a top and bottom line 1-3 pixels beyond the ink.
    """
    h, w = shape
    mask = np.zeros(shape, np.float32)
    below = rng.integers(1, 3, endpoint=True)
    above = rng.integers(1, 3, endpoint=True)
    bottom = min(h - 1, int((boxes[:, 1] + boxes[:, 3]).max()) + int(below) - 1)
    if kind == "line":
        mask[bottom, :] = 1
    elif kind == "comb" and len(cells):
        top = max(0, int(boxes[:, 1].min()) - int(above))
        x0, x1 = int(cells[0, 0]), int(cells[-1, 0] + cells[-1, 1])
        mask[top, x0 : x1 + 1] = 1
        mask[bottom, x0 : x1 + 1] = 1
        for x in list(cells[:, 0]) + [x1]:
            mask[top : bottom + 1, min(int(x), w - 1)] = 1
    return mask


def scan(ink: np.ndarray, paper: Paper, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
    """The written ink (h, w) (0 paper, 1 ink) on paper, scanned: float32 darkness (h, w) in [0, 1]."""
    texture_bank, grain_bank = _banks()
    # Python floats, so that every product below stays float32 (a numpy float64 would upcast the image).
    tone, darkness, texture, noise, blur, contrast, guide, *offsets = (float(v) for v in rng.random(11))
    lerp = lambda pair, t: pair[0] + (pair[1] - pair[0]) * t  # noqa: E731
    tone, darkness, contrast, guide = (lerp(paper.tone, tone), lerp(paper.ink, darkness),
                                       lerp(paper.contrast, contrast), lerp(paper.guide_ink, guide))
    # blur > 0 smooths, blur < 0 sharpens; with sharpen = 0 this is exactly blur * paper.blur
    texture, noise, blur = texture * paper.texture, noise * paper.noise, blur * (paper.blur + paper.sharpen) - paper.sharpen
    # reflect = (1 - tone)(1 - texture T)(1 - guide M)(1 - darkness ink), then blur (or sharpening), grain and contrast
    reflect = _cut(texture_bank, ink.shape, offsets[0], offsets[1]) * (-texture * (1.0 - tone))
    reflect += 1.0 - tone
    if mask is not None:
        reflect *= 1.0 - guide * mask
    absorbed = ink * -darkness
    absorbed += 1.0
    reflect *= absorbed
    if blur:
        smooth = _smooth(reflect)
        smooth -= reflect
        smooth *= blur
        reflect += smooth
    if noise:
        reflect += _cut(grain_bank, ink.shape, offsets[2], offsets[3]) * noise
    reflect *= contrast
    reflect += 0.5 * (1.0 - contrast)
    np.clip(reflect, 0.0, 1.0, out=reflect)
    return (1.0 - reflect).astype(np.float32, copy=False)
