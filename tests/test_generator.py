import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from digitgenerator import Digitgenerator
from digitgenerator.png import read_png

from conftest import ROOT, make_digits


@pytest.fixture
def gen(mnist_folder, tmp_path):
    return Digitgenerator(mnist_folder, tmp_path / "cache", seed=0)


def test_documented_attributes(gen):
    assert gen.labels.dtype == np.int8 and gen.labels.shape == (30,)
    assert gen.images.dtype == np.float32 and gen.images.shape == (30, 28, 28)
    assert 0.0 <= gen.images.min() and gen.images.max() <= 1.0
    for digit, indices in gen.label_index.items():
        assert (gen.labels[indices] == digit).all() and len(indices) == 3


def test_draw_from_mnist_uses_real_digits_of_the_requested_labels(gen):
    image = gen.draw_from_mnist([3, 0, 9], spacing_range=(2, 2))
    assert image.shape == (28, 88) and image.dtype == np.float32
    expected_images, expected_labels = make_digits()
    for k, digit in enumerate([3, 0, 9]):
        box = image[:, k * 30 : k * 30 + 28]
        matches = [np.allclose(box, expected_images[i] / 255.0) for i in np.flatnonzero(expected_labels == digit)]
        assert any(matches)


def test_same_seed_same_image(mnist_folder, tmp_path):
    a = Digitgenerator(mnist_folder, tmp_path, seed=7).draw_from_mnist([1, 2, 3, 4], (0, 9))
    b = Digitgenerator(mnist_folder, tmp_path, seed=7).draw_from_mnist([1, 2, 3, 4], (0, 9))
    np.testing.assert_array_equal(a, b)
    gen = Digitgenerator(mnist_folder, tmp_path)
    np.testing.assert_array_equal(gen.draw_from_mnist([1, 2, 3, 4], (0, 9), seed=7), a)


def test_original_smoke_test(tmp_path):
    gen = Digitgenerator()  # defaults: ./mnist_data (absent here) falls back to the embedded sample
    rng = np.random.default_rng()
    digits = rng.integers(0, 10, rng.integers(5, 11))
    image = gen.draw_from_mnist(digits, (1, 2), 0)
    assert image.shape[0] == 28 and 28 * len(digits) + len(digits) - 1 <= image.shape[1]
    gen.save_latest_as_png(tmp_path / "test_output.png")
    assert (tmp_path / "test_output.png").is_file()


def test_png_is_pixel_exact_gray(gen, tmp_path):
    image = gen.draw_from_mnist([1, 2], (3, 3), 70)
    gen.save_latest_as_png(tmp_path / "a.png")
    from PIL import Image

    with Image.open(tmp_path / "a.png") as png:
        assert png.mode == "L" and png.size == (70, 28)
    np.testing.assert_allclose(read_png(tmp_path / "a.png"), image, atol=0.5 / 255)
    gen.save_latest_as_png(tmp_path / "inv.png", invert=True)
    np.testing.assert_allclose(read_png(tmp_path / "inv.png"), 1 - image, atol=0.5 / 255)


def test_png_errors_leave_nothing_behind(gen, tmp_path):
    gen.draw_from_mnist([1])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gen.save_latest_as_png(tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="must end in .png"):
        gen.save_latest_as_png(tmp_path / "x.jpg")
    assert list(tmp_path.glob("**/*.png")) == []
    readonly = tmp_path / "ro"
    readonly.mkdir(mode=0o555)
    if os.access(readonly, os.W_OK):
        pytest.skip("running as a user who can write anywhere (root)")
    with pytest.raises(PermissionError, match="not writable"):
        gen.save_latest_as_png(readonly / "x.png")


def test_nothing_drawn_yet(gen):
    with pytest.raises(ValueError, match="no image yet"):
        gen.save_latest_as_png()


def test_print_latest_does_not_block(gen, monkeypatch):
    """Under a backend with no window (scripts, CI) the figure is shown without blocking, and
    pixels map to grey levels as stored: 0 black, 1 white, whatever the image's own range."""
    plt = pytest.importorskip("matplotlib.pyplot")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt.switch_backend("Agg")
    shown = []
    monkeypatch.setattr(plt, "show", lambda **kwargs: shown.append(kwargs))
    gen.draw_from_mnist([4, 2])
    plt.close("all")
    gen.print_latest(size=(4, 2))
    assert shown == [{"block": False}]
    assert plt.gcf().axes[0].images[0].get_clim() == (0, 1)
    plt.close("all")


@pytest.mark.parametrize("size, message", [((1e9, 5), "size width .* between 0.5 and 100, got 1e"),
                                           ((15, 0), "size height .* between 0.5 and 100, got 0"),
                                           ((15, float("nan")), "size height"),
                                           ("big", r"size must be \(width, height\)"),
                                           ((1, 2, 3), r"size must be \(width, height\)")])
def test_print_latest_refuses_a_window_of_no_or_absurd_size(gen, size, message):
    gen.draw_from_mnist([4, 2])
    with pytest.raises(ValueError, match=message):  # before matplotlib is asked for a window
        gen.print_latest(size=size)


def test_the_largest_window_is_allowed(gen, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt.switch_backend("Agg")
    gen.draw_from_mnist([4, 2])
    gen.print_latest(size=(100, 0.5))
    assert tuple(plt.gcf().get_size_inches()) == (100, 0.5)
    plt.close("all")


@pytest.mark.parametrize("kwargs, message", [({"mnist_folder": 123}, "mnist_folder must be a folder path"),
                                             ({"preprocessed_folder": 7}, "preprocessed_folder must be a folder path")])
def test_folders_that_are_not_paths_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Digitgenerator(**kwargs)


def test_no_cache_folder_is_the_default_one(mnist_folder, tmp_path):
    Digitgenerator(mnist_folder, None)
    assert list((tmp_path / "user-cache").rglob("*.npy")) and not list(tmp_path.glob("*.npy"))


def test_missing_label_in_data_is_a_clear_error(tmp_path):
    from digitgenerator.idx import write_idx

    images, labels = make_digits()
    keep = labels != 7
    write_idx(tmp_path / "train-images-idx3-ubyte", images[keep])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[keep])
    with pytest.raises(ValueError, match="no digit 7"):
        Digitgenerator(tmp_path, tmp_path).draw_from_mnist([7])


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        Digitgenerator(seed=-1)


def test_import_is_light():
    code = (
        "import sys, digitgenerator; from digitgenerator import Digitgenerator, Vae;"
        "bad = [m for m in ('tensorflow', 'keras', 'matplotlib.pyplot', 'PIL.Image') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 300)), elements=st.floats(0, 1, width=32)))
def test_png_encoder_is_read_back_exactly_by_pillow(image):
    from PIL import Image
    import io

    from digitgenerator.png import encode_png, to_uint8

    gray = to_uint8(image)
    encodings = (encode_png(gray), encode_png(gray, 1, zlib.Z_RLE), encode_png(gray, 1, zlib.Z_HUFFMAN_ONLY),
                 encode_png(gray, 1, engine="isal"), encode_png(gray, 0, engine="isal"))
    for data in encodings:
        with Image.open(io.BytesIO(data)) as png:
            assert png.mode == "L"
            np.testing.assert_array_equal(np.asarray(png), gray)


def test_png_engines_differ_and_a_bad_one_is_refused():
    from digitgenerator.png import encode_png

    gray = np.random.default_rng(0).integers(200, 256, (40, 200)).astype(np.uint8)  # paper grain
    assert encode_png(gray, 1, engine="isal") != encode_png(gray, 1)
    with pytest.raises(ValueError, match="engine must be 'zlib' or 'isal', got 'gzip'"):
        encode_png(gray, engine="gzip")


def test_figures_are_15_by_5_inches_unless_asked(gen, monkeypatch, random_model):
    """print_latest and denoise(show=True) open a figure of the documented default size."""
    plt = pytest.importorskip("matplotlib.pyplot")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plt.switch_backend("Agg")
    gen.draw_from_mnist([4, 2])
    for show in (gen.print_latest, lambda: Digitgenerator(model_dir=random_model).denoise([1, 2], noise_prob=0.1, show=True)):
        plt.close("all")
        show()
        assert tuple(plt.gcf().get_size_inches()) == (15, 5)
        assert len(plt.gcf().axes) == (1 if show == gen.print_latest else 3)  # one image, or noisy, denoised, clean
    plt.close("all")
    gen.print_latest(size=(4, 2))
    assert tuple(plt.gcf().get_size_inches()) == (4, 2)
    plt.close("all")
