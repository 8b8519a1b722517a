"""Training the conditional VAE (needs TensorFlow), and exporting it for numpy inference.

Loss per digit, the negative evidence lower bound (Kingma & Welling 2014, eq. 3,
conditioned on the label as in Sohn et al. 2015, eq. 5):

    -ELBO = E_q[-log p(x | z, y)] + KL(q(z | x, y) || N(0, I))

with a Bernoulli decoder, so the first term is the pixel-wise sigmoid cross
entropy summed over the 784 pixels, and the Gaussian KL in closed form
(Kingma & Welling 2014, appendix B): -1/2 * sum(1 + log s^2 - m^2 - s^2).

To make the same model a denoiser, a share of each batch is fed to the encoder
corrupted by `noise.corrupt` (p ~ U(0, 0.6) per image) while the target stays
the clean digit: the encoder learns to read through the noise.

Optionally (consistency_weight lambda > 0), a label-consistency term: a small CNN
(keras_model.digit_reader), fitted to the training digits for READER_EPOCHS and then
frozen, reads each digit's posterior sample decoded under a random *other* label y',
and lambda * CE(y', reader(decode(z, y'))) joins the loss. With a KL weight below 1
the latent carries the label as well as the hand, and the decoder then follows the
latent over its label input; this term makes it write the label it is given, so one
latent keeps one hand across a number (docs/cvae-experiments.md measures both).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path, atomic_write_bytes
from .data import NUM_CLASSES, file_sha256
from .model import (CONFIG_FILE, DEFAULT_CONFIG, LABEL_MARGIN, MAX_CONSISTENCY_WEIGHT, MAX_KL_WEIGHT, MAX_LABEL_MARGIN,
                    MARGIN_SHAPE, MIN_KL_WEIGHT, NOISY_SHARE, WEIGHTS_FILE, ModelConfig, Vae, one_hot)
from .noise import MAX_TRAIN_NOISE, corrupt

KERAS_WEIGHTS_FILE = "cvae.weights.h5"  # the Keras checkpoint, for resuming training
CHECKPOINT_DIR = "checkpoint"  # per-epoch saves go here; out_dir itself gets the model only when training ends
PRIOR_JITTER = 1e-4  # added to covariance diagonals so the Cholesky factor always exists
# Sampling redraws the 20% of standard-normal latents farthest from the mean. Chosen
# while reading bench/quality.py's held-out table (README says so), which shows its effect.
TRUNCATION = 0.8
CALIBRATE_EVERY = 25  # epochs between sharpness calibrations during training
# Training digits per label whose posteriors make the mixture prior: all of them, up to
# MNIST's (its rarest label, 5, has 5,421). Each is a style the sampler can start from;
# a random 500 of all 60,000 (1.3.0's number) taught bench/quality.py's CAS classifier less.
PRIOR_COMPONENTS = 6000
# Passes of the label-consistency reader over the training digits before it is frozen:
# two read about 99% of t10k, enough to tell which label a decode shows.
READER_EPOCHS = 2


def fit_prior(means: np.ndarray, labels: np.ndarray, log_vars: np.ndarray | None = None,
              components: int = PRIOR_COMPONENTS, seed: int = 0, margins: np.ndarray | None = None
              ) -> dict[str, np.ndarray]:
    """The sampling priors from the training digits' posteriors (means, log-variances: (N, d)).

    Gaussians fitted to the encoder means: one per label, and one pooled ("style",
    for one handwriting across a number). With log_vars, also the mixture prior
    (see Vae.sample_latents): the posteriors of `components` digits per label, chosen
    at random (seeded) when a label has more; as many as the rarest label has when fewer.
    margins (N,): each digit's label margin, kept beside its component (model.MARGIN_SHAPE).
    """
    d = means.shape[1]

    def gaussian(z):
        cov = np.cov(z, rowvar=False) + PRIOR_JITTER * np.eye(d)
        return z.mean(axis=0), np.linalg.cholesky(cov)

    label_mean = np.zeros((NUM_CLASSES, d))
    label_chol = np.tile(np.eye(d), (NUM_CLASSES, 1, 1))
    for k in range(NUM_CLASSES):
        z = means[labels == k]
        if len(z) > d:  # too few digits of a label for a covariance: keep N(0, I) for it
            label_mean[k], label_chol[k] = gaussian(z)
    style_mean, style_chol = gaussian(means)
    prior = {
        "prior/label_mean": label_mean,
        "prior/label_chol": label_chol,
        "prior/style_mean": style_mean,
        "prior/style_chol": style_chol,
    }
    pools = [np.flatnonzero(labels == k) for k in range(NUM_CLASSES)]
    m = min([components] + [len(pool) for pool in pools])
    if log_vars is not None and m > 0:
        rng = np.random.default_rng(seed)
        kept = np.stack([rng.permutation(pool)[:m] for pool in pools])
        prior["prior/mixture_mean"] = means[kept]
        prior["prior/mixture_std"] = np.exp(0.5 * log_vars[kept])
        if margins is not None:
            prior[MARGIN_SHAPE[0]] = np.asarray(margins)[kept]
    return {k: v.astype(np.float32) for k, v in prior.items()}


SHARPNESS_GRID = np.round(np.arange(1.0, 3.01, 0.1), 2)
PCA_COMPONENTS = 50


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two sets of feature rows
    (the Frechet distance of Gaussians fitted to them, Dowson & Landau 1982)."""
    from scipy import linalg

    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():  # singular covariances (e.g. dead ReLU features): offset as Heusel et al.'s code does
        offset = np.eye(len(s1)) * 1e-6
        root = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(root)))


def calibrate_sharpness(vae, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """The logit scale s for which samples sigmoid(s * logits) are closest to the training
    digits (N, 28, 28): Frechet distance in the space of the training digits' top 50
    principal components. Uses training digits only, never held-out ones.
    """
    from .model import sigmoid

    x = images.reshape(len(images), -1).astype(np.float64)
    mean = x.mean(axis=0)
    basis = np.linalg.svd(x - mean, full_matrices=False)[2][:PCA_COMPONENTS].T
    real = (x - mean) @ basis
    logits = vae.decode_logits(vae.sample_latents(labels, np.random.default_rng(seed)), labels).reshape(len(x), -1)
    distances = [frechet_distance((sigmoid(s * logits) - mean) @ basis, real) for s in SHARPNESS_GRID]
    return float(SHARPNESS_GRID[int(np.argmin(distances))])


def label_margin(vae, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ELBO under each digit's own label minus the best ELBO under any other label, in nats: (N,).

    Negative where the model, used as a Bayes classifier (argmax_y ELBO(x, y)), reads
    the digit as another label; ten passes of the encoder and decoder.
    """
    labels = np.asarray(labels)
    scores = np.stack([vae.elbo(images, np.full(len(labels), k)) for k in range(NUM_CLASSES)], axis=1)
    own = scores[np.arange(len(labels)), labels]
    scores[np.arange(len(labels)), labels] = -np.inf
    return own - scores.max(axis=1)


def unit_images(images) -> np.ndarray:
    """Digits (N, 28, 28) as float32 in [0, 1]: uint8-scaled ones (any pixel above 1) divided by 255."""
    x = np.asarray(images, dtype=np.float32)
    return x / 255.0 if x.max() > 1.0 else x


def fit_sampling(arch: dict, weights: dict, images: np.ndarray, labels: np.ndarray,
                 sharpness: float | None = None, margin: float | None = LABEL_MARGIN) -> dict:
    """Fit the priors to the training digits (float (N, 28, 28) in [0, 1]) into `weights`;
    return the sampling settings for config.json.

    sharpness None calibrates it (a few seconds); a number reuses an earlier calibration.
    margin (nats): the mixture keeps every digit's label margin, and sampling leaves out
    by default the digits the model nearly reads as another label (those whose margin
    is not above it; computing the margins takes ten passes of the network over the
    digits, about 90 s for all 60,000 on 2 cores); None: no margins, every digit serves.
    """
    from scipy.stats import chi2

    for name in [k for k in weights if k.startswith("prior/")]:
        del weights[name]
    vae = Vae.from_weights(arch, weights)
    margins = None if margin is None else label_margin(vae, images, labels)
    means, log_vars = vae.encode(images, labels)
    weights.update(fit_prior(means, np.asarray(labels), log_vars, margins=margins))
    radius = float(np.sqrt(chi2.ppf(TRUNCATION, arch["latent_dim"])))
    components = len(weights["prior/mixture_mean"][0]) if "prior/mixture_mean" in weights else 0
    sampling = {"truncation": TRUNCATION, "truncation_radius": radius, "prior_components": components}
    if margins is not None and components:
        sampling.update(prior_label_margin=margin, prior_unclear_digits=int(np.sum(margins <= margin)), prior_margins=True)
    if sharpness is None:
        sharpness = calibrate_sharpness(Vae.from_weights({**arch, **sampling}, weights), images, labels)
    return {**sampling, "sharpness": sharpness}


def write_numpy_model(out_dir: Path, weights: dict, config: dict) -> dict:
    """cvae.npz, then config.json naming its SHA-256, each atomically; returns the config written."""
    npz_path = out_dir / WEIGHTS_FILE
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez(f, **weights)
    config = {**config, "weights_sha256": file_sha256(npz_path)}
    atomic_write_bytes(out_dir / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return config


def save_model(
    model, images: np.ndarray, labels: np.ndarray, out_dir: Path, info: dict, sharpness: float | None = None,
    margin: float | None = LABEL_MARGIN,
) -> dict:
    """Write cvae.npz (weights + fitted priors), config.json and the Keras checkpoint, each atomically.

    sharpness None calibrates it (a few seconds); a number reuses an earlier calibration.
    margin: as fit_sampling's.
    """
    import keras

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = model.named_weights()
    sampling = fit_sampling(model.arch, weights, images, labels, sharpness, margin)
    # Keras insists on the ".weights.h5" ending, so the temporary name keeps it.
    tmp_h5 = out_dir / f".tmp-{os.getpid()}.weights.h5"
    try:
        with warnings.catch_warnings():  # Keras's own numpy-2 DeprecationWarning, not the user's concern
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save_weights(tmp_h5)
        os.replace(tmp_h5, out_dir / KERAS_WEIGHTS_FILE)
    finally:
        tmp_h5.unlink(missing_ok=True)
    config = {**model.arch, **info, **sampling, "digitgenerator_version": __version__, "keras_version": keras.__version__}
    return write_numpy_model(out_dir, weights, config)


def check_label_margin(value) -> float | None:
    """None (every digit joins the mixture), or a margin in nats from 0 to MAX_LABEL_MARGIN."""
    from . import checks

    return None if value is None else checks.number(value, "label_margin", 0.0, MAX_LABEL_MARGIN)


def refit_prior(model_dir, images: np.ndarray, labels: np.ndarray, label_margin: float | None = LABEL_MARGIN) -> dict:
    """Refit a trained model's priors (and sharpness) to its training digits, in place; no TensorFlow.

    For a model saved before the mixture prior existed: its weights stay as they are.
    images: uint8 or float (N, 28, 28), the digits it was trained on; labels (N,).
    label_margin: as train_cvae's.
    """
    from .model import find_model_dir, load_weights

    label_margin = check_label_margin(label_margin)
    folder = find_model_dir(model_dir)
    config, weights = load_weights(folder)
    arch = ModelConfig.from_dict(config).arch()
    sampling = fit_sampling(arch, weights, unit_images(images), np.asarray(labels, dtype=np.int64), margin=label_margin)
    kept = {k: v for k, v in config.items() if k not in ("prior_label_margin", "prior_unclear_digits", "prior_margins")}
    return write_numpy_model(folder, weights, {**kept, **sampling, "prior_fitted_by": __version__})


def train_cvae(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    epochs: int = 60,
    batch_size: int = 128,
    seed: int = 0,
    learning_rate: float = 1e-3,
    noisy_share: float = NOISY_SHARE,
    kl_weight: float = 1.0,
    config: dict | None = None,
    log=None,
    consistency_weight: float = 0.0,
    label_margin: float | None = LABEL_MARGIN,
) -> dict:
    """Train a CVAE on uint8 or float images (N, 28, 28) and int labels (N,); save it in out_dir.

    consistency_weight: lambda of the label-consistency term (module docstring; 0 leaves
    it out). label_margin: nats by which a training digit's ELBO under its own label must
    beat every other label's for sampling to draw its mixture component by default (every
    component keeps its margin; `every_digit` draws them all); None: every digit, no margins.

    Returns the saved config (architecture, training settings, final losses).
    Checkpoints after every epoch, so an interrupted run leaves the last whole epoch.
    """
    from . import checks

    epochs = checks.integer(epochs, "epochs", 1, 100_000)
    batch_size = checks.integer(batch_size, "batch_size", 1, 100_000)
    noisy_share = checks.number(noisy_share, "noisy_share", 0.0, 1.0)
    learning_rate = checks.number(learning_rate, "learning_rate", 1e-7, 1.0)
    kl_weight = checks.number(kl_weight, "kl_weight", MIN_KL_WEIGHT, MAX_KL_WEIGHT)
    consistency_weight = checks.number(consistency_weight, "consistency_weight", 0.0, MAX_CONSISTENCY_WEIGHT)
    label_margin = check_label_margin(label_margin)
    out_dir = checks.output_folder(out_dir, "out_dir")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    x_all = unit_images(images)
    label_ids = np.asarray(labels, dtype=np.int64)
    y_all = one_hot(label_ids)
    if len(x_all) < batch_size:
        raise ValueError(f"{len(x_all)} digits is fewer than one batch of {batch_size}")

    import keras
    import tensorflow as tf

    from .keras_model import Cvae

    reader = None
    if consistency_weight:
        from .keras_model import digit_reader

        reader = digit_reader(seed)
        reader.compile(keras.optimizers.Adam(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        reader.fit(x_all[..., None], label_ids, batch_size=batch_size, epochs=READER_EPOCHS, verbose=0)
        reader.trainable = False
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = Cvae({**DEFAULT_CONFIG, **(config or {})})
    steps_per_epoch = len(x_all) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps_per_epoch, alpha=0.05)
    optimizer = keras.optimizers.Adam(schedule)

    @tf.function(reduce_retracing=True)
    def train_step(x_in, x_target, y, eps, y_other):
        with tf.GradientTape() as tape:
            mean, log_var = model.encode(x_in, y)
            z = model.reparameterize(mean, log_var, eps)
            logits = model.decode_logits(z, y)
            rec = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x_target, logits=logits), [1, 2, 3])
            kl = -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var), axis=1)
            loss = tf.reduce_mean(rec + kl_weight * kl)
            if reader is not None:  # the same hand under another label must read as that label
                read = reader(model.decode(z, y_other), training=False)
                loss += consistency_weight * tf.reduce_mean(
                    tf.nn.softmax_cross_entropy_with_logits(labels=y_other, logits=read))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.reduce_mean(rec), tf.reduce_mean(kl)

    checkpoints = out_dir / CHECKPOINT_DIR
    info = {
        "trained_on": len(x_all),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": learning_rate,
        "noisy_share": noisy_share,
        "kl_weight": kl_weight,
        "consistency_weight": consistency_weight,
        "max_noise_prob": MAX_TRAIN_NOISE,
    }
    saved = {}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x_all))[: steps_per_epoch * batch_size]
        x_target = x_all[order]
        # Corrupt a share of the encoder inputs; the reconstruction target stays clean.
        noisy = rng.random(len(order)) < noisy_share
        p = np.where(noisy, rng.uniform(0.0, MAX_TRAIN_NOISE, len(order)), 0.0)
        x_in = corrupt(x_target, p, rng)
        eps = rng.standard_normal((len(order), model.latent_dim), dtype=np.float32)
        # Another label for each digit (drawn only with the term on, so that a model
        # trained without it is the same as before the term existed).
        y_other = y_all[order]
        if reader is not None:
            y_other = one_hot((label_ids[order] + rng.integers(1, NUM_CLASSES, len(order))) % NUM_CLASSES)
        recs, kls = [], []
        for s in range(0, len(order), batch_size):
            b = slice(s, s + batch_size)
            rec, kl = train_step(x_in[b, ..., None], x_target[b, ..., None], y_all[order[b]], eps[b], y_other[b])
            recs.append(float(rec))
            kls.append(float(kl))
        info.update(final_reconstruction=float(np.mean(recs)), final_kl=float(np.mean(kls)), epochs_done=epoch)
        # Calibrating the sharpness costs seconds: do it now and then and at the end;
        # the checkpoints in between carry the latest value. Reading every digit under
        # every label costs a minute or more on all of MNIST: only the final model does;
        # a checkpoint's mixture may use every digit.
        calibrate = epoch == epochs or epoch % CALIBRATE_EVERY == 1
        saved = save_model(model, x_all, label_ids, checkpoints, info,
                           None if calibrate else saved["sharpness"], margin=label_margin if epoch == epochs else None)
        log(
            f"epoch {epoch}/{epochs}  reconstruction {np.mean(recs):.2f}  KL {np.mean(kls):.2f}  "
            f"({time.perf_counter() - start:.1f} s)"
        )
    # Only a finished model replaces the one in out_dir: an interrupted run leaves it as it was.
    for name in (KERAS_WEIGHTS_FILE, WEIGHTS_FILE, CONFIG_FILE):  # config last: it names the weights' checksum
        atomic_write_bytes(out_dir / name, (checkpoints / name).read_bytes())
    return saved
