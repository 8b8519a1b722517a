"""Handwriting layout, paper and --realistic: what a user sees in the images and the manifest."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from digitgenerator import Digitgenerator
from digitgenerator.cli import dataset_main, main
from digitgenerator.compose import INK_THRESHOLD
from digitgenerator.dataset import DatasetSpec, batches, export
from digitgenerator.handwriting import Draw, Handwriting, draw, place, render, warp, write_numbers
from digitgenerator.idx import write_idx
from digitgenerator.paper import Paper
from digitgenerator.png import read_png
from digitgenerator.realistic import Realistic
from digitgenerator.spec import make_items

LAYOUT_ONLY = Realistic(paper=None)
HEIGHT = Handwriting().height


QUANTUM = 1 / 255 + 1e-6  # what 8-bit PNG rounding can move a pixel by


def assert_boxes_tight(ink: np.ndarray, boxes) -> None:
    """No ink outside the boxes, and ink on every edge of each box (up to PNG rounding)."""
    inside = np.zeros(ink.shape, bool)
    for x, y, w, h in boxes:
        assert w > 0 and h > 0
        inside[y : y + h, x : x + w] = True
        region = ink[y : y + h, x : x + w] > INK_THRESHOLD - QUANTUM
        assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any(), (x, y, w, h)
    assert not (ink[~inside] > INK_THRESHOLD + QUANTUM).any(), "ink outside every box"


def ink_bbox(image: np.ndarray, threshold: float = INK_THRESHOLD):
    """(x, y, width, height) of the pixels above threshold, computed directly."""
    ys, xs = np.nonzero(image > threshold)
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


@pytest.fixture(scope="module")
def gen():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Digitgenerator(seed=0)


def touching_placement(gen, seed: int, digits=(2, 0, 2, 6, 1, 9, 7, 4)):
    rng = np.random.default_rng(seed)
    hand = Handwriting(gap=(-4, -2))
    glyphs = gen.real_digits(np.array(digits), rng)
    return write_numbers([glyphs], hand, [draw(hand, len(digits), rng)])[0]


@pytest.mark.parametrize("seed", range(5))
def test_overlapping_strokes_never_erase_ink(gen, seed):
    p = touching_placement(gen, seed)
    assert (np.diff(p.boxes[:, 0]) < p.boxes[:-1, 2]).any(), "the gaps should make ink boxes overlap"
    whole = render(p)
    alone = np.stack([render(p, only=k) for k in range(len(p.boxes))])
    # Every stroke is at least as dark in the number as on its own, and overlaps are darker still:
    # ink combines like transmittances, 1 - prod(1 - a_k).
    assert np.all(whole >= alone.max(axis=0) - 1e-6)
    np.testing.assert_allclose(whole, 1 - np.prod(1 - alone, axis=0), atol=1e-6)
    assert whole.max() <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_boxes_are_where_each_digits_ink_landed(gen, seed):
    p = touching_placement(gen, seed)
    for k, box in enumerate(p.boxes.tolist()):
        assert tuple(box) == ink_bbox(render(p, only=k))


@pytest.mark.parametrize("height", [12, 20])
def test_boxes_are_cut_to_the_image_when_ink_leaves_it(gen, height):
    """Placed into fewer rows than its digits need, a number loses ink at the top and bottom edges;
    each box still holds exactly the ink that stayed in the image."""
    rng = np.random.default_rng(3)
    hand = Handwriting(jitter=4)
    glyphs = gen.real_digits(np.array([1, 7, 4, 0]), rng)
    d = draw(hand, 4, rng)
    tiles = write_numbers([glyphs], hand, [d])[0].tiles
    p = place(tiles, d, height)
    assert p.boxes[:, 3].max() == height, "the tallest digit should fill the whole height"
    for k, box in enumerate(p.boxes.tolist()):
        assert tuple(box) == ink_bbox(render(p, only=k))


def test_one_slant_and_size_per_number_with_small_variation():
    hand = Handwriting()
    rng = np.random.default_rng(0)
    spreads, sizes, pens, spacings, firsts, offsets = [], [], [], [], [], []
    for _ in range(200):
        d = draw(hand, 8, rng)
        sizes.append(d.scales.mean())
        pens.append(d.strokes.mean())
        spacings.append(d.gaps.mean())
        firsts.append(d.scales[0] / d.scales.mean())
        assert d.dys.shape == d.scales.shape == (8,) and d.gaps.shape == (7,)
        slants = np.rad2deg(np.arctan(d.slants))
        offsets.append(np.stack([d.dys, d.scales / d.scales.mean(), slants - slants.mean(), d.strokes - d.strokes.mean()]))
        assert np.ptp(slants) <= 2 * hand.digit_slant + 1e-9
        assert np.all(np.abs(slants) <= hand.slant + hand.digit_slant + 1e-9)
        assert np.ptp(d.strokes) <= 2 * hand.digit_stroke + 1e-9
        assert d.scales.max() / d.scales.min() <= (1 + hand.digit_scale) / (1 - hand.digit_scale) + 1e-9
        assert np.all((d.scales >= hand.scale[0] * (1 - hand.digit_scale)) & (d.scales <= hand.scale[1] * (1 + hand.digit_scale)))
        assert np.all((d.gaps >= hand.gap[0]) & (d.gaps <= hand.gap[1]))
        assert np.all(np.abs(d.dys) <= np.ceil(hand.jitter))
        spreads.append(slants.mean())
    # ... while numbers differ from each other by much more than their digits do,
    assert np.std(spreads) > 3 * hand.digit_slant / np.sqrt(3) / np.sqrt(8)
    # and a number's size, slant, pen and spacing are drawn independently of each other and of its digits'.
    assert np.abs(np.corrcoef([spreads, sizes, pens, spacings])[np.triu_indices(4, 1)]).max() < 0.3
    assert abs(np.corrcoef(spacings, firsts)[0, 1]) < 0.3
    # each digit's own height on the line, size, slant and pen are drawn independently too
    per_digit = np.concatenate(offsets, axis=1)
    assert np.abs(np.corrcoef(per_digit)[np.triu_indices(4, 1)]).max() < 0.2


def test_each_number_has_its_writers_spacing():
    """Every gap lies in `gap`; a number's gaps lie within 2 * digit_gap of each other, while numbers
    differ: crowded and spread numbers both occur, and every allowed gap is drawn."""
    hand = Handwriting(gap=(-6, 8), digit_gap=2)
    rng = np.random.default_rng(0)
    gaps = np.array([draw(hand, 6, rng).gaps for _ in range(3000)])  # (numbers, 5)
    assert gaps.min() == -6 and gaps.max() == 8
    assert set(np.unique(gaps)) == set(range(-6, 9))
    assert np.ptp(gaps, axis=1).max() == 4  # the window: 2 * digit_gap
    means = gaps.mean(axis=1)
    assert (means <= -3.5).any() and (means >= 5.5).any(), "crowded and spread numbers"
    # within a number the gaps vary far less than across numbers (independent draws: about 5/6)
    assert gaps.var(axis=1).mean() / gaps.var() < 0.2
    # the window's lowest gap is uniform over -6..4, so each end value is drawn for 1/11 of numbers
    assert np.mean(gaps.min(axis=1) == -6) == pytest.approx(1 / 11 * (1 - (4 / 5) ** 5), abs=0.02)


@pytest.mark.parametrize("digit_gap", [0, 5, 7, 50])
def test_digit_gap_zero_spaces_a_number_evenly_and_a_wide_one_draws_every_gap_alone(digit_gap):
    hand = Handwriting(gap=(-3, 6), digit_gap=digit_gap)
    rng = np.random.default_rng(1)
    gaps = np.array([draw(hand, 8, rng).gaps for _ in range(2000)])
    assert gaps.min() == -3 and gaps.max() == 6
    if digit_gap == 0:
        assert np.ptp(gaps, axis=1).max() == 0
        assert set(gaps[:, 0]) == set(range(-3, 7))
    else:  # a window as wide as `gap` or wider: each gap uniform on -3..6, independently
        assert np.bincount(gaps.ravel() + 3) / gaps.size == pytest.approx(np.full(10, 0.1), abs=0.01)
        assert abs(np.corrcoef(gaps[:, 0], gaps[:, 1])[0, 1]) < 0.06


def test_dataset_gaps_follow_gap_and_digit_gap(tmp_path):
    """Read back from the manifest's ink boxes: every gap within --gap, each number's within the window."""
    out = tmp_path / "ds"
    assert dataset_main(["--count", "60", "--length", "4", "6", "--out", str(out), "--realistic", "--no-paper",
                         "--gap", "-2", "9", "--digit-gap", "1", "--seed", "4", "--no-progress"]) == 0
    spreads = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        boxes = np.array(json.loads(line)["ink_boxes"])
        gaps = boxes[1:, 0] - (boxes[:-1, 0] + boxes[:-1, 2])
        assert gaps.min() >= -2 and gaps.max() <= 9
        spreads.append(np.ptp(gaps))
    assert max(spreads) == 2 and min(spreads) < 2


def test_the_smallest_allowed_height_holds_the_tallest_digits(gen):
    """At its smallest allowed height, the largest, most jittered, thickest digits keep all their ink."""
    hand = Handwriting(scale=(1.2, 1.2), digit_scale=0.3, jitter=4, stroke=1.0, digit_stroke=0, height=100)
    low = hand.min_height
    with pytest.raises(ValueError, match="at least"):
        Handwriting(**{**hand.to_json(), "height": low - 1})
    tight = Handwriting(**{**hand.to_json(), "height": low})
    rng = np.random.default_rng(0)
    ones = gen.real_digits(np.array([1, 4, 7, 1, 9, 1, 4, 7] * 4), rng)  # tall digits
    for k in range(20):
        d = draw(tight, len(ones), rng)
        d = Draw(d.scales, d.slants, np.full(len(ones), 1.0), d.gaps, np.where(np.arange(len(ones)) % 2, -4.0, 4.0))
        p = write_numbers([ones], tight, [d])[0]
        roomy = place(p.tiles, d, 3 * low)
        assert render(p).sum() == pytest.approx(render(roomy).sum(), rel=1e-5), "ink cut off at the top or bottom"


def test_documented_defaults_of_the_mix():
    """README's numbers: 40 pixels high, gaps of -6..8 pixels (a number's within +/- 2 of its own), one slant of +/- 12 degrees (+/- 3 per digit),
    one pen of +/- 0.6 px (+/- 0.15), sizes 0.8-1.2x (+/- 15%), +/- 2.5 px off the line;
    guides mixed half none, a quarter each rule and comb."""
    from digitgenerator.paper import MIXED_GUIDES

    assert Handwriting().height == 40 and Handwriting().gap == (-6, 8) and Handwriting().digit_gap == 2
    hand = Handwriting()
    assert (hand.slant, hand.digit_slant, hand.stroke, hand.digit_stroke) == (12.0, 3.0, 0.6, 0.15)
    assert (hand.scale, hand.digit_scale, hand.jitter) == ((0.8, 1.2), 0.15, 2.5)
    rng = np.random.default_rng(0)
    kinds = [Paper().draw_guides(rng) for _ in range(4000)]
    share = {k: kinds.count(k) / len(kinds) for k, _ in MIXED_GUIDES}
    assert share == pytest.approx({"none": 0.5, "line": 0.25, "comb": 0.25}, abs=0.03)
    assert (Paper().blur, Paper().sharpen) == (1.0, 1.0)  # each scan from a full unsharp mask to a full blur


def test_natural_width_stays_within_the_bound_loaders_pad_to(gen):
    """spec.max_width (what the PyTorch and TensorFlow loaders pad to) holds every number, even
    the widest the options allow: largest digits, most slant, widest gaps or comb cells."""
    for hand, guides in ((Handwriting(scale=(1.2, 1.2), digit_scale=0.3, slant=27, gap=(50, 50), height=60), "none"),
                         (Handwriting(scale=(1.6, 1.6), digit_scale=0, slant=27, height=60), "comb")):
        style = Realistic(hand=hand, paper=Paper(guides=guides))
        spec = DatasetSpec(count=64, length=(6, 6), realistic=style, seed=1)
        widths = [item[0].shape[1] for item in make_items(gen, spec, range(64))]
        assert max(widths) <= spec.max_width


def test_the_largest_scale_is_allowed_and_no_more():
    assert Handwriting(scale=(0.8, 1.6), digit_scale=0, height=60).scale == (0.8, 1.6)
    with pytest.raises(ValueError, match="exceeds 1.6x"):
        Handwriting(scale=(0.8, 1.6), digit_scale=0.01, height=60)


def test_warp_is_the_same_alone_or_in_a_batch(gen):
    rng = np.random.default_rng(3)
    glyphs = gen.real_digits(rng.integers(0, 10, 6), rng)
    scales, slants = rng.uniform(0.8, 1.3, 6), np.tan(np.deg2rad(rng.uniform(-20, 20, 6)))
    batch = warp(glyphs, scales, slants)
    for k in range(6):
        alone = warp(glyphs[k : k + 1], scales[k : k + 1], slants[k : k + 1])[0]
        th, tw = alone.shape
        bh, bw = batch.shape[1:]
        # Same pixel offsets from the ink centre, whatever the tile size.
        crop = batch[k, bh // 2 - th // 2 : bh // 2 - th // 2 + th, bw // 2 - tw // 2 : bw // 2 - tw // 2 + tw]
        np.testing.assert_array_equal(crop, alone)
        assert batch[k].sum() == pytest.approx(alone.sum(), rel=1e-6)


def test_warp_matches_scipy_bilinear_resampling(gen):
    """Every tile pixel is the glyph read where warp's docstring says, interpolated as
    scipy.ndimage.map_coordinates does at order 1 with zeros beyond the edges (an independent reference)."""
    from scipy import ndimage

    rng = np.random.default_rng(11)
    glyphs = gen.real_digits(rng.integers(0, 10, 12), rng).astype(np.float32)
    glyphs[glyphs < 1 / 512] = 0  # what warp treats as paper (FAINT)
    scales, slants = rng.uniform(0.6, 1.6, 12), np.tan(np.deg2rad(rng.uniform(-30, 30, 12)))
    tiles = warp(glyphs, scales, slants)
    th, tw = tiles.shape[1:]
    v, u = np.mgrid[0:th, 0:tw]
    v, u = v - th // 2, u - tw // 2
    for glyph, s, t, tile in zip(glyphs, scales, slants, tiles):
        rows, cols = np.flatnonzero((glyph > INK_THRESHOLD).any(1)), np.flatnonzero((glyph > INK_THRESHOLD).any(0))
        cy, cx = (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2  # the centre of the ink's box
        expected = ndimage.map_coordinates(glyph.astype(np.float64), [v / s + cy, (u + t * v) / s + cx], order=1, mode="grid-constant")
        np.testing.assert_allclose(tile, expected, atol=2e-5)
        assert tile.sum() == pytest.approx(glyph.sum() * s**2, rel=0.02)  # the whole digit is in its tile


def test_warp_centres_a_glyph_without_ink_on_its_image():
    """A glyph that is all faint (under the ink threshold) has no ink centre: it is warped about
    the centre of its image and keeps its faint strokes, none lost off the tile."""
    glyph = np.zeros((1, 28, 28), np.float32)
    glyph[0, 6:22, 10:18] = 0.1  # faint, below INK_THRESHOLD
    tile = warp(glyph, np.array([1.0]), np.array([0.0]))[0]
    assert tile.sum() == pytest.approx(glyph.sum(), rel=1e-5)
    th, tw = tile.shape
    rows, cols = np.flatnonzero(tile.any(1)), np.flatnonzero(tile.any(0))
    # The faint block's centre, (13.5, 13.5) from the image's (13.5, 13.5), lands on the tile's centre.
    assert (rows[0] + rows[-1]) / 2 == pytest.approx(th // 2) and (cols[0] + cols[-1]) / 2 == pytest.approx(tw // 2)


def test_warp_scales_and_slants_as_asked():
    square = np.zeros((1, 28, 28), np.float32)
    square[0, 9:19, 9:19] = 1  # a 10 x 10 block
    big = warp(square, np.array([1.5]), np.array([0.0]))[0]
    x, y, w, h = ink_bbox(big, 0.5)
    assert (w, h) == (15, 15)
    slanted = warp(square, np.array([1.0]), np.array([np.tan(np.deg2rad(20))]))[0]
    rows = [np.flatnonzero(r > 0.5) for r in slanted if (r > 0.5).any()]
    # A right-leaning slant moves the top of the block right of its bottom, by about tan(20) x 10 px.
    assert rows[0].mean() - rows[-1].mean() == pytest.approx(np.tan(np.deg2rad(20)) * 9, abs=1.0)


def test_warp_keeps_faint_ink_far_from_the_strokes():
    glyph = np.zeros((1, 28, 28), np.float32)
    glyph[0, 9:20, 9:20] = 1  # ink centred on pixel (14, 14): at size 1 the warp samples whole pixels
    glyph[0, 14, 2] = glyph[0, 26, 14] = 0.05  # faint specks 12 px left of and below the centre, under the ink threshold
    tile = warp(glyph, np.array([1.0]), np.array([0.0]))[0]
    assert tile.sum() == pytest.approx(glyph.sum(), abs=1e-4)


@pytest.mark.parametrize("scale, slant", [(1.0, 0.0), (1.5, 0.0), (1.0, 0.5)])
def test_warp_never_cuts_ink_off_nor_reads_past_the_glyph(scale, slant):
    """A bar wider than tall reaching the glyph's left and right edges (MNIST digits are
    taller than wide, and blank at their edges) comes out whole: as much ink as the bar times
    the area scale, and nothing beyond the bar's own ends."""
    bar = np.zeros((1, 28, 28), np.float32)
    bar[0, 12:16, :] = 1  # 28 x 4 pixels, touching both sides
    tile = warp(bar, np.array([scale]), np.array([slant]))[0]
    assert tile.sum() == pytest.approx(bar.sum() * scale**2, rel=0.03)
    x, y, w, h = ink_bbox(tile, 0.5)
    assert w == pytest.approx(28 * scale + abs(slant) * 4 * scale, abs=1.5)


def binomial_reference(x: np.ndarray) -> np.ndarray:
    """The 3x3 binomial smoothing with repeated edges, by scipy, in float64."""
    from scipy import ndimage

    rows = ndimage.correlate1d(x.astype(np.float64), [0.25, 0.5, 0.25], axis=0, mode="nearest")
    return ndimage.correlate1d(rows, [0.25, 0.5, 0.25], axis=1, mode="nearest")


def test_smoothing_is_the_binomial_filter_with_repeated_edges():
    from digitgenerator.paper import _smooth

    x = np.random.default_rng(0).random((7, 11), dtype=np.float32)
    np.testing.assert_allclose(_smooth(x), binomial_reference(x), atol=1e-6)


def test_a_blank_digit_holds_its_place(gen):
    rng = np.random.default_rng(5)
    glyphs = gen.real_digits(np.array([3, 8, 1]), rng)
    blank = glyphs.copy()
    blank[1] = 0
    hand = Handwriting(gap=(2, 2), jitter=0, digit_scale=0, slant=0, digit_slant=0, stroke=0, digit_stroke=0, scale=(1, 1))
    d = draw(hand, 3, np.random.default_rng(1))
    with_blank = write_numbers([blank], hand, [d])[0]
    x, y, w, h = with_blank.boxes[1]
    assert (w, h) == (1, 1), "a digit without ink is a one-pixel placeholder"
    left, right = with_blank.boxes[0], with_blank.boxes[2]
    assert x == left[0] + left[2] + 2 and right[0] == x + 1 + 2
    assert render(with_blank, only=1).max() == 0
    # The other digits are drawn as they are without the blank between them.
    whole = write_numbers([glyphs], hand, [d])[0]
    for k in (0, 2):
        np.testing.assert_array_equal(_ink_crop(render(with_blank, only=k)), _ink_crop(render(whole, only=k)))


def _ink_crop(image):
    rows, cols = np.flatnonzero(image.max(1) > 0), np.flatnonzero(image.max(0) > 0)
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_stroke_width_follows_the_draw(gen):
    rng = np.random.default_rng(0)
    glyphs = gen.real_digits(np.array([0]), rng)
    base = Draw(np.ones(1), np.zeros(1), np.zeros(1), np.zeros(0, np.int64), np.zeros(1))
    ink = {s: render(place(*_one(glyphs, base, s))).sum() for s in (-1.0, 0.0, 1.0)}
    assert ink[-1.0] < 0.8 * ink[0.0] and ink[1.0] > 1.2 * ink[0.0]


def _one(glyphs, base, stroke):
    from digitgenerator.handwriting import change_stroke

    g = np.clip(change_stroke(glyphs, np.array([stroke])), 0, 1)
    return warp(g, base.scales, base.slants), base, HEIGHT


def test_api_realistic_image_and_boxes(gen):
    image = gen.draw_from_mnist([2, 0, 2, 6], realistic=LAYOUT_ONLY, seed=4)
    assert image.dtype == np.float32 and image.shape[0] == Handwriting().height
    boxes = np.array(gen.latest_layout.ink_boxes)
    assert len(boxes) == 4
    assert_boxes_tight(image, boxes)
    assert [x for x, _ in gen.latest_layout.boxes()] == boxes[:, 0].tolist()


def test_api_same_seed_same_image_and_the_default_mix_is_on_paper(gen):
    a = gen.draw_from_mnist([3, 1, 4], realistic=True, seed=9)
    b = gen.draw_from_mnist([3, 1, 4], realistic=True, seed=9)
    c = gen.draw_from_mnist([3, 1, 4], realistic=True, seed=10)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert (a > 0).mean() > 0.5, "paper grain and tone darken almost every pixel a little"


def test_paper_covers_numbers_wider_than_its_texture_bank(gen):
    """A field wider than the 2,048-pixel texture and grain fields is textured to its far edge."""
    from digitgenerator.paper import BANK_SHAPE

    width = BANK_SHAPE[1] + 900
    image = gen.draw_from_mnist([1, 2], realistic=True, image_width=width, seed=0)
    assert image.shape == (Handwriting().height, width)
    assert image[:, -300:].std() > 0.5 * image[:, 300:600].std() > 0


def test_api_refuses_box_spacing_with_realistic(gen):
    with pytest.raises(ValueError, match="Handwriting.gap"):
        gen.draw_from_mnist([1, 2], (2, 6), realistic=True)
    with pytest.raises(ValueError, match="Handwriting.gap"):
        gen.draw_from_mnist([1, 2], ink_spacing=True, realistic=True)
    with pytest.raises(ValueError, match="realistic must be"):
        gen.draw_from_mnist([1, 2], realistic="yes")


def test_squeezed_numbers_keep_each_digits_ink_in_its_box(gen):
    """A number squeezed into a narrower field: each digit's box, scaled with it, holds all of that
    digit's squeezed ink (drawn alone) and is at most a pixel wider on either side than what is left of
    it (a stray speck just above the ink threshold fades below it when squeezed, not out); heights stay."""
    from digitgenerator.handwriting import fit_width

    rng = np.random.default_rng(5)
    hand = Handwriting(gap=(-2, 4))
    for _ in range(5):
        glyphs = gen.real_digits(rng.integers(0, 10, 6), rng)
        p = write_numbers([glyphs], hand, [draw(hand, 6, rng)])[0]
        width = int(p.width * rng.uniform(0.5, 0.9))
        _, boxes = fit_width(render(p), p.boxes, width)
        assert (boxes[:, [1, 3]] == p.boxes[:, [1, 3]]).all()
        for k, (x, y, w, h) in enumerate(boxes.tolist()):
            alone, _ = fit_width(render(p, only=k), p.boxes, width)
            ax, ay, aw, ah = ink_bbox(alone)
            assert x <= ax and ax + aw <= x + w, (k, (x, w), (ax, aw))
            fx, _, fw, _ = ink_bbox(alone, threshold=0.02)
            assert fx - x <= 1 and (x + w) - (fx + fw) <= 1


def test_api_exact_width_pads_or_squeezes(gen):
    wide = gen.draw_from_mnist([1, 2, 3], (4, 4), 300, realistic=LAYOUT_ONLY, seed=1)
    assert wide.shape == (HEIGHT, 300)
    boxes = np.array(gen.latest_layout.ink_boxes)
    assert ink_bbox(wide) == (boxes[:, 0].min(), boxes[:, 1].min(),
                              (boxes[:, 0] + boxes[:, 2]).max() - boxes[:, 0].min(),
                              (boxes[:, 1] + boxes[:, 3]).max() - boxes[:, 1].min())
    assert abs(boxes[0, 0] - (300 - (boxes[-1, 0] + boxes[-1, 2]))) <= 3, "centred"
    narrow = gen.draw_from_mnist([1, 2, 3, 4, 5, 6], (4, 4), 60, realistic=LAYOUT_ONLY, seed=1)
    assert narrow.shape == (HEIGHT, 60)
    assert (np.array(gen.latest_layout.ink_boxes)[:, 0] + np.array(gen.latest_layout.ink_boxes)[:, 2]).max() <= 60


def test_cvae_realistic_writes_one_handwriting(random_model):
    gen = Digitgenerator(model_dir=random_model)
    image = gen.sample_from_vae([4, 4, 4], realistic=LAYOUT_ONLY, seed=2)
    assert image.shape[0] == HEIGHT
    # One latent for the whole number: three equal digits are the same glyph, so the same ink mass
    # (up to the per-digit size and slant variation).
    masses = [render_box(image, b).sum() for b in gen.latest_layout.ink_boxes]
    assert max(masses) / min(masses) < 1.6


def render_box(image, box):
    x, y, w, h = box
    return image[y : y + h, x : x + w]


@pytest.mark.parametrize(
    "hand, message",
    [
        (dict(gap=(3, 1)), "swap them"),
        (dict(gap=(-60, 0)), "gap min"),
        (dict(scale=(0.5, float("nan"))), "scale max"),
        (dict(jitter=-1), "jitter"),
        (dict(slant=45), "slant"),
        (dict(height=20), "at least"),
        (dict(height=10**9), "height"),
        (dict(stroke=1.0, digit_stroke=0.5), "exceeds"),
        (dict(gap="wide"), "two numbers"),
        (dict(digit_gap=-1), "digit_gap"),
        (dict(digit_gap=1.5), "digit_gap"),
    ],
)
def test_bad_handwriting_values_say_what_is_wrong(hand, message):
    with pytest.raises(ValueError, match=message):
        Handwriting(**hand)


@pytest.mark.parametrize(
    "paper, message",
    [(dict(guides="stars"), "guides"), (dict(noise=float("inf")), "noise"), (dict(tone=(0.5, 0.2)), "swap"),
     (dict(ink=(0.0, 0.1), tone=(0.2, 0.3)), "invisible"), (dict(blur=2), "blur"), (dict(blur=1.01), "blur"),
     (dict(texture=0.51), "texture"), (dict(noise=0.51), "noise"), (dict(contrast=(1.0, 4.01)), "contrast"),
     (dict(contrast=(0.09, 1.0)), "contrast"), (dict(sharpen=-0.1), "sharpen"), (dict(sharpen=2.01), "sharpen"),
     (dict(sharpen=float("nan")), "sharpen")],
)
def test_bad_paper_values_say_what_is_wrong(paper, message):
    with pytest.raises(ValueError, match=message):
        Paper(**paper)


# ----------------------------------------------------------------------------- command lines


def run_png(tmp_path, *args, name="r.png"):
    code = main([*args, "--outfile", str(tmp_path / name)])
    assert code == 0
    return (tmp_path / name).read_bytes()


def test_generate_png_realistic_is_seeded_and_black_on_white(tmp_path):
    a = run_png(tmp_path, "--digits", "2", "0", "2", "6", "--realistic", "--seed", "1", name="a.png")
    b = run_png(tmp_path, "--digits", "2", "0", "2", "6", "--realistic", "--seed", "1", name="b.png")
    c = run_png(tmp_path, "--digits", "2", "0", "2", "6", "--realistic", "--seed", "2", name="c.png")
    assert a == b and a != c
    image = read_png(tmp_path / "a.png")
    assert image.shape[0] == HEIGHT
    assert np.median(image) > 0.75 and image.min() < 0.3, "white-ish paper, dark ink"
    run_png(tmp_path, "--digits", "2", "0", "2", "6", "--realistic", "--seed", "1", "--invert", name="i.png")
    np.testing.assert_allclose(read_png(tmp_path / "i.png"), 1 - image, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize(
    "flags, check",
    [
        (["--height", "52"], lambda im, base: im.shape[0] == 52),
        (["--gap", "9", "9"], lambda im, base: im.shape[1] >= base.shape[1] + 3 * (9 - 8)),
        (["--gap", "-7", "-7"], lambda im, base: im.shape[1] <= base.shape[1] - 3 * (-6 + 7)),
        (["--digit-gap", "0"], lambda im, base: not np.array_equal(im, base)),
        (["--no-paper"], lambda im, base: np.mean(im == 1.0) > 0.6),
        (["--guides", "line", "--no-paper"], None),
        (["--noise", "0", "--blur", "0"], lambda im, base: not np.array_equal(im, base)),
        (["--sharpen", "0"], lambda im, base: not np.array_equal(im, base)),
        (["--sharpen", "0", "--no-paper"], None),
        (["--scale", "1.2", "1.2"], lambda im, base: im.shape[1] >= base.shape[1]),
    ],
)
def test_each_realistic_flag_changes_the_image_as_documented(tmp_path, flags, check):
    if check is None:  # a paper flag with --no-paper is a usage error
        assert main(["--digits", "1", "2", "--realistic", *flags, "--outfile", str(tmp_path / "x.png")]) == 2
        return
    common = ["--digits", "5", "0", "3", "8", "--realistic", "--seed", "3"]
    if "--no-paper" not in flags:
        common += ["--guides", "none"]  # comb boxes place digits in cells, whatever the gap
    run_png(tmp_path, *common, name="base.png")
    run_png(tmp_path, *common, *flags, name="flag.png")
    assert check(read_png(tmp_path / "flag.png"), read_png(tmp_path / "base.png"))


def test_scale_sets_the_size_of_the_digits(tmp_path):
    common = ["--digits", "5", "0", "3", "8", "--realistic", "--seed", "3", "--no-paper"]
    run_png(tmp_path, *common, "--scale", "0.8", "0.8", name="small.png")
    run_png(tmp_path, *common, "--scale", "1.2", "1.2", name="large.png")
    small, large = ((read_png(tmp_path / f) < 0.5).sum() for f in ("small.png", "large.png"))
    assert 1.6 < large / small < 3.0  # area grows as the square: (1.2 / 0.8)^2 = 2.25


def test_guides_draw_a_rule_or_comb_boxes(tmp_path):
    common = ["--digits", "5", "0", "3", "8", "--realistic", "--seed", "3", "--noise", "0", "--blur", "0"]
    run_png(tmp_path, *common, "--guides", "line", name="line.png")
    run_png(tmp_path, *common, "--guides", "comb", name="comb.png")
    run_png(tmp_path, *common, "--guides", "none", name="none.png")
    line, comb, none = (read_png(tmp_path / f) for f in ("line.png", "comb.png", "none.png"))
    full_rows = lambda im: [r for r in range(im.shape[0]) if np.all(im[r, 3:-3] < np.median(im) - 0.1)]  # noqa: E731
    full_cols = lambda im: [c for c in range(im.shape[1]) if np.mean(im[:, c] < np.median(im) - 0.1) > 0.45]  # noqa: E731
    assert len(full_rows(line)) >= 1 and not full_rows(none)
    assert len(full_rows(comb)) >= 2 and len(full_cols(comb)) >= 5  # top, bottom, and 5 walls for 4 cells


@pytest.mark.parametrize("kind, lines", [("line", 1), ("comb", 2)])
def test_guides_are_printed_at_their_darkness_just_beyond_the_ink(gen, kind, lines):
    """On clean paper (no tone, texture, grain, blur or sharpening; contrast 1) a guide pixel away from the ink has
    exactly the guide's darkness, and the rules sit 1-3 pixels beyond the ink, each distance drawn."""
    clean = Paper(guides=kind, tone=(0, 0), texture=0, noise=0, blur=0, sharpen=0, contrast=(1, 1), guide_ink=(0.3, 0.3))
    below, above = set(), set()
    for seed in range(20):
        image = gen.draw_from_mnist([5, 0, 3, 8], realistic=Realistic(paper=clean), seed=seed)
        boxes = np.array(gen.latest_layout.ink_boxes)
        guide = np.isclose(image, 0.3, atol=1e-6)
        rules = [r for r in range(image.shape[0]) if guide[r].mean() > 0.5]
        assert len(rules) == lines
        ink_top, ink_bottom = boxes[:, 1].min(), (boxes[:, 1] + boxes[:, 3]).max() - 1
        below.add(int(rules[-1] - ink_bottom))
        if kind == "comb":
            above.add(int(ink_top - rules[0]))
    assert below == {1, 2, 3}
    assert above == ({1, 2, 3} if kind == "comb" else set())


@pytest.mark.parametrize("blur, sharpen", [(0.0, 1.5), (1.0, 0.0), (0.7, 0.4)])
def test_the_scan_blurs_or_sharpens_by_its_drawn_amount(blur, sharpen):
    """On clean paper with ink of darkness 1, the scan is the ink's reflectance moved by the drawn amount
    a = u (blur + sharpen) - sharpen (u the scan's 5th uniform draw) towards its 3x3 binomial smoothing
    (a > 0 blurs, a < 0 is an unsharp mask), clipped: checked against scipy's filter."""
    from digitgenerator.paper import scan

    ink = np.zeros((20, 30), np.float32)
    ink[5:15, 8:11] = 1.0
    ink[9:11, 8:25] = 0.6
    clean = Paper(tone=(0, 0), texture=0, noise=0, contrast=(1, 1), ink=(1, 1), blur=blur, sharpen=sharpen)
    for seed in range(5):
        u = np.random.default_rng(seed).random(11)[4]
        amount = u * (blur + sharpen) - sharpen
        reflect = 1.0 - ink.astype(np.float64)
        expected = 1.0 - np.clip(reflect + amount * (binomial_reference(reflect) - reflect), 0, 1)
        np.testing.assert_allclose(scan(ink, clean, np.random.default_rng(seed)), expected, atol=1e-5)


def test_sharpen_makes_the_strokes_crisper_and_blur_softer(tmp_path):
    """Same seed, same draws: --sharpen 2 --blur 0 gives steeper ink edges than neither, and --blur 1 --sharpen 0 flatter."""
    common = ["--digits", "5", "0", "3", "8", "--realistic", "--seed", "4", "--noise", "0", "--guides", "none"]
    edge = {}
    for name, flags in [("sharp", ["--sharpen", "2", "--blur", "0"]), ("plain", ["--sharpen", "0", "--blur", "0"]),
                        ("soft", ["--sharpen", "0", "--blur", "1"])]:
        run_png(tmp_path, *common, *flags, name=f"{name}.png")
        edge[name] = np.abs(np.diff(read_png(tmp_path / f"{name}.png"), axis=1)).sum()
    assert edge["sharp"] > 1.05 * edge["plain"] > 1.05 * edge["soft"]


def test_sharpen_zero_scans_as_before_it_existed(tmp_path):
    """--sharpen 0 is the scanner of the previous release, byte for byte (digests of images made with it)."""
    for args, digest in [(["--digits", "2", "0", "2", "6", "--realistic", "--seed", "1"], "77be0bfb9bb269dfacb0bdd847b517c3a18267af7af173941e05d7e16d3afcf5"),
                         (["--digits", "9", "1", "7", "3", "0", "5", "--realistic", "--seed", "7", "--guides", "comb"],
                          "3925ec9c8925da901b5d0dc44d9c6b1c94b2cda060e1b57ca4df0283cebc73bd")]:
        assert hashlib.sha256(run_png(tmp_path, *args, "--sharpen", "0")).hexdigest() == digest


@pytest.mark.parametrize(
    "args, message",
    [
        (["--digits", "1", "--gap", "1", "2"], "--gap needs --realistic"),
        (["--digits", "1", "--no-paper"], "--no-paper needs --realistic"),
        (["--digits", "1", "--realistic", "--spacing", "1", "2"], "--spacing applies to the box layout"),
        (["--digits", "1", "--realistic", "--ink-spacing"], "--ink-spacing applies to the box layout"),
        (["--digits", "1", "--realistic", "--gap", "5", "1"], "swap them"),
        (["--digits", "1", "--realistic", "--gap", "-99", "1"], "gap must be between"),
        (["--digits", "1", "--realistic", "--digit-gap", "-1"], "--digit-gap must be between 0 and 50"),
        (["--digits", "1", "--digit-gap", "1"], "--digit-gap needs --realistic"),
        (["--digits", "1", "--realistic", "--scale", "nan", "1"], "scale must be a finite number between 0.3 and 1.6"),
        (["--digits", "1", "--realistic", "--height", "99999"], "--height must be between"),
        (["--digits", "1", "--realistic", "--height", "20"], "at least"),
        (["--digits", "1", "--realistic", "--slant", "inf"], "--slant must be a finite number between 0 and 30"),
        (["--digits", "1", "--realistic", "--guides", "dots"], "invalid choice"),
        (["--digits", "1", "--realistic", "--sharpen", "2.5"], "--sharpen must be between 0 and 2"),
        (["--digits", "1", "--realistic", "--sharpen", "-1"], "--sharpen must be between 0 and 2"),
        (["--digits", "1", "--sharpen", "1"], "--sharpen needs --realistic"),
        (["--digits", "1", "--realistic", "--denoise", "0.3"], "leave out --realistic"),
    ],
)
def test_bad_realistic_options_give_one_line_and_no_file(tmp_path, capsys, args, message):
    out = tmp_path / "never.png"
    assert main([*args, "--outfile", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_dataset_realistic_flags_are_checked_before_writing(tmp_path, capsys):
    assert dataset_main(["--count", "5", "--out", str(tmp_path / "d"), "--scale", "1", "1"]) == 2
    assert "--scale needs --realistic" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------- datasets


@pytest.fixture
def height_coded_mnist(tmp_path):
    """A training set where digit d is a 4-pixel-wide bar 4 + 2d pixels tall: its label can be read off its ink."""
    folder = tmp_path / "bars"
    folder.mkdir()
    labels = np.repeat(np.arange(10, dtype=np.uint8), 3)
    images = np.zeros((30, 28, 28), np.uint8)
    for i, d in enumerate(labels):
        images[i, 4 : 8 + 2 * d, 12:16] = 255
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return folder


def test_manifest_digits_and_ink_boxes_match_the_pixels(tmp_path, height_coded_mnist):
    out = tmp_path / "ds"
    code = dataset_main(["--count", "60", "--out", str(out), "--realistic", "--no-paper", "--scale", "1", "1",
                         "--slant", "0", "--stroke", "0", "--jitter", "3", "--gap", "-1", "3", "--length", "2", "6",
                         "--mnist-folder", str(height_coded_mnist), "--no-progress"])
    assert code == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 60
    for row in rows:
        ink = 1.0 - read_png(out / row["file"])  # written black on white
        assert ink.shape == (row["height"], row["width"])
        assert len(row["ink_boxes"]) == len(row["text"]) == len(row["boxes"])
        assert_boxes_tight(ink, row["ink_boxes"])
        for digit, (x, y, w, h), (bx, bw) in zip(row["text"], row["ink_boxes"], row["boxes"]):
            assert (bx, bw) == (x, w)
            # The bar's height tells its label: 4 + 2d pixels, give or take the per-digit size
            # (+/- 15%) and a pixel of interpolation at each end.
            tall = 4 + 2 * int(digit)
            assert abs(h - tall) <= 2 + Handwriting().digit_scale * tall


def test_manifest_boxes_stay_true_with_augmentation_in_the_box_layout(tmp_path):
    out = tmp_path / "aug"
    assert dataset_main(["--count", "30", "--out", str(out), "--rotate", "25", "--shear", "20", "--seed", "4",
                         "--spacing", "0", "3", "--no-progress"]) == 0
    for line in (out / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert_boxes_tight(read_png(out / row["file"]), row["ink_boxes"])


def test_realistic_export_is_the_same_with_workers_and_batches(tmp_path):
    spec = DatasetSpec(count=150, length=(1, 8), realistic=True, seed=2)
    one, two = tmp_path / "one", tmp_path / "two"
    export(spec, one, workers=1, progress=False)
    export(spec, two, workers=2, progress=False)
    assert (one / "manifest.jsonl").read_bytes() == (two / "manifest.jsonl").read_bytes()
    for k in range(150):
        assert (one / f"{k:07d}.png").read_bytes() == (two / f"{k:07d}.png").read_bytes()
    gen = Digitgenerator()
    images, labels = next(batches(gen, spec, batch_size=10))
    assert images.shape[:2] == (10, HEIGHT)
    rows = [json.loads(line) for line in (one / "manifest.jsonl").read_text().splitlines()]
    for k in range(10):
        png = read_png(one / rows[k]["file"])
        np.testing.assert_allclose(images[k, :, : png.shape[1]], png, atol=0.5 / 255 + 1e-6)
        assert "".join(str(d) for d in labels[k] if d >= 0) == rows[k]["text"]


def test_realistic_job_is_its_own_job(tmp_path):
    out = tmp_path / "job"
    assert dataset_main(["--count", "3", "--out", str(out), "--no-progress"]) == 0
    assert dataset_main(["--count", "3", "--out", str(out), "--realistic", "--no-progress"]) == 2
    job = json.loads((out / "dataset.json").read_text())
    assert "realistic" not in job["spec"]


# ----------------------------------------------------------------------------- default output unchanged

# SHA-256 of images made by digitgenerator 1.0.0 (before the realistic layout) from the embedded sample.
BEFORE = {
    "digits135": (["--digits", "1", "3", "5", "--seed", "0"], "e958102e1ad8254b43c0542f13c0e7ac1816bee6cebec21a73898a5f58d3b998"),
    "random8": (["--random", "8", "--spacing", "1", "6", "--seed", "0"], "c1d89aa62012854ef0f26f3702e0fda68e2b6f9c66e4212f4222876ce4357b46"),
    "ink_invert": (["--digits", "9", "0", "2", "--ink-spacing", "--invert", "--seed", "5"], "cd63c08c5147a1e9d9bee109d56f588e6b641161c0a9b554998e695e9a9091d1"),
    "width_pad": (["--digits", "4", "2", "--width", "200", "--seed", "7"], "27026f317c8cfc9597e0482b24881128fd15afa9a342b0ff3df6e4ed10c53560"),
    "stretch": (["--digits", "4", "2", "7", "--width", "60", "--stretch", "--seed", "7"], "687f2c6094494fd073e9de540c7021fee6b9611407fbc30663389989072bbc02"),
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_default_output_is_byte_for_byte_what_it_was(tmp_path, name):
    args, digest = BEFORE[name]
    assert hashlib.sha256(run_png(tmp_path, *args)).hexdigest() == digest


def test_default_dataset_images_are_what_they_were(tmp_path):
    out = tmp_path / "ds"
    assert dataset_main(["--count", "40", "--out", str(out), "--seed", "3", "--rotate", "10", "--elastic", "5", "--no-progress"]) == 0
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        if name.endswith(".png"):
            h.update((out / name).read_bytes())
    assert h.hexdigest() == "2a1a8505d0fff3b122196985bf6b92fdec15026ed99e9151ab3819cc814c38df"


@pytest.mark.parametrize("entry", [main, dataset_main])
def test_help_shows_the_defaults_of_the_recommended_mix(entry, capsys):
    assert entry(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    text = text[text.index("handwriting (with --realistic") :]  # the flags' own lines, not the usage
    hand, paper = Handwriting(), Paper()
    for flag, shown in [("--gap", f"{hand.gap[0]} {hand.gap[1]}"), ("--digit-gap", f"{hand.digit_gap}"), ("--jitter", f"{hand.jitter:g}"),
                        ("--scale", f"{hand.scale[0]:g} {hand.scale[1]:g}"), ("--slant", f"{hand.slant:g}"),
                        ("--stroke", f"{hand.stroke:g}"), ("--height", f"{hand.height}"), ("--guides", paper.guides),
                        ("--noise", f"{paper.noise:g}"), ("--blur", f"{paper.blur:g}"), ("--sharpen", f"{paper.sharpen:g}")]:
        section = text[text.index(f"{flag} ") :]
        assert f"(default: {shown})" in section[: section.index("(default:") + len(shown) + 12], flag
