import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digitgenerator.compose import check_digits, compose, ink_bounds, plan_layout


def glyphs(n, width=28):
    """Distinct glyphs: glyph i is filled with (i + 1) / (n + 1) so it can be found again."""
    return [np.full((28, width), (i + 1) / (n + 1), np.float32) for i in range(n)]


def test_both_ends_of_the_spacing_range_occur():
    rng = np.random.default_rng(0)
    gaps = set()
    for _ in range(200):
        offsets = plan_layout([28, 28], (2, 5), None, rng).offsets
        gaps.add(offsets[1] - 28)
    assert gaps == {2, 3, 4, 5}


@pytest.mark.parametrize("width", [88, 91, 94])
def test_exact_width_inside_the_natural_range_keeps_spacing_in_range(width):
    rng = np.random.default_rng(1)
    for _ in range(20):
        layout = plan_layout([28] * 3, (2, 5), width, rng)
        gaps = np.diff(layout.offsets) - 28
        assert layout.width == width and layout.offsets[0] == 0 and layout.offsets[-1] + 28 == width
        assert gaps.min() >= 2 and gaps.max() <= 5


def test_wider_than_spacing_allows_gives_even_margins():
    layout = plan_layout([28] * 3, (2, 5), 201, np.random.default_rng(0))
    assert np.diff(layout.offsets).tolist() == [33, 33]
    left = layout.offsets[0]
    right = 201 - (layout.offsets[-1] + 28)
    assert left == (201 - 94) // 2 and right - left in (0, 1)


def test_too_narrow_is_an_error_that_names_the_minimum():
    with pytest.raises(ValueError, match="image_width 10 is too narrow for 3 digits .* at least 88"):
        plan_layout([28] * 3, (2, 5), 10)


def test_stretch_resizes_only_when_asked():
    image, layout = compose(glyphs(3), (2, 5), 60, np.random.default_rng(0), fit="stretch")
    assert image.shape == (28, 60) and layout.canvas == 88
    assert [w for _, w in layout.boxes()] == [19, 19, 19]


def test_zero_width_means_natural():
    image, layout = compose(glyphs(2), (3, 3), 0, np.random.default_rng(0))
    assert image.shape == (28, 59)


def test_ink_spacing_measures_between_strokes():
    glyph = np.zeros((28, 28), np.float32)
    glyph[5:20, 10:15] = 1.0
    assert ink_bounds(glyph) == (10, 15)
    image, layout = compose([glyph, glyph], (3, 3), None, np.random.default_rng(0), ink_spacing=True)
    assert image.shape == (28, 5 + 3 + 5)
    assert layout.widths == (5, 5) and image[:, 5:8].max() == 0


def test_blank_glyph_keeps_its_box():
    assert ink_bounds(np.zeros((28, 28))) == (0, 28)


@pytest.mark.parametrize("bad", [[10], [-1], [1.5], ["1"], [True], [], "123", [[1, 2]], None])
def test_bad_digits(bad):
    with pytest.raises(ValueError):
        check_digits(bad)


def test_numpy_integers_are_digits():
    assert check_digits(np.array([1, 2], dtype=np.uint8)).tolist() == [1, 2]
    assert check_digits([np.int64(9)]).tolist() == [9]


@pytest.mark.parametrize("spacing", [(5, 2), (-1, 2), (1,), (1.5, 2), "ab", None])
def test_bad_spacing(spacing):
    with pytest.raises(ValueError):
        plan_layout([28], spacing)


@pytest.mark.parametrize("width", [-5, 2.5, "100", True])
def test_bad_width(width):
    with pytest.raises(ValueError):
        plan_layout([28], (1, 2), width)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 8),
    lo=st.integers(0, 10),
    extra=st.integers(0, 10),
    width=st.one_of(st.none(), st.integers(1, 400)),
    seed=st.integers(0, 2**32 - 1),
)
def test_composition_property(n, lo, extra, width, seed):
    hi = lo + extra
    g = glyphs(n)
    natural_min = 28 * n + (n - 1) * lo
    if width is not None and width < natural_min:
        with pytest.raises(ValueError):
            compose(g, (lo, hi), width, np.random.default_rng(seed))
        return
    image, layout = compose(g, (lo, hi), width, np.random.default_rng(seed))
    assert image.dtype == np.float32 and image.shape[0] == 28
    if width is not None:
        assert image.shape[1] == width
    else:
        assert natural_min <= image.shape[1] <= 28 * n + (n - 1) * hi
    gaps = np.diff(layout.offsets) - 28
    assert all(lo <= gap <= hi for gap in gaps)
    for x, glyph in zip(layout.offsets, g):  # every digit is pasted unchanged
        np.testing.assert_array_equal(image[:, x : x + 28], glyph)
    ink = np.zeros(image.shape[1], bool)
    for x in layout.offsets:
        ink[x : x + 28] = True
    assert image[:, ~ink].max(initial=0) == 0  # and nothing else is drawn
