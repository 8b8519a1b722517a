"""Digitgenerator: the library's front door, composing digit sequences from MNIST or the CVAE."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import checks
from .compose import check_digits, check_spacing, check_width, compose, render
from .data import DEFAULT_MNIST_FOLDER, DEFAULT_PREPROCESSED_FOLDER, IMAGE_SIZE, load_mnist
from .model import DEFAULT_CONFIG, LABEL_MARGIN, NOISY_SHARE
from .noise import check_noise_prob, corrupt
from .png import write_png

SeedLike = int | np.random.Generator | None
MAX_LATENT = 100.0  # style values beyond this decode to overflowed logits; fitted latents lie within about +/-5
MAX_FIGURE_INCHES = 100.0  # print_latest's window: matplotlib draws at 100 dpi, so 10,000 pixels a side at most


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int seed, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return seed if seed is not None else np.random.default_rng()
    return np.random.default_rng(checks.seed(seed, "seed (an int or a numpy Generator)"))


class Digitgenerator:
    """Handwritten digit sequences from MNIST digits or from the conditional VAE.

    Every image is float32 (28, W): 0 background, 1 ink. `seed` (int or
    numpy Generator) makes a run reproducible; each method also takes `seed`
    to reproduce one call on its own.
    """

    def __init__(
        self,
        mnist_folder: str | os.PathLike = DEFAULT_MNIST_FOLDER,
        preprocessed_folder: str | os.PathLike = DEFAULT_PREPROCESSED_FOLDER,
        seed: SeedLike = None,
        model_dir: str | os.PathLike | None = None,
    ):
        self._uint8_images, self.labels, self.source = load_mnist(mnist_folder, preprocessed_folder)
        # Indices sorted by label: the digits labelled d are _order[_starts[d]:_starts[d + 1]].
        self._order = np.argsort(self.labels, kind="stable")
        self._starts = np.searchsorted(self.labels[self._order], np.arange(11))
        self._counts = np.diff(self._starts)
        self.label_index = {d: self._order[self._starts[d] : self._starts[d + 1]] for d in range(10)}
        self.rng = make_rng(seed)
        self.model_dir = model_dir
        self._vae = None
        self._images = None
        self.latest: np.ndarray | None = None
        self.latest_layout = None
        self.latest_clean: np.ndarray | None = None
        self.latest_noisy: np.ndarray | None = None
        self._latest_on_paper = False  # realistic images are saved black ink on white

    @property
    def images(self) -> np.ndarray:
        """All digits as float32 (N, 28, 28) in [0, 1], converted from the uint8 cache on first use."""
        if self._images is None:
            self._images = self._uint8_images.astype(np.float32) / np.float32(255.0)
        return self._images

    @property
    def vae(self):
        """The CVAE (numpy inference), loaded once on first use."""
        if self._vae is None:
            from .model import Vae

            self._vae = Vae(self.model_dir)
        return self._vae

    def _rng(self, seed: SeedLike) -> np.random.Generator:
        return self.rng if seed is None else make_rng(seed)

    def pick(self, digits, rng: np.random.Generator) -> np.ndarray:
        """Indices of random real digits of the given labels: (n,)."""
        digits = np.asarray(digits, dtype=np.int64)
        counts = self._counts[digits]
        if np.any(counts == 0):
            missing = int(digits[counts == 0][0])
            raise ValueError(f"the loaded MNIST data has no digit {missing}; load the full set with digitgenerator-download")
        return self._order[self._starts[digits] + rng.integers(0, counts)]

    def pick_many(self, digit_lists, rngs) -> np.ndarray:
        """`pick` for many numbers at once, number k drawing from rngs[k]: the indices of all, concatenated."""
        everything = np.concatenate(digit_lists).astype(np.int64)
        counts = self._counts[everything]
        if np.any(counts == 0):
            self.pick(everything, None)  # raises, naming the missing digit
        bounds = np.cumsum([len(d) for d in digit_lists])[:-1]
        draws = [rng.integers(0, c) for c, rng in zip(np.split(counts, bounds), rngs)]  # the draws pick makes
        return self._order[self._starts[everything] + np.concatenate(draws)]

    def uint8_digits(self, indices) -> np.ndarray:
        """The digits at these indices as stored: uint8 (n, 28, 28), 255 = ink."""
        return self._uint8_images[indices]

    def real_digits(self, digits, rng: np.random.Generator) -> np.ndarray:
        """Random real digits of the given labels: float32 (n, 28, 28)."""
        return self._uint8_images[self.pick(digits, rng)].astype(np.float32) / np.float32(255.0)

    def _finish(self, glyphs, spacing_range, image_width, rng, fit, ink_spacing, realistic=None):
        """Lay the glyphs out, keep the result as `latest`: (image, layout)."""
        if realistic is not None:
            from .realistic import write

            image, boxes = write([np.asarray(glyphs, np.float32)], realistic, [rng], image_width, fit)[0]
            layout = InkLayout(tuple(map(tuple, boxes.tolist())), image.shape[0], image.shape[1])
        else:
            image, layout = compose(list(glyphs), spacing_range, image_width, rng, fit, ink_spacing)
        self.latest, self.latest_layout, self._latest_on_paper = image, layout, realistic is not None
        return image, layout

    @staticmethod
    def _realistic(realistic, spacing_range, ink_spacing):
        """The Realistic config, or None; spacing options belong to the box layout only."""
        from .realistic import Realistic

        realistic = Realistic.coerce(realistic)
        if realistic is not None and (tuple(spacing_range) != (4, 4) or ink_spacing):
            raise ValueError(
                "spacing_range and ink_spacing apply to the box layout; with realistic the gaps "
                "come from Handwriting.gap (Realistic(hand=Handwriting(gap=(min, max))))"
            )
        return realistic

    @staticmethod
    def _check(digits, spacing_range, image_width):
        return check_digits(digits), check_spacing(spacing_range), check_width(image_width)

    def draw_from_mnist(
        self,
        digits,
        spacing_range=(4, 4),
        image_width=None,
        *,
        seed: SeedLike = None,
        fit: str = "pad",
        ink_spacing: bool = False,
        realistic=False,
    ) -> np.ndarray:
        """A sequence of real MNIST digits: float32 (28, W), or (height, W) with realistic.

        digits: ints 0-9. spacing_range: (min, max) pixels between digits, both
        ends possible. image_width: exact width in pixels, None/0 for natural
        (see compose.plan_layout for what happens when it cannot be met).
        realistic: True (the recommended mix) or a `Realistic(...)`: digits
        placed by their ink as people write numbers, on scanned paper (see
        digitgenerator.realistic); `latest_layout.ink_boxes` says where each landed.
        """
        digits, spacing_range, image_width = self._check(digits, spacing_range, image_width)
        realistic = self._realistic(realistic, spacing_range, ink_spacing)
        rng = self._rng(seed)
        glyphs = self.real_digits(digits, rng)
        return self._finish(glyphs, spacing_range, image_width, rng, fit, ink_spacing, realistic)[0]

    def sample_from_vae(
        self,
        digits,
        spacing_range=(4, 4),
        image_width=None,
        *,
        seed: SeedLike = None,
        style=None,
        temperature: float = 1.0,
        fit: str = "pad",
        ink_spacing: bool = False,
        realistic=False,
        every_digit: bool = False,
    ) -> np.ndarray:
        """A sequence of digits written by the CVAE: float32 (28, W), or (height, W) with realistic.

        style: None draws each digit independently (with realistic: "shared");
        "shared" writes the whole sequence in one handwriting (one latent for
        every digit); a latent vector (latent_dim,) -- e.g. from `style_of` --
        writes in that style. temperature scales the spread of the latent
        prior (lower: tidier; 0 gives each independent digit a training digit's
        posterior mean, and "shared" the typical latent). realistic: as for draw_from_mnist.
        every_digit: with independent digits (style None, no realistic), draw from
        every training digit's handwriting, also those the model nearly reads as
        another label, which the default leaves out: fewer read as asked, but an
        OCR model learns more from them (README's Quality).
        """
        digits, spacing_range, image_width = self._check(digits, spacing_range, image_width)
        temperature = _check_temperature(temperature)
        realistic = self._realistic(realistic, spacing_range, ink_spacing)
        if every_digit is not False and (style is not None or realistic is not None):
            raise ValueError("every_digit draws each digit's own handwriting; it does not apply to a shared style "
                             "or realistic (one handwriting per number): leave one of them out")
        if realistic is not None and style is None:
            style = "shared"  # one writer, one handwriting
        rng = self._rng(seed)
        vae = self.vae
        if style is None:
            z = vae.sample_latents(digits, rng, temperature, every_digit)
        elif isinstance(style, str) and style == "shared":
            z = np.tile(vae.sample_style(rng, temperature, digits), (len(digits), 1))
        else:
            try:
                latent = np.asarray(style, dtype=np.float32)
            except (TypeError, ValueError):
                latent = np.zeros(0, np.float32)
            if latent.shape != (vae.latent_dim,) or not np.all(np.abs(latent) <= MAX_LATENT):
                raise ValueError(
                    f"style must be None, 'shared' or a latent vector of shape ({vae.latent_dim},) with values "
                    f"within +/-{MAX_LATENT:g} (style_of gives one), got {style!r:.60}"
                )
            z = np.tile(latent, (len(digits), 1))
        return self._finish(vae.decode(z, digits), spacing_range, image_width, rng, fit, ink_spacing, realistic)[0]

    def style_of(self, image, label) -> np.ndarray:
        """The handwriting of one real digit (float (28, 28) in [0, 1]): its latent mean (latent_dim,), for sample_from_vae(style=...)."""
        try:
            image = np.asarray(image, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"image must be a (28, 28) array of numbers in [0, 1], got {image!r:.60}") from None
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE) or not np.all((image >= 0) & (image <= 1)):
            finite = image[np.isfinite(image)]
            values = f"{finite.min()}..{finite.max()}" if finite.size else "none finite"
            nan = ", with NaN" if np.isnan(image).any() else ""
            raise ValueError(f"image must be a (28, 28) array in [0, 1] (no NaN), got shape {image.shape} with values {values}{nan}")
        return self.vae.encode(image[None], check_digits([label]))[0][0]

    def denoise(
        self,
        digits,
        spacing_range=(4, 4),
        image_width=None,
        noise_prob: float = 0.5,
        *,
        seed: SeedLike = None,
        show: bool = False,
        fit: str = "pad",
    ) -> np.ndarray:
        """Draw real digits, corrupt them, return the CVAE's denoised sequence: float32 (28, W).

        Noise: each pixel, with probability noise_prob, replaced by a random 0
        or 1. The clean and noisy sequences, laid out the same way, are kept in
        `latest_clean` and `latest_noisy`; show=True draws all three.
        """
        digits, spacing_range, image_width = self._check(digits, spacing_range, image_width)
        noise_prob = check_noise_prob(noise_prob)
        rng = self._rng(seed)
        vae = self.vae  # load (and fail on a missing model) before drawing anything
        clean = self.real_digits(digits, rng)
        noisy = corrupt(clean, noise_prob, rng)
        restored = vae.denoise(noisy, digits)
        image, layout = self._finish(restored, spacing_range, image_width, rng, fit, False)
        self.latest_clean = render(list(clean), layout)  # the same places as the denoised digits
        self.latest_noisy = render(list(noisy), layout)
        if show:
            self._show([self.latest_noisy, image, self.latest_clean], ["noisy", "denoised", "clean"])
        return image

    def train_vaemodel(
        self,
        epochs: int = 60,
        batch_size: int = 128,
        *,
        seed: int = 0,
        out_dir: str | os.PathLike = "tf_vae_files",
        learning_rate: float = 1e-3,
        log=None,
        decoder_channels: int = DEFAULT_CONFIG["decoder_channels"],
        kl_weight: float = 1.0,
        consistency_weight: float = 0.0,
        label_margin: float | None = LABEL_MARGIN,
        latent_dim: int = DEFAULT_CONFIG["latent_dim"],
        noisy_share: float = NOISY_SHARE,
    ) -> dict:
        """Train a CVAE on the loaded digits, save it in out_dir and use it from now on (needs TensorFlow).

        decoder_channels: of the decoder's 7x7 and 14x14 feature maps (1-256; the shipped model has 32).
        kl_weight: beta, the weight of the KL term in the loss (0.01-10; 1 is the ELBO).
        consistency_weight: lambda of the label-consistency term (0-100; 0 leaves it out). The shipped
        model: kl_weight 0.2, consistency_weight 10 (train.py's docstring says why).
        label_margin: nats (0-1000) by which a training digit must read as its own label for
        sampling to start from it by default (every_digit starts from any); None keeps no margins.
        latent_dim: values per latent (1-256; the shipped generator has 32).
        noisy_share: share (0-1) of the digits whose encoder input is corrupted, so that the
        model also denoises; 0 trains a generator only (it then denoises worse).
        Returns the saved config with its final losses.
        """
        import importlib.util

        for module in ("tensorflow", "keras"):
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"training needs TensorFlow ({module} is missing): pip install 'digitgenerator[train]'")
        from .model import MAX_DECODER_CHANNELS, MAX_LATENT_DIM
        from .train import train_cvae

        channels = checks.integer(decoder_channels, "decoder_channels", 1, MAX_DECODER_CHANNELS)
        latent = checks.integer(latent_dim, "latent_dim", 1, MAX_LATENT_DIM)
        config = train_cvae(self._uint8_images, self.labels, out_dir, epochs, batch_size, seed, learning_rate,
                            noisy_share=noisy_share, kl_weight=kl_weight,
                            config={"decoder_channels": channels, "latent_dim": latent}, log=log,
                            consistency_weight=consistency_weight, label_margin=label_margin)
        self.model_dir, self._vae = out_dir, None
        return config

    def save_latest_as_png(self, filename: str | os.PathLike = "output_image.png", invert: bool = False):
        """Write the latest sequence as a pixel-exact 8-bit grayscale PNG (invert: black ink on white).

        A realistic image is written as paper looks, black ink on white; invert=True then gives its negative.
        """
        if self.latest is None:
            raise ValueError("no image yet: call draw_from_mnist, sample_from_vae or denoise first")
        return write_png(filename, self.latest, invert != self._latest_on_paper)

    def print_latest(self, size=(15, 5)) -> None:
        """Show the latest sequence in a matplotlib window of `size` (width, height) inches (each 0.5-MAX_FIGURE_INCHES)."""
        if self.latest is None:
            raise ValueError("no image yet: call draw_from_mnist, sample_from_vae or denoise first")
        self._show([self.latest], [None], figure_size(size))

    @staticmethod
    def _show(images, titles, size=(15, 5)) -> None:
        try:
            import matplotlib.pyplot as plt
        except ModuleNotFoundError:
            raise ModuleNotFoundError("showing images needs matplotlib: pip install 'digitgenerator[plot]'") from None

        fig, axes = plt.subplots(len(images), 1, figsize=size, squeeze=False)
        for ax, image, title in zip(axes[:, 0], images, titles):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
            if title:
                ax.set_title(title)
        # Block only where a window can appear; under Agg (scripts, CI) this is a no-op.
        plt.show(block=plt.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo", "template"))


@dataclass(frozen=True)
class InkLayout:
    """Where each digit of a realistic number landed: ink_boxes (x, y, width, height) in the image."""

    ink_boxes: tuple[tuple[int, int, int, int], ...]
    height: int
    width: int

    def boxes(self) -> list[tuple[int, int]]:
        """(x, width) of each digit's ink, as Layout.boxes gives for the box layout."""
        return [(x, w) for x, _, w, _ in self.ink_boxes]


def figure_size(size) -> tuple[float, float]:
    """(width, height) in inches, each within 0.5..MAX_FIGURE_INCHES."""
    if isinstance(size, (str, bytes)) or np.ndim(size) != 1 or len(size) != 2:
        raise ValueError(f"size must be (width, height) in inches, got {size!r:.60}")
    return tuple(checks.number(v, f"size {what} (inches)", 0.5, MAX_FIGURE_INCHES) for v, what in zip(size, ("width", "height")))


def _check_temperature(temperature) -> float:
    return checks.number(temperature, "temperature (1 is the fitted prior)", 0.0, 10.0)


__all__ = ["Digitgenerator", "IMAGE_SIZE", "make_rng"]
