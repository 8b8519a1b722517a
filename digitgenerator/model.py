"""The conditional VAE's forward passes in numpy: generation and denoising without TensorFlow.

The network (built for training in keras_model.py, same layer names):

    encoder  q(z | x, y): image (28, 28, 1) -> stroke_conv1 (3x3/2, relu) -> 14x14
             -> stroke_conv2 (3x3/2, relu) -> 7x7 -> flatten ++ one-hot label
             -> encoder_hidden (dense, relu) -> latent_mean, latent_log_var
    decoder  p(x | z, y): latent ++ one-hot label -> decoder_hidden (dense, relu)
             -> decoder_grid (dense, relu) -> 7x7 -> upsample_14 (4x4/2 transposed, relu)
             -> pixel_logits (4x4/2 transposed) -> 28x28 Bernoulli logits

Weights come from `cvae.npz` (one array per "layer/kernel" and "layer/bias")
and the architecture from `config.json` beside it. The npz also holds the
latent prior used for sampling (see `Vae.sample`).
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .data import IMAGE_SIZE, NUM_CLASSES

WEIGHTS_FILE = "cvae.npz"
CONFIG_FILE = "config.json"
MODEL_FOLDER = "tf_vae_files"  # a user's own model in ./tf_vae_files/ wins over the shipped one
MODEL_DIR_ENV = "DIGITGENERATOR_MODEL_DIR"
# A model folder may hold another model in this subfolder to denoise with (Vae.denoise).
# The shipped generator (KL weight 0.2) writes sharper digits, but its sharp decoder
# guesses a stroke where the blurrier KL-weight-1 decoder of 1.4.0 averages over where it
# may lie, which is what least-squares denoising wants: about 1 dB better at p = 0.5
# (docs/cvae-experiments.md). So the shipped folder keeps 1.4.0's model for denoising.
DENOISER_FOLDER = "denoiser"
GRID = IMAGE_SIZE // 4  # the decoder starts from a 7x7 grid and doubles twice

DEFAULT_CONFIG = {
    "latent_dim": 16,
    "conv_channels": [32, 32],
    "hidden_units": 256,
    "decoder_channels": 32,
    "kernel_size": 3,
    "upsample_kernel_size": 4,
}
MAX_UNITS = 4096  # channels, units and latent sizes past this are not a model this package ships or trains
MAX_DECODER_CHANNELS = 256  # what digitgenerator-train builds at most (the shipped model has 32)
MAX_LATENT_DIM = 256  # likewise for the latent (the shipped generator has 32)
# The share of training digits whose encoder input is corrupted (the target stays clean),
# so that the model also denoises. A model that only generates may train with 0: the
# shipped one denoises with its own model in denoiser/ (docs/cvae-experiments.md).
NOISY_SHARE = 0.5
# The weight beta on the KL term of the loss (Higgins et al. 2017's beta-VAE; 1 is the
# ELBO itself). Below 1 the posteriors narrow and the digits sharpen (the mixture prior
# is made of those posteriors, so sampling still lands where the digits are), but the
# latent then carries the label as well as the hand, so style="shared" and style_of
# write worse unless the label-consistency term is on (train.py): docs/cvae-experiments.md
# measures both. The shipped model has 0.2 with consistency weight 10.
MIN_KL_WEIGHT, MAX_KL_WEIGHT = 0.01, 10.0
# The weight of the label-consistency term (train.py): 0 leaves it out. Up to 100, as
# one cross-entropy in nats against a reconstruction of about 70 nats; 10 is the shipped model's.
MAX_CONSISTENCY_WEIGHT = 100.0
# A training digit whose ELBO under its own label beats every other label's by no more
# than LABEL_MARGIN (nats) is one the model itself nearly reads as another digit (a 4
# that is almost a 9): left out when sampling by default, as its samples are ambiguous
# (MARGIN_SHAPE). Screened with bench/quality.py's held-out judge and CAS classifier at
# 0, 5 and 10 nats (docs/cvae-experiments.md); 5 drops 1.8% of MNIST for 1.4.0's model.
# digitgenerator-train --label-margin sets it, up to MAX_LABEL_MARGIN.
LABEL_MARGIN, MAX_LABEL_MARGIN = 5.0, 1000.0
MAX_NPZ_MEMBER = 256 * 2**20  # bytes: the largest weight array a valid config can ask for is far smaller
MAX_PRIOR_COMPONENTS = 10_000  # training digits kept per label in the mixture prior (MNIST's largest label has 6,742)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture and sampling settings in config.json, checked (types, ranges, finiteness).

    `extra` keeps everything else training recorded (settings, versions, losses).
    """

    latent_dim: int = DEFAULT_CONFIG["latent_dim"]
    conv_channels: tuple[int, int] = tuple(DEFAULT_CONFIG["conv_channels"])
    hidden_units: int = DEFAULT_CONFIG["hidden_units"]
    decoder_channels: int = DEFAULT_CONFIG["decoder_channels"]
    kernel_size: int = DEFAULT_CONFIG["kernel_size"]
    upsample_kernel_size: int = DEFAULT_CONFIG["upsample_kernel_size"]
    sharpness: float = 1.0
    truncation_radius: float = float("inf")
    prior_components: int = 0
    prior_label_margin: float | None = None
    prior_margins: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        from . import checks

        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for name in ("latent_dim", "hidden_units", "decoder_channels"):
            set_(name, checks.integer(getattr(self, name), name, low=1, high=MAX_UNITS))
        set_("conv_channels", tuple(checks.integer(c, "conv_channels", low=1, high=MAX_UNITS) for c in self.conv_channels))
        set_("kernel_size", checks.integer(self.kernel_size, "kernel_size", low=1, high=7))
        set_("upsample_kernel_size", checks.integer(self.upsample_kernel_size, "upsample_kernel_size", low=2, high=8))
        set_("sharpness", checks.number(self.sharpness, "sharpness", low=0.01, high=100.0))
        radius = self.truncation_radius
        if radius is None or (isinstance(radius, float) and radius == float("inf")):
            radius = float("inf")
        else:
            radius = checks.number(radius, "truncation_radius", low=0.1, high=1000.0)
        set_("truncation_radius", radius)
        set_("prior_components", checks.integer(self.prior_components, "prior_components", 0, MAX_PRIOR_COMPONENTS))
        if self.prior_label_margin is not None:
            set_("prior_label_margin", checks.number(self.prior_label_margin, "prior_label_margin", 0.0, MAX_LABEL_MARGIN))
        if not isinstance(self.prior_margins, bool):
            raise ValueError(f"prior_margins must be true or false, got {self.prior_margins!r}")
        if self.prior_margins and (self.prior_label_margin is None or not self.prior_components):
            raise ValueError("prior_margins needs prior_label_margin and prior_components")

    @classmethod
    def from_dict(cls, raw) -> "ModelConfig":
        """A checked config from config.json's object; ValueError naming the bad key."""
        if not isinstance(raw, dict):
            raise ValueError(f"config must be a JSON object, got {type(raw).__name__}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        missing = [k for k in DEFAULT_CONFIG if k not in raw]
        if missing:
            raise ValueError(f"config lacks {missing[0]!r}")
        values = {k: raw[k] for k in known if k in raw}
        if isinstance(values.get("conv_channels"), list):
            values["conv_channels"] = tuple(values["conv_channels"])
        if not isinstance(values.get("conv_channels"), tuple) or len(values["conv_channels"]) != 2:
            raise ValueError(f"conv_channels {raw.get('conv_channels')!r} must be two integers")
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def arch(self) -> dict:
        """The architecture as the dict `weight_shapes` and the Keras model take."""
        return {k: (list(v) if k == "conv_channels" else getattr(self, k)) for k, v in
                ((k, getattr(self, k)) for k in DEFAULT_CONFIG)}

# Parameter shapes by layer, from a config: what the npz must hold.
def weight_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The shape of every weight array the model needs, keyed "layer/kernel" or "layer/bias"."""
    c1, c2 = config["conv_channels"]
    k, uk = config["kernel_size"], config["upsample_kernel_size"]
    h, d, dc = config["hidden_units"], config["latent_dim"], config["decoder_channels"]
    layers = {
        "stroke_conv1": (k, k, 1, c1),
        "stroke_conv2": (k, k, c1, c2),
        "encoder_hidden": (GRID * GRID * c2 + NUM_CLASSES, h),
        "latent_mean": (h, d),
        "latent_log_var": (h, d),
        "decoder_hidden": (d + NUM_CLASSES, h),
        "decoder_grid": (h, GRID * GRID * dc),
        # Keras stores transposed-convolution kernels as (k, k, out, in).
        "upsample_14": (uk, uk, dc, dc),
        "pixel_logits": (uk, uk, 1, dc),
    }
    shapes = {}
    for name, kernel in layers.items():
        shapes[f"{name}/kernel"] = kernel
        out = kernel[2] if name in ("upsample_14", "pixel_logits") else kernel[-1]
        shapes[f"{name}/bias"] = (out,)
    return shapes


PRIOR_SHAPES = {  # filled in after training, from the encoder means of the training digits
    "prior/label_mean": lambda d: (NUM_CLASSES, d),
    "prior/label_chol": lambda d: (NUM_CLASSES, d, d),
    "prior/style_mean": lambda d: (d,),
    "prior/style_chol": lambda d: (d, d),
}
# The aggregate posterior as a mixture (config "prior_components" = M > 0): the
# posterior q(z | x, y) of M training digits per label, each a diagonal Gaussian.
MIXTURE_SHAPES = {
    "prior/mixture_mean": lambda d, m: (NUM_CLASSES, m, d),
    "prior/mixture_std": lambda d, m: (NUM_CLASSES, m, d),
}
# From 1.7.0 (config "prior_margins": true) the mixture keeps every training digit drawn
# for it, each with its label margin (train.label_margin, nats), and sampling chooses: by
# default only the components whose margin is above config "prior_label_margin" (legible
# digits: the judge of bench/quality.py reads over 99% as asked), with every_digit all of
# them. The ones left out by default are the boundary cases (a 4 that is almost a 9) that
# an OCR classifier learns most from: docs/cvae-experiments.md measured both.
MARGIN_SHAPE = "prior/mixture_margin", lambda m: (NUM_CLASSES, m)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding: output ceil(size / stride), extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """2-D convolution, "same" padding. x (N, H, W, Cin), kernel (k, k, Cin, Cout) -> (N, H/s, W/s, Cout)."""
    k = kernel.shape[0]
    n, h, w, cin = x.shape
    (pt, pb), (pl, pr) = _same_padding(h, k, stride), _same_padding(w, k, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    ho, wo = windows.shape[1:3]
    # (N, Ho, Wo, Cin, k, k) -> (N, Ho, Wo, k, k, Cin) to match the kernel's (k, k, Cin) order.
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, k * k * cin)
    return (cols @ kernel.reshape(k * k * cin, -1) + bias).reshape(n, ho, wo, -1)


def conv2d_transpose(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Transposed convolution, "same" padding. x (N, H, W, Cin), kernel (k, k, Cout, Cin) -> (N, sH, sW, Cout).

    Input pixel i adds kernel[a] @ x[i] to output o = s*i + a - pad. Computed by
    output phase (the "sub-pixel" form, Shi et al. 2016): the outputs o = s*m + r
    receive only the taps a = r + pad (mod s), from inputs m - (a - r - pad) / s.
    When s divides k those inputs are a window of k/s consecutive pixels, so one
    matrix product over all windows yields every phase at once; that pays when
    a window (k/s)^2 * Cin is no larger than the k^2 * Cout products per pixel.
    Otherwise (e.g. the one-channel output layer) each tap's product is computed
    once and shifted into place.
    """
    k = kernel.shape[0]
    n, h, w, cin = x.shape
    cout = kernel.shape[2]
    pad = _same_padding(stride * h, k, stride)[0]
    # taps[r]: (input offset, kernel index) pairs feeding output phase r, by offset.
    taps = [sorted((-(a - r - pad) // stride, a) for a in range(k) if (a - r - pad) % stride == 0) for r in range(stride)]
    out = np.empty((n, stride * h, stride * w, cout), dtype=np.result_type(x, kernel))
    t = k // stride
    if k % stride == 0 and t * t * cin <= k * k * cout:
        starts = [phase[0][0] for phase in taps]
        lo, hi = min(starts), max(starts)
        grid = (h + hi - lo, w + hi - lo)  # window positions lo .. hi + size - 1
        xp = np.zeros((n, h + 2 * t + hi - lo, w + 2 * t + hi - lo, cin), x.dtype)
        xp[:, t : t + h, t : t + w] = x
        base = t + lo  # index in xp of window position lo
        windows = np.lib.stride_tricks.sliding_window_view(xp[:, base:, base:], (t, t), axis=(1, 2))
        cols = windows[:, : grid[0], : grid[1]].transpose(0, 1, 2, 4, 5, 3).reshape(-1, t * t * cin)
        weights = np.zeros((t, t, cin, stride, stride, cout), kernel.dtype)
        for r in range(stride):
            for c in range(stride):
                for u, (_, a) in enumerate(taps[r]):
                    for v, (_, b) in enumerate(taps[c]):
                        weights[u, v, :, r, c] = kernel[a, b].T
        y = (cols @ weights.reshape(t * t * cin, -1)).reshape(n, grid[0], grid[1], stride, stride, cout)
        for r in range(stride):
            for c in range(stride):
                dr, dc = starts[r] - lo, starts[c] - lo
                out[:, r::stride, c::stride] = y[:, dr : dr + h, dc : dc + w, r, c]
    else:
        # products[n, a, b, c, i, j] = (kernel[a, b] @ x[n, i, j])[c], zero-padded around the
        # image; taps and channels first, so that every shifted slice below is row-contiguous.
        m = -(-k // stride) + 1
        products = np.zeros((n, k, k, cout, h + 2 * m, w + 2 * m), out.dtype)
        flat = x.reshape(-1, cin) @ kernel.transpose(3, 0, 1, 2).reshape(cin, k * k * cout)
        products[..., m : m + h, m : m + w] = flat.reshape(n, h, w, k, k, cout).transpose(0, 3, 4, 5, 1, 2)
        for r in range(stride):
            for c in range(stride):
                phase = np.zeros((n, cout, h, w), out.dtype)
                for di, a in taps[r]:
                    for dj, b in taps[c]:
                        phase += products[:, a, b, :, m + di : m + di + h, m + dj : m + dj + w]
                out[:, r::stride, c::stride] = phase.transpose(0, 2, 3, 1)
    out += bias
    return out


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + e^-x) and never overflows.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def label_array(labels, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Labels as an integer array (N,), checked; ValueError for anything not 0-9."""
    labels = np.asarray(labels)
    if labels.ndim == 1 and labels.size == 0:
        labels = labels.astype(np.int64)  # an empty list is float to numpy, but no label is a bad one
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D sequence of integers 0-9, got {labels!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"label {int(bad)} is not a digit 0-9")
    return labels


def one_hot(labels, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Labels (N,) as float32 one-hot rows (N, 10); ValueError for anything not 0-9."""
    return np.eye(num_classes, dtype=np.float32)[label_array(labels, num_classes)]


def find_model_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """The model folder: the argument, $DIGITGENERATOR_MODEL_DIR, ./tf_vae_files, then the shipped model."""
    if model_dir is not None:
        return Path(model_dir)
    if os.environ.get(MODEL_DIR_ENV):
        return Path(os.environ[MODEL_DIR_ENV])
    local = Path(MODEL_FOLDER)
    if (local / WEIGHTS_FILE).is_file():
        return local
    return shipped_model_dir()


def shipped_model_dir() -> Path:
    """The pretrained model: package data when installed, ../tf_vae_files in a source checkout."""
    try:
        packaged = Path(str(resources.files("digitgenerator.tf_vae_files")))
        if (packaged / WEIGHTS_FILE).is_file():
            return packaged
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / MODEL_FOLDER


def load_weights(model_dir: str | os.PathLike | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, float32 weights by name) from a model folder, checked against each other."""
    folder = find_model_dir(model_dir)
    fix = "train one with `digitgenerator-train`, or point model_dir / --model-dir at a folder holding cvae.npz"
    weights_path, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    for path in (weights_path, config_path):
        if not path.is_file():
            raise FileNotFoundError(f"no CVAE model: {path} is missing; {fix}")
    try:
        config = json.loads(config_path.read_text())
        checked = ModelConfig.from_dict(config)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_path} is not a valid CVAE config ({exc}); {fix}") from None
    arch = checked.arch()
    expected = dict(weight_shapes(arch))
    expected.update({name: shape(arch["latent_dim"]) for name, shape in PRIOR_SHAPES.items()})
    if checked.prior_components:
        expected.update({name: shape(arch["latent_dim"], checked.prior_components) for name, shape in MIXTURE_SHAPES.items()})
    if checked.prior_margins:
        expected[MARGIN_SHAPE[0]] = MARGIN_SHAPE[1](checked.prior_components)
    try:
        weights = read_npz(weights_path, expected)
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{weights_path} is corrupt ({exc}); {fix}") from None
    except ValueError as exc:
        raise ValueError(f"{exc}; {fix}") from None
    for name, array in weights.items():
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{weights_path}: {name} holds NaN or infinite values; {fix}")
    config = {**config, "sharpness": checked.sharpness,
              "truncation_radius": None if checked.truncation_radius == float("inf") else checked.truncation_radius,
              "prior_components": checked.prior_components}
    return config, weights


def read_npz(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz, as float32, each checked against its expected shape before it is read.

    Only the members asked for are read (a large unused member costs nothing),
    and a member whose header declares another shape or a non-float type is
    refused from its header alone, so a hostile header cannot make us allocate.
    """
    out = {}
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
        for name, shape in expected.items():
            member = name + ".npy"
            if member not in members:
                raise ValueError(f"{path} lacks {name}")
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                declared, fortran, dtype = read_header(f)
                if tuple(declared) != tuple(shape):
                    raise ValueError(f"{path}: {name} has shape {tuple(declared)}, config says {tuple(shape)}")
                if dtype.kind != "f" or dtype.itemsize > 8:
                    raise ValueError(f"{path}: {name} holds {dtype}, not floats")
                size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                data = f.read(size)
                if len(data) != size:
                    raise ValueError(f"{path}: {name} is truncated")
                array = np.frombuffer(data, dtype=dtype)
                array = array.reshape(shape, order="F" if fortran else "C")
                out[name] = array.astype(np.float32)
    return out


class Vae:
    """A trained conditional VAE, run in numpy.

    Images are float32 (N, 28, 28) in [0, 1] (1 = ink); labels int (N,);
    latents float32 (N, latent_dim).
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, batch_size: int = 128):
        folder = find_model_dir(model_dir)
        self._setup(folder, *load_weights(folder), batch_size)

    @classmethod
    def from_weights(cls, config: dict, weights: dict[str, np.ndarray], batch_size: int = 128) -> "Vae":
        """A Vae over in-memory weights (npz layout), e.g. straight from a Keras model."""
        vae = cls.__new__(cls)
        vae._setup(None, dict(config), weights, batch_size)
        return vae

    def _setup(self, model_dir: Path | None, config: dict, weights: dict[str, np.ndarray], batch_size: int) -> None:
        self.model_dir, self.config, self.weights = model_dir, config, weights
        checked = ModelConfig.from_dict(config)
        self.latent_dim = checked.latent_dim
        self.sharpness = checked.sharpness
        self.truncation_radius = checked.truncation_radius
        self.prior_components = checked.prior_components
        self.label_margin = checked.prior_label_margin  # nats: the mixture's default sampling leaves out digits at or below it
        self._legible = None  # (order (10, M), counts (10,)): per label, the components above the margin first
        if checked.prior_margins:
            clear = weights[MARGIN_SHAPE[0]] > checked.prior_label_margin
            clear[~clear.any(axis=1)] = True  # a label none of whose digits is clear keeps them all
            self._legible = np.argsort(~clear, axis=1, kind="stable"), clear.sum(axis=1)
        self.batch_size = batch_size
        self.threads: int | None = None  # threads for large batches; None: one per core
        self._denoiser: Vae | None = None

    @property
    def denoiser(self) -> "Vae":
        """The model that denoises: the one in the DENOISER_FOLDER subfolder of this model's folder, if
        that holds a cvae.npz (loaded on first use, checked as any model), else this model itself."""
        if self._denoiser is None:
            folder = self.model_dir / DENOISER_FOLDER if self.model_dir is not None else None
            has_own = folder is not None and (folder / WEIGHTS_FILE).is_file()
            self._denoiser = Vae(folder, self.batch_size) if has_own else self
        return self._denoiser

    def _w(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        return self.weights[f"{layer}/kernel"], self.weights[f"{layer}/bias"]

    def _batched(self, fn, n: int, *arrays) -> list:
        """fn over consecutive batches of the arrays' rows, in order.

        Several batches run on parallel threads with single-threaded BLAS: for
        these small matrix products that uses the cores better than one product
        split by BLAS (bench/speed.py measured about 1.4x on 2 cores).
        """
        slices = [slice(s, s + self.batch_size) for s in range(0, n, self.batch_size)]
        run = lambda sl: fn(*(a[sl] for a in arrays))  # noqa: E731
        workers = min(len(slices), self.threads or os.cpu_count() or 1)
        if workers < 2:
            return [run(sl) for sl in slices]
        from concurrent.futures import ThreadPoolExecutor

        with _blas_controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, slices))

    def encode(self, images, labels) -> tuple[np.ndarray, np.ndarray]:
        """Posterior q(z | x, y): (mean, log-variance), each (N, latent_dim)."""
        return self._encode(_as_images(images), labels)

    def _encode(self, x: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
        """encode for images already checked by _as_images: float32 (N, 28, 28)."""
        x = x[..., None]
        y = one_hot(labels)
        if len(y) != len(x):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        w = self.weights

        def forward(x, y):
            h = relu(conv2d(x, *self._w("stroke_conv1"), stride=2))
            h = relu(conv2d(h, *self._w("stroke_conv2"), stride=2))
            h = np.concatenate([h.reshape(len(h), -1), y], axis=1)
            h = relu(h @ w["encoder_hidden/kernel"] + w["encoder_hidden/bias"])
            return h @ w["latent_mean/kernel"] + w["latent_mean/bias"], h @ w["latent_log_var/kernel"] + w["latent_log_var/bias"]

        parts = self._batched(forward, len(x), x, y)
        if not parts:
            return np.zeros((0, self.latent_dim), np.float32), np.zeros((0, self.latent_dim), np.float32)
        return np.concatenate([m for m, _ in parts]), np.concatenate([v for _, v in parts])

    def elbo(self, images, labels) -> np.ndarray:
        """The evidence lower bound of each digit under the given label, in nats: (N,).

        log p(x | y) >= E_q[log p(x | z, y)] - KL(q(z | x, y) || N(0, I)) (Kingma &
        Welling 2014, eq. 3), with the expectation taken at the posterior mean (one
        deterministic point rather than a sample): the Bernoulli log-likelihood of the
        pixels (x in [0, 1], as in training) minus the Gaussian KL in closed form (ibid.,
        appendix B). Comparing a digit's ELBO under each label makes the model a classifier.
        """
        x = _as_images(images)
        mean, log_var = self._encode(x, labels)  # x is checked: once is enough
        x = x.reshape(len(mean), IMAGE_SIZE * IMAGE_SIZE)
        logits = self.decode_logits(mean, labels).reshape(x.shape).astype(np.float64)
        # log sigmoid(l) x + log sigmoid(-l) (1 - x) = l x - softplus(l), softplus written to never overflow
        log_likelihood = (logits * x - np.maximum(logits, 0) - np.log1p(np.exp(-np.abs(logits)))).sum(axis=1)
        kl = 0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var).astype(np.float64).sum(axis=1)
        return log_likelihood - kl

    def reparameterize(self, mean, log_var, rng: np.random.Generator) -> np.ndarray:
        """z = mean + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2014, eq. 10)."""
        eps = rng.standard_normal(np.shape(mean), dtype=np.float32)
        return (mean + np.exp(0.5 * np.asarray(log_var)) * eps).astype(np.float32)

    def decode_logits(self, z, labels, sharpness: float | None = None) -> np.ndarray:
        """Bernoulli logits of p(x | z, y): (N, 28, 28); sigmoid(sharpness * logits) if sharpness is given."""
        z = np.asarray(z, dtype=np.float32)
        if z.size and z.shape[-1:] != (self.latent_dim,):
            raise ValueError(f"z must hold {self.latent_dim} values per digit, shape (N, {self.latent_dim}); got shape {z.shape}")
        z = z.reshape(-1, self.latent_dim)
        if not np.isfinite(z).all():
            raise ValueError("z holds NaN or infinite values; latents must be finite numbers")
        y = one_hot(labels)
        if len(y) != len(z):
            raise ValueError(f"{len(z)} latents but {len(y)} labels")
        w, channels = self.weights, int(self.config["decoder_channels"])

        def forward(z, y):
            h = relu(np.concatenate([z, y], axis=1) @ w["decoder_hidden/kernel"] + w["decoder_hidden/bias"])
            h = relu(h @ w["decoder_grid/kernel"] + w["decoder_grid/bias"])
            h = relu(conv2d_transpose(h.reshape(-1, GRID, GRID, channels), *self._w("upsample_14"), stride=2))
            logits = conv2d_transpose(h, *self._w("pixel_logits"), stride=2)[..., 0]
            return logits if sharpness is None else sigmoid(sharpness * logits)

        parts = self._batched(forward, len(z), z, y)
        return np.concatenate(parts) if parts else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32)

    def decode(self, z, labels, sharpness: float | None = None) -> np.ndarray:
        """The digit for latents z and labels: float32 (N, 28, 28) in [0, 1].

        sigmoid(sharpness * logits). With sharpness 1 this is the Bernoulli mean,
        which blurs each stroke by the decoder's uncertainty about where it lies;
        training calibrates the model's sharpness so that its samples come
        closest to the training digits (see train.calibrate_sharpness). None
        uses that calibrated value.
        """
        scale = self.sharpness if sharpness is None else sharpness
        return self.decode_logits(z, labels, sharpness=float(scale)).astype(np.float32, copy=False)

    def truncated_normal(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, latent_dim) standard normal draws, each redrawn until its norm is within
        the model's truncation radius (the "truncation trick", Brock et al. 2019, sec. 3.1):
        the rare far tails of the fitted prior decode to ambiguous digits."""
        eps = rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        for _ in range(100):
            far = np.einsum("ij,ij->i", eps, eps) > self.truncation_radius**2
            if not far.any():
                break
            eps[far] = rng.standard_normal((int(far.sum()), self.latent_dim), dtype=np.float32)
        return eps

    def sample_latents(self, labels, rng: np.random.Generator, temperature: float = 1.0,
                       every_digit: bool = False) -> np.ndarray:
        """One latent per label from the prior fitted to the training digits: (N, latent_dim).

        With a mixture prior (config "prior_components" M > 0), the aggregate
        posterior itself: a training digit k of the label, drawn uniformly from the
        M kept, and z = m_k + T * s_k * eps, its posterior q(z | x_k, y) = N(m_k, s_k^2)
        (the VampPrior of Tomczak & Welling 2018 with the training digits as its
        pseudo-inputs: the aggregate posterior, which Hoffman & Johnson 2016 show
        differs from N(0, I)). T = 0 gives the training digit's posterior mean.
        Without, z = mu_y + T * L_y @ eps, one Gaussian per label fitted to the
        encoder means of the training digits. eps is truncated (see truncated_normal).

        every_digit: with a model that keeps its components' label margins (1.7.0
        on), draw among all of them rather than only those above the model's
        label margin (see MARGIN_SHAPE): less legible digits, better training data.
        """
        labels = label_array(labels)
        every_digit = self.check_every_digit(every_digit)
        eps = self.truncated_normal(len(labels), rng)
        if self.prior_components:
            if every_digit or self._legible is None:
                k = rng.integers(0, self.prior_components, len(labels))
            else:
                order, counts = self._legible
                k = order[labels, rng.integers(0, counts[labels])]
            mean, std = self.weights["prior/mixture_mean"][labels, k], self.weights["prior/mixture_std"][labels, k]
            return (mean + temperature * std * eps).astype(np.float32)
        mu, chol = self.weights["prior/label_mean"][labels], self.weights["prior/label_chol"][labels]
        return mu + temperature * np.einsum("nij,nj->ni", chol, eps)

    def sample_style(self, rng: np.random.Generator, temperature: float = 1.0, labels=None) -> np.ndarray:
        """One handwriting: a single latent (latent_dim,) to decode every digit of a sequence with.

        With `labels`, z is drawn from the Gaussian whose precision is the mean of
        the precisions of those labels' fitted priors, P = mean(P_y), and whose
        mean is precision-weighted, m = P^-1 mean(P_y mu_y): a latent typical for
        every requested digit at once. Without (or with none), from the prior pooled over all labels.
        """
        distinct = np.unique(label_array(labels)) if labels is not None else ()
        if len(distinct) == 0:
            mean, chol = self.weights["prior/style_mean"], self.weights["prior/style_chol"]
        else:
            chols = self.weights["prior/label_chol"][distinct].astype(np.float64)
            precisions = np.linalg.inv(chols @ chols.transpose(0, 2, 1))
            precision = precisions.mean(axis=0)
            cov = np.linalg.inv(precision)
            mean = cov @ np.einsum("kij,kj->i", precisions, self.weights["prior/label_mean"][distinct]) / len(distinct)
            chol = np.linalg.cholesky((cov + cov.T) / 2)
        eps = self.truncated_normal(1, rng)[0]
        return (mean + temperature * chol @ eps).astype(np.float32)

    @property
    def has_margins(self) -> bool:
        """Whether the mixture keeps its components' label margins (1.7.0 on), so that
        every_digit draws from more handwritings than the default does."""
        return self._legible is not None

    def check_every_digit(self, every_digit) -> bool:
        """every_digit as a bool; ValueError if it is not one, or if this model cannot draw every digit."""
        if not isinstance(every_digit, (bool, np.bool_)):
            raise ValueError(f"every_digit must be True or False, got {every_digit!r}")
        if every_digit and self._legible is None and (not self.prior_components or self.label_margin is not None):
            what = ("has no mixture prior" if not self.prior_components else
                    f"keeps only the digits its {self.label_margin:g}-nat label margin let in")
            raise ValueError(f"every_digit needs a model that keeps every training digit with its label margin; "
                             f"{self.model_dir or 'this model'} {what}: refit it with "
                             f"`digitgenerator-train --refit-prior --out-dir {self.model_dir or 'DIR'}`")
        return bool(every_digit)

    def sample(self, labels, rng: np.random.Generator, temperature: float = 1.0, every_digit: bool = False) -> np.ndarray:
        """New digits of the given labels: float32 (N, 28, 28). every_digit: see sample_latents."""
        return self.decode(self.sample_latents(labels, rng, temperature, every_digit), labels)

    def denoise(self, images, labels) -> np.ndarray:
        """Clean digits (N, 28, 28) from noisy ones (a list or array of 28x28, labels (N,)):
        `ff_autoencode` by the denoiser (see `denoiser`)."""
        denoiser = self.denoiser
        denoiser.threads = self.threads
        return denoiser.ff_autoencode(images, labels)

    def ff_autoencode(self, images, labels) -> np.ndarray:
        """Encode and decode at the posterior mean: a list or array of 28x28 in, (N, 28, 28) out.

        Returns the Bernoulli mean (no sharpening): the estimate with the least
        expected squared error, which is what denoising is judged by.
        """
        mean, _ = self.encode(images, labels)
        return self.decode(mean, labels, sharpness=1.0)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once per process (it is slow to build)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _as_images(images) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    elif x.shape == (0,):  # an empty list of digits
        x = x.reshape(0, IMAGE_SIZE, IMAGE_SIZE)
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images must be 28x28 (one, or a stack (N, 28, 28)), got shape {x.shape}")
    if not (np.all(x >= 0) and np.all(x <= 1)):  # also catches NaN
        got = "NaN or infinite values" if not np.isfinite(x).all() else f"{x.min():g} to {x.max():g}"
        raise ValueError(f"images need pixels in [0, 1] (1 = ink), got {got}: divide uint8 digits by 255")
    return x
