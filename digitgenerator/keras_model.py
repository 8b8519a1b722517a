"""The conditional VAE as a Keras 3 model, for training (needs TensorFlow).

Same layers and names as the numpy forward pass in model.py, which is what
generation and denoising use; this module is imported only to train or to
check the two against each other.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the terminal

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from .data import IMAGE_SIZE, NUM_CLASSES  # noqa: E402
from .model import DEFAULT_CONFIG, GRID, weight_shapes  # noqa: E402


class Cvae(keras.Model):
    """Conditional VAE: q(z | x, y) and p(x | z, y) for 28x28 digits and one-hot labels."""

    def __init__(self, config: dict | None = None, **kwargs):
        super().__init__(name="cvae", **kwargs)
        self.arch = {**DEFAULT_CONFIG, **(config or {})}
        a = self.arch
        c1, c2 = a["conv_channels"]
        self.latent_dim = a["latent_dim"]
        self.stroke_conv1 = layers.Conv2D(c1, a["kernel_size"], 2, "same", activation="relu", name="stroke_conv1")
        self.stroke_conv2 = layers.Conv2D(c2, a["kernel_size"], 2, "same", activation="relu", name="stroke_conv2")
        self.encoder_hidden = layers.Dense(a["hidden_units"], activation="relu", name="encoder_hidden")
        self.latent_mean = layers.Dense(a["latent_dim"], name="latent_mean")
        self.latent_log_var = layers.Dense(a["latent_dim"], name="latent_log_var")
        self.decoder_hidden = layers.Dense(a["hidden_units"], activation="relu", name="decoder_hidden")
        self.decoder_grid = layers.Dense(GRID * GRID * a["decoder_channels"], activation="relu", name="decoder_grid")
        self.upsample_14 = layers.Conv2DTranspose(
            a["decoder_channels"], a["upsample_kernel_size"], 2, "same", activation="relu", name="upsample_14"
        )
        self.pixel_logits = layers.Conv2DTranspose(1, a["upsample_kernel_size"], 2, "same", name="pixel_logits")
        # Build every layer now so that weights can be set before the first call.
        self((np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32), np.zeros((1, NUM_CLASSES), np.float32)))

    def encode(self, x, y):
        """Images (N, 28, 28, 1) and one-hot labels (N, 10) -> (mean, log-variance) of z."""
        h = self.stroke_conv2(self.stroke_conv1(x))
        h = ops.concatenate([ops.reshape(h, (ops.shape(h)[0], -1)), y], axis=1)
        h = self.encoder_hidden(h)
        return self.latent_mean(h), self.latent_log_var(h)

    def reparameterize(self, mean, log_var, eps):
        """z = mean + sigma * eps (Kingma & Welling 2014, eq. 10); eps ~ N(0, I) given by the caller."""
        return mean + ops.exp(0.5 * log_var) * eps

    def decode_logits(self, z, y):
        """Latents (N, d) and one-hot labels (N, 10) -> Bernoulli logits (N, 28, 28, 1)."""
        h = self.decoder_grid(self.decoder_hidden(ops.concatenate([z, y], axis=1)))
        h = ops.reshape(h, (-1, GRID, GRID, self.arch["decoder_channels"]))
        return self.pixel_logits(self.upsample_14(h))

    def decode(self, z, y):
        """Pixel means in [0, 1]: (N, 28, 28, 1)."""
        return ops.sigmoid(self.decode_logits(z, y))

    def call(self, inputs):
        x, y = inputs
        mean, _ = self.encode(x, y)
        return self.decode(mean, y)

    def named_weights(self) -> dict[str, np.ndarray]:
        """Every weight as "layer/kernel" or "layer/bias" -> float32 array (the npz layout), in
        weight_shapes' order: the npz members follow it, so the same weights make the same bytes
        (a set's order changes with each process's string hashing)."""
        out = {}
        for name in dict.fromkeys(key.split("/")[0] for key in weight_shapes(self.arch)):
            kernel, bias = getattr(self, name).get_weights()
            out[f"{name}/kernel"], out[f"{name}/bias"] = kernel, bias
        return out


def digit_reader(seed: int = 0) -> keras.Model:
    """A small CNN that reads a digit: images (N, 28, 28, 1) in [0, 1] -> logits (N, 10).

    Two 3x3 conv layers (32, 64; each max-pooled) and a 128-unit dense layer: the
    classic Keras MNIST example's shape. train.py fits it on the training digits and
    freezes it to read the CVAE's cross-label decodes (the label-consistency term).
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1)),
        layers.Conv2D(32, 3, activation="relu", name="reader_conv1"),
        layers.MaxPooling2D(name="reader_pool1"),
        layers.Conv2D(64, 3, activation="relu", name="reader_conv2"),
        layers.MaxPooling2D(name="reader_pool2"),
        layers.Flatten(name="reader_flatten"),
        layers.Dense(128, activation="relu", name="reader_hidden"),
        layers.Dense(NUM_CLASSES, name="reader_logits"),
    ], name="digit_reader")
