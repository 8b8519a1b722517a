"""How good are the CVAE's digits and its denoising, on digits it never saw?

Held-out data: the MNIST test set (t10k) in ../shared/mnist/, split at random in two
halves A and B of 5,000. Judge: a small CNN trained here on the package's
training digits (never on t10k, never the CVAE's encoder); its penultimate
layer (128 units) is the feature space for the Frechet distance.

    (a) share of generated digits the judge reads as the requested label
    (b) Frechet distance (Heusel et al. 2017, eq. 6) between generated digits
        and B, beside the real-vs-real distance: the judge's training digits
        (the embedded 5,000, unless other MNIST files are loaded) against B: what
        a perfect copy of those would score; A-vs-B is shown too
    (c) denoising A at p = 0.3 and 0.5: PSNR against the clean digit and the
        judge's accuracy, beside the noisy input and a 3x3 median filter
    (d) one handwriting per number: for 8-digit numbers, the variance of slant
        and of stroke width within a number over their overall variance (each
        standardised per label first): about 7/8 when every digit is drawn
        alone, near 0 when a number keeps one hand; and the share of those
        digits the judge reads as asked (a latent that holds the label as well
        as the hand writes every digit of a number as that one label)
    (e) usefulness, the Classification Accuracy Score (Ravuri & Vinyals 2019):
        one fixed small classifier (fixed steps and seed) trained on N digits of
        each kind, read on all of t10k: real embedded digits, the same augmented
        (10 copies), CVAE digits, real plus CVAE, and real digits weighted to half
        of every batch plus augmented or CVAE ones; trained two ways (CLASSIFIERS)

    python bench/quality.py [--model-dir tf_vae_files] [--seed 0] [--cas-digits 50000] [--no-cas]
                            [--cas-seeds 0 1 2] [--classifiers shifted]

A classifier's accuracy moves by about 0.05 points from one seed to the next, so
rows closer than that are told apart with several --cas-seeds (each cell then the
mean, the seeds' own figures after it).

Needs TensorFlow (for the judge) and scipy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.data import load_mnist  # noqa: E402
from digitgenerator.idx import read_images_and_labels  # noqa: E402
from digitgenerator.model import Vae  # noqa: E402
from digitgenerator.noise import corrupt  # noqa: E402
from digitgenerator.train import frechet_distance as frechet  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "mnist"


def train_judge(images, labels, seed: int, epochs: int = 12):
    """A small CNN classifier; returns (predict_fn, features_fn) over float (N, 28, 28)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    h = layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed)(inputs)
    h = layers.Conv2D(32, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(64, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(layers.Dropout(0.25, seed=seed)(h))
    features = layers.Dense(128, activation="relu", name="features")(h)
    logits = layers.Dense(10)(layers.Dropout(0.4, seed=seed)(features))
    model = keras.Model(inputs, logits)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images[..., None], labels, batch_size=64, epochs=epochs, verbose=0)
    feat_model = keras.Model(inputs, features)

    def predict(x):
        return np.argmax(model.predict(np.asarray(x)[..., None], batch_size=1000, verbose=0), axis=1)

    def feats(x):
        return feat_model.predict(np.asarray(x)[..., None], batch_size=1000, verbose=0).astype(np.float64)

    return predict, feats


def slant_and_stroke(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per digit (N, 28, 28), ink in [0, 1]: slant and stroke width.

    slant: mu11 / mu02 of the ink's second moments, the horizontal shift per row
    that deskewing removes (the shear of the moment-based deskew, as in LeCun et
    al. 1998's preprocessing). stroke width: 2 x ink area / boundary length of the
    mask ink > 0.5, since a stroke of width w and length L has area wL and two
    sides of length L.
    """
    from scipy.ndimage import binary_erosion

    ys, xs = np.mgrid[:28, :28].astype(np.float64)
    mass = images.sum((1, 2)) + 1e-9
    cx = (images * xs).sum((1, 2)) / mass
    cy = (images * ys).sum((1, 2)) / mass
    dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
    slant = (images * dx * dy).sum((1, 2)) / ((images * dy * dy).sum((1, 2)) + 1e-9)
    mask = images > 0.5
    inner = binary_erosion(mask, structure=np.ones((1, 3, 3), bool))
    boundary = (mask & ~inner).sum((1, 2))
    stroke = 2.0 * mask.sum((1, 2)) / np.maximum(boundary, 1)
    return slant, stroke


def within_number_ratio(values: np.ndarray, labels: np.ndarray) -> float:
    """values, labels (numbers, length): within-number variance over overall variance, after
    standardising the values per label (a 1 is slanted otherwise than an 8 by nature)."""
    z = np.empty_like(values, dtype=np.float64)
    for label in np.unique(labels):
        pick = labels == label
        z[pick] = (values[pick] - values[pick].mean()) / (values[pick].std() + 1e-12)
    return float(z.var(axis=1).mean() / z.var())


def style_table(vae, real_images, real_labels, rng, predict, numbers: int = 1000,
                length: int = 8) -> list[tuple[str, float, float, float]]:
    """(mode, slant ratio, stroke ratio, share of digits the judge reads as asked) for numbers
    written shared, independent, and in a real digit's style (decoded with every other label too)."""
    labels = rng.integers(0, 10, (numbers, length))
    modes = {}
    shared = np.stack([np.tile(vae.sample_style(rng, labels=d), (length, 1)) for d in labels])
    modes["style=\"shared\" (one latent per number)"] = shared
    modes["independent (a latent per digit)"] = np.stack([vae.sample_latents(d, rng) for d in labels])
    pick = rng.integers(0, len(real_labels), numbers)
    means, _ = vae.encode(real_images[pick], real_labels[pick])
    modes["style_of(a real digit)"] = np.repeat(means[:, None, :], length, axis=1)
    rows = []
    for name, latents in modes.items():
        digits = vae.decode(latents.reshape(-1, latents.shape[-1]).astype(np.float32), labels.reshape(-1))
        slant, stroke = slant_and_stroke(digits.astype(np.float64))
        rows.append((name, within_number_ratio(slant.reshape(labels.shape), labels),
                     within_number_ratio(stroke.reshape(labels.shape), labels),
                     float(np.mean(predict(digits) == labels.reshape(-1)))))
    return rows


# The two CAS classifiers: the same small CNN, trained plainly, or as one would train it for real
# (random shifts of up to 10% of the image, and a learning rate cosine-decayed to 5%, for twice the steps).
# A weak classifier rewards sheer variety in its training digits; a well-trained one asks whether the digits
# teach what real ones do. Neither was tuned on generated digits.
CLASSIFIERS = {"plain": {"steps": 3000, "shift": 0.0}, "shifted": {"steps": 6000, "shift": 0.1}}


def sample_with_prior(vae, labels, rng, components: int, temperature: float = 1.0, every_digit: bool = False) -> np.ndarray:
    """vae.sample with `components` mixture components in force (0: the per-label Gaussians), then as it was."""
    kept, vae.prior_components = vae.prior_components, components
    try:
        return vae.sample(labels, rng, temperature, every_digit=every_digit)
    finally:
        vae.prior_components = kept


def classification_accuracy_score(x, y, x_test, y_test, seed: int, steps: int = 3000, batch: int = 64,
                                  shift: float = 0.0) -> float:
    """A fixed small CNN trained `steps` batches on (x, y), read on (x_test, y_test): its accuracy.

    shift > 0: random translations of up to that share of the image in training, and
    a learning rate cosine-decayed to 5% (else Adam's constant 1e-3).
    """
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    front = [layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed)] if shift else []
    model = keras.Sequential([
        keras.Input((28, 28, 1)), *front,
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.25, seed=seed),
        layers.Dense(128, activation="relu"), layers.Dropout(0.4, seed=seed), layers.Dense(10),
    ])
    rate = keras.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.05) if shift else 1e-3
    model.compile(keras.optimizers.Adam(rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(y)), steps * batch))
    model.fit(x[order][..., None], y[order], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    read = np.argmax(model.predict(x_test[..., None], batch_size=1000, verbose=0), axis=1)
    return float(np.mean(read == y_test))


def cas_table(vae, real_x, real_y, x_test, y_test, rng, seeds: list[int], n: int,
              classifiers: list[str]) -> list[tuple[str, int, list[list[float]]]]:
    """(training digits, how many, [accuracy on t10k for each seed] for each named classifier) for the CAS rows."""
    from digitgenerator.augment import Augment

    augment = Augment(rotate=10, shear=15, elastic=6, thickness=1)
    copies = np.repeat(np.arange(len(real_y)), 10)
    augmented = np.stack([augment.apply(real_x[i], rng) for i in copies]).astype(np.float32)
    wanted = rng.integers(0, 10, n)
    generated = vae.sample(wanted, rng).astype(np.float32)
    sets = [
        ("real: the embedded digits", real_x, real_y),
        ("real, augmented (10 copies: rotate 10, shear 15, elastic 6, thickness 1)", augmented, real_y[copies]),
        ("CVAE as shipped", generated, wanted),
    ]
    if vae.prior_components:
        gaussian = sample_with_prior(vae, wanted, rng, 0).astype(np.float32)
        sets.append(("CVAE with one Gaussian per label (the prior before 1.2.0)", gaussian, wanted))
    every = None
    if vae.has_margins:
        every = vae.sample(wanted, rng, every_digit=True).astype(np.float32)
        sets.append(("CVAE, every digit (`every_digit=True`)", every, wanted))
    sets += [
        ("real + CVAE", np.concatenate([real_x, generated]), np.concatenate([real_y, wanted])),
        *([("real + CVAE, every digit", np.concatenate([real_x, every]), np.concatenate([real_y, wanted]))]
          if every is not None else []),
        ("real augmented + CVAE", np.concatenate([augmented, generated]), np.concatenate([real_y[copies], wanted])),
    ]
    # The rows above let 50,000 generated or augmented digits swamp the 5,000 real ones (a tenth of each batch
    # real, or none at all). Repeating the real digits 10 times makes half of every batch real in both
    # (for the CVAE row, with the default 50,000 generated digits).
    tiled_x, tiled_y = np.tile(real_x, (10, 1, 1)), np.tile(real_y, 10)
    sets += [
        ("real x 10 + augmented (half of every batch the real digits)", np.concatenate([tiled_x, augmented]),
         np.concatenate([tiled_y, real_y[copies]])),
        ("real x 10 + CVAE (half of every batch the real digits)", np.concatenate([tiled_x, generated]),
         np.concatenate([tiled_y, wanted])),
    ]
    return [(name, len(y), [[classification_accuracy_score(x, y, x_test, y_test, seed, **CLASSIFIERS[c]) for seed in seeds]
                            for c in classifiers])
            for name, x, y in sets]


def psnr(restored: np.ndarray, clean: np.ndarray) -> float:
    """Mean over images of 10 log10(1 / MSE), pixels in [0, 1]."""
    mse = ((restored - clean) ** 2).reshape(len(clean), -1).mean(1)
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="CVAE folder (default: the shipped model)")
    parser.add_argument("--mnist-test", default=str(SHARED_MNIST), help="folder with t10k-*-ubyte.gz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cas-digits", type=int, default=50_000, help="generated digits for the CAS rows")
    parser.add_argument("--no-cas", action="store_true", help="skip the CAS rows (several minutes of training)")
    parser.add_argument("--cas-seeds", type=int, nargs="+", default=None,
                        help="classifier seeds for the CAS rows (default: --seed); several give each row's mean")
    parser.add_argument("--classifiers", nargs="+", choices=sorted(CLASSIFIERS), default=list(CLASSIFIERS),
                        help="which CAS classifiers to train")
    args = parser.parse_args(argv)
    test = Path(args.mnist_test)
    if not (test / "t10k-images-idx3-ubyte.gz").is_file():
        print(f"quality.py: no MNIST test set in {test}", file=sys.stderr)
        return 2
    x_test, y_test = read_images_and_labels(test / "t10k-images-idx3-ubyte.gz", test / "t10k-labels-idx1-ubyte.gz")
    x_test = x_test.astype(np.float32) / 255
    y_test = y_test.astype(np.int64)
    # A random split: t10k's first 5,000 digits come from different writers than
    # its last 5,000 (NIST SD-3 vs SD-1), so a plain cut would compare two populations.
    split = np.random.default_rng(12345).permutation(len(y_test))
    xa, ya, xb = x_test[split[:5000]], y_test[split[:5000]], x_test[split[5000:]]

    train_images, train_labels, source = load_mnist()
    real_x, real_y = train_images.astype(np.float32) / 255, train_labels.astype(np.int64)
    t0 = time.perf_counter()
    predict, feats = train_judge(real_x, real_y, args.seed)
    judge_acc = float(np.mean(predict(x_test) == y_test))
    print(f"judge: CNN trained on {len(train_labels)} digits of {source.images.name} "
          f"in {time.perf_counter() - t0:.0f} s; reads {judge_acc:.2%} of t10k correctly\n")

    vae = Vae(args.model_dir)
    rng = np.random.default_rng(args.seed)
    fb = feats(xb)
    real_fd = frechet(feats(real_x), fb)
    rows = [
        (f"real: the judge's {len(train_labels):,} training digits", float(np.mean(predict(real_x) == real_y)), real_fd),
        ("real: t10k half A", float(np.mean(predict(xa) == ya)), frechet(feats(xa), fb)),
    ]
    shipped = (vae.truncation_radius, vae.sharpness)
    variants = [
        (f"CVAE as shipped (T=1, truncation {vae.config.get('truncation')}, sharpness {vae.sharpness}"
         f"{', mixture prior' if vae.prior_components else ''})", 1.0, *shipped),
        ("CVAE as shipped, T=0.8", 0.8, *shipped),
        ("CVAE without truncation", 1.0, np.inf, vae.sharpness),
        ("CVAE without sharpening (Bernoulli mean)", 1.0, vae.truncation_radius, 1.0),
    ]
    if vae.has_margins:
        variants.insert(1, ("CVAE as shipped, every digit (`every_digit=True`)", 1.0, *shipped, vae.prior_components, True))
    if vae.prior_components:
        variants.append(("CVAE with one Gaussian per label (the prior before 1.2.0)", 1.0, *shipped, 0))
    for name, temperature, radius, sharpness, *prior in variants:
        vae.truncation_radius, vae.sharpness = radius, sharpness
        components = prior[0] if prior else vae.prior_components  # a variant may name its prior, then every_digit
        gen = sample_with_prior(vae, ya, rng, components, temperature, every_digit=prior[1:] == [True])
        rows.append((name, float(np.mean(predict(gen) == ya)), frechet(feats(gen), fb)))
    vae.truncation_radius, vae.sharpness = shipped
    z = rng.standard_normal((len(ya), vae.latent_dim)).astype(np.float32)
    gen = vae.decode(z, ya)
    rows.append(("CVAE with z ~ N(0, I) (the textbook prior)", float(np.mean(predict(gen) == ya)), frechet(feats(gen), fb)))
    print("| digits (5,000, labels of t10k half A) | read as requested | Frechet distance to t10k half B | x real-vs-real |")
    print("|---|---|---|---|")
    for name, acc, fd in rows:
        print(f"| {name} | {acc:.2%} | {fd:.2f} | {fd / real_fd:.2f} |")
    print("\nreal-vs-real: the judge's training digits against t10k half B, i.e. what a model that reproduced\n"
          "those digits exactly would score.")

    from scipy.ndimage import median_filter

    print("\n| noise p | input | PSNR (dB) | read correctly |")
    print("|---|---|---|---|")
    for p in (0.3, 0.5):
        noisy = corrupt(xa, p, rng)
        for name, out in (
            ("noisy", noisy),
            ("3x3 median filter", median_filter(noisy, size=(1, 3, 3))),
            ("CVAE denoise", vae.denoise(noisy, ya)),
            *([("the generator's own encoder and decoder", vae.ff_autoencode(noisy, ya))] if vae.denoiser is not vae else []),
        ):
            print(f"| {p} | {name} | {psnr(out, xa):.2f} | {np.mean(predict(out) == ya):.2%} |")

    print("\n| 8-digit numbers (1,000) | slant: within / overall variance | stroke width: within / overall | read as requested |")
    print("|---|---|---|---|")
    for name, slant, stroke, read in style_table(vae, real_x, real_y, rng, predict):
        print(f"| {name} | {slant:.3f} | {stroke:.3f} | {read:.2%} |")
    if not args.no_cas:
        seeds = args.cas_seeds if args.cas_seeds is not None else [args.seed]
        heads = {"plain": "plain (3,000 steps)", "shifted": "shifted (6,000 steps, random shifts, cosine decay)"}
        print(f"\nShare of t10k read correctly by the classifier (seeds {', '.join(map(str, seeds))}, batches of 64) "
              "trained on each set:\n")
        print("| classifier trained on | digits | " + " | ".join(heads[c] for c in args.classifiers) + " |")
        print("|---|---|" + "---|" * len(args.classifiers))
        for name, n, accs in cas_table(vae, real_x, real_y, x_test, y_test, rng, seeds, args.cas_digits, args.classifiers):
            cells = [f"{np.mean(a):.2%}" + (f" ({' / '.join(f'{v:.2%}' for v in a)})" if len(a) > 1 else "") for a in accs]
            print(f"| {name} | {n:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
