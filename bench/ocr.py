"""What does an OCR model trained on digitgenerator's output read on real handwritten numbers?

For each configuration (a list of `digitgenerator-dataset` flags) this script
1. writes N training images with `digitgenerator-dataset` (the embedded 5,000
   training digits, as a user would, in a temporary folder);
2. trains a small CRNN (convolutions over the image, a 1-D convolution over its
   columns, per-column softmax) with the CTC loss (Graves et al. 2006) on CPU,
   fixed steps and seed;
3. reads two sets of real numbers made of MNIST *test* digits (t10k, in
   ../shared/mnist/: never used for training images):
   - separated: digits at their own size, 2-8 px of paper between inks,
     bottoms within 1 px of one baseline;
   - touching: ink gaps of -3..0 px (touching or overlapping strokes, combined
     by maximum), each digit 0.8-1.2x its size and up to 3 px off the baseline.
   The test numbers are composed here with PIL and numpy, independently of the
   package's layout code, and are 3-6 digits long (postcodes, amounts). Every
   image, training or test, is cut to its ink rows (from the manifest's ink
   boxes for training images) plus 2 px, as a line finder would, so that no
   generator's canvas height sets the scale the recognizer sees, and
   contrast-normalised (paper to 0, ink to 1), as an OCR front end would, so
   that neither grey scanned paper nor pure black and white sets its levels.
It reports sequence accuracy (the whole number read exactly) and character
error rate (edit distance / digits).

    python bench/ocr.py                          # the README table (about 18 min per configuration on 2 cores)
    python bench/ocr.py --train 4000 --epochs 3  # a quick look
    python bench/ocr.py --config realistic       # one row

Needs TensorFlow (pip install ".[train]") and ../shared/mnist/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.idx import read_images_and_labels  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "mnist"
INPUT_HEIGHT = 24  # the recognizer's input: every image is resized to this height (16 read touching digits worse: 68% vs 78%)
INPUT_WIDTH = 240  # and padded (or squeezed) to this width
BLANK = 10  # CTC blank: classes 0-9 are the digits
TEST_LENGTHS = (3, 6)  # postcodes and amounts
TEST_HEIGHT = 32
LINE_MARGIN = 2  # every image is cut to its ink rows plus this much, so that the canvas height of neither
# the training images nor the test numbers sets the scale the recognizer sees
BATCH = 64
INK_PERCENTILE = 99.5  # the ink level of contrast normalisation (the darkest 0.5% may be noise or overlaps)
MIN_CONTRAST = 0.05  # a nearly blank image is not stretched into noise

CONFIGS = {
    "default": [],
    "ink-spacing + augmentation": ["--ink-spacing", "--rotate", "8", "--shear", "15", "--elastic", "6", "--thickness", "1"],
    "realistic": ["--realistic"],
    "realistic + augmentation": ["--realistic", "--rotate", "6", "--elastic", "6"],
}


# ----------------------------------------------------------------------------- real test numbers


def _crop_to_ink(digit: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(digit.max(axis=1) > 0.1)
    cols = np.flatnonzero(digit.max(axis=0) > 0.1)
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _resize(digit: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = digit.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.clip(np.asarray(Image.fromarray(digit, mode="F").resize(size, Image.Resampling.BILINEAR)), 0, 1)


def real_numbers(images, labels, count: int, touching: bool, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """`count` numbers of 4-8 real digits: float32 (32, W) images with ink = 1, and their texts."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    used = 0
    out, texts = [], []
    for _ in range(count):
        n = int(rng.integers(TEST_LENGTHS[0], TEST_LENGTHS[1], endpoint=True))
        if used + n > len(order):
            order, used = rng.permutation(len(labels)), 0
        picks = order[used : used + n]
        used += n
        glyphs = []
        for i in picks:
            g = _crop_to_ink(images[i].astype(np.float32) / 255.0)
            glyphs.append(_resize(g, rng.uniform(0.8, 1.2)) if touching else g)
        gaps = rng.integers(-3, 0, n, endpoint=True) if touching else rng.integers(2, 8, n, endpoint=True)
        jitter = 3 if touching else 1
        dy = rng.integers(-jitter, jitter, n, endpoint=True)
        xs = [3]
        for g, gap in zip(glyphs[:-1], gaps[1:]):
            xs.append(xs[-1] + g.shape[1] + int(gap))
        width = xs[-1] + glyphs[-1].shape[1] + 3
        canvas = np.zeros((TEST_HEIGHT, width), np.float32)
        baseline = TEST_HEIGHT - 5  # bottoms sit here, give or take the jitter
        for g, x, d in zip(glyphs, xs, dy):
            top = max(0, min(TEST_HEIGHT - g.shape[0], baseline - g.shape[0] + int(d)))
            region = canvas[top : top + g.shape[0], x : x + g.shape[1]]
            np.maximum(region, g[: region.shape[0]], out=region)
        rows = np.flatnonzero(canvas.max(axis=1) > 0.1)
        out.append(crop_rows(canvas, int(rows[0]), int(rows[-1]) + 1))
        texts.append("".join(str(int(labels[i])) for i in picks))
    return out, texts


# ----------------------------------------------------------------------------- recognizer input


def crop_rows(image: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """The rows top..bottom of the ink, with LINE_MARGIN rows of paper above and below (as a line finder would give)."""
    return image[max(0, top - LINE_MARGIN) : min(image.shape[0], bottom + LINE_MARGIN)]


def to_input(image: np.ndarray) -> np.ndarray:
    """An ink-positive float image (H, W) as the recognizer's (INPUT_HEIGHT, INPUT_WIDTH) input.

    Resized to INPUT_HEIGHT, then contrast-normalised as an OCR front end does:
    the paper level (the median: most of a line is paper) goes to 0 and the ink
    level (the INK_PERCENTILE-th percentile) to 1, so that neither a scan's grey
    paper and faint ink nor a clean image's pure black and white sets what the
    recognizer sees. Padded with paper on the right to INPUT_WIDTH.
    """
    from PIL import Image

    h, w = image.shape
    new_w = min(INPUT_WIDTH, max(1, round(w * INPUT_HEIGHT / h)))
    small = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((new_w, INPUT_HEIGHT), Image.Resampling.BILINEAR))
    paper, ink = np.percentile(small, [50, INK_PERCENTILE])
    out = np.zeros((INPUT_HEIGHT, INPUT_WIDTH), np.float32)
    out[:, :new_w] = np.clip((small - paper) / max(ink - paper, MIN_CONTRAST), 0, 1)
    return out


def encode_texts(texts: list[str], max_len: int) -> np.ndarray:
    labels = np.full((len(texts), max_len), -1, np.int32)
    for k, t in enumerate(texts):
        labels[k, : len(t)] = [int(c) for c in t]
    return labels


def load_dataset(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The exported PNGs as recognizer inputs, ink-positive, and their texts."""
    from PIL import Image

    spec = json.loads((folder / "dataset.json").read_text())["spec"]
    dark_on_light = bool(spec.get("invert")) != bool(spec.get("realistic"))
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    x = np.empty((len(rows), INPUT_HEIGHT, INPUT_WIDTH), np.float32)
    for k, row in enumerate(rows):
        with Image.open(folder / row["file"]) as img:
            image = np.asarray(img.convert("L"), np.float32) / 255.0
        boxes = np.array(row["ink_boxes"])
        image = crop_rows(image, int(boxes[:, 1].min()), int((boxes[:, 1] + boxes[:, 3]).max()))
        x[k] = to_input(1.0 - image if dark_on_light else image)
    return x, [row["text"] for row in rows]


# ----------------------------------------------------------------------------- the CRNN


def build_model(seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((INPUT_HEIGHT, INPUT_WIDTH, 1))
    h = inputs
    # Width is pooled once: 80 columns for 160 pixels, so that even touching digits get several CTC steps each.
    for filters, pool in ((16, (2, 2)), (32, (2, 1)), (48, (2, 1)), (64, None)):
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        # momentum 0.9: the inference statistics settle within a short CPU run (0.99 needs thousands of steps)
        h = layers.BatchNormalization(momentum=0.9)(h)
        h = layers.Activation("relu")(h)
        if pool:
            h = layers.MaxPooling2D(pool)(h)
    # (2, 80, 64) -> a sequence of 80 columns of 128 features
    h = layers.Permute((2, 1, 3))(h)
    h = layers.Reshape((INPUT_WIDTH // 2, -1))(h)
    h = layers.Conv1D(128, 5, padding="same", activation="relu")(h)
    h = layers.Dropout(0.2, seed=seed)(h)
    h = layers.Conv1D(128, 3, padding="same", activation="relu")(h)
    logits = layers.Dense(BLANK + 1)(h)
    return keras.Model(inputs, logits)


def ctc_loss(y_true, y_pred):
    from keras import ops

    y_true = ops.cast(y_true, "int32")
    target_length = ops.sum(ops.cast(y_true >= 0, "int32"), axis=1)
    target = ops.where(y_true >= 0, y_true, 0)
    batch, steps = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    output_length = ops.full((batch,), steps, dtype="int32")
    return ops.ctc_loss(target, y_pred, target_length, output_length, mask_index=BLANK)


def greedy_decode(logits: np.ndarray) -> list[str]:
    """Best path: the most likely class per column, repeats merged, blanks dropped."""
    best = logits.argmax(axis=-1)
    texts = []
    for row in best:
        keep = row[np.r_[True, row[1:] != row[:-1]]]
        texts.append("".join(str(c) for c in keep if c != BLANK))
    return texts


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def score(model, x: np.ndarray, texts: list[str]) -> tuple[float, float]:
    """(sequence accuracy, character error rate)."""
    read = greedy_decode(model.predict(x[..., None], batch_size=256, verbose=0))
    exact = np.mean([r == t for r, t in zip(read, texts)])
    cer = sum(edit_distance(r, t) for r, t in zip(read, texts)) / sum(len(t) for t in texts)
    return float(exact), float(cer)


def train(x: np.ndarray, texts: list[str], epochs: int, seed: int):
    import keras

    model = build_model(seed)
    steps = epochs * int(np.ceil(len(x) / BATCH))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    y = encode_texts(texts, max(len(t) for t in texts))
    model.fit(x[..., None], y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    return model


def main(argv=None) -> int:
    global INPUT_HEIGHT, INPUT_WIDTH
    parser = argparse.ArgumentParser(description="OCR usefulness of digitgenerator datasets")
    parser.add_argument("--train", type=int, default=20_000, help="training images per configuration")
    parser.add_argument("--test", type=int, default=1_000, help="real test numbers per set")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="only these rows (repeatable)")
    parser.add_argument("--keep", type=Path, default=None, help="write the training sets here instead of a temporary folder")
    parser.add_argument("--input-height", type=int, default=INPUT_HEIGHT, help="the recognizer's input height (width: 10x)")
    args = parser.parse_args(argv)
    INPUT_HEIGHT, INPUT_WIDTH = args.input_height, 10 * args.input_height
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        print(f"ocr.py: the MNIST test set is not in {SHARED_MNIST}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    images, labels = read_images_and_labels(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    tests = {}
    for name, touching, seed in (("separated", False, 1), ("touching", True, 2)):
        numbers, texts = real_numbers(images, labels, args.test, touching, seed)
        tests[name] = (np.stack([to_input(n) for n in numbers]), texts)

    rows = []
    work = args.keep or Path(tempfile.mkdtemp(prefix="digitgenerator-ocr-"))
    for name in args.config or list(CONFIGS):
        folder = work / name.replace(" ", "").replace("+", "-")
        cmd = [sys.executable, "-c", "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main())", "--count", str(args.train), "--out", str(folder),
               "--seed", str(args.seed), "--workers", "2", "--no-progress", *CONFIGS[name]]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        made = time.perf_counter() - start
        x, texts = load_dataset(folder)
        start = time.perf_counter()
        model = train(x, texts, args.epochs, args.seed)
        trained = time.perf_counter() - start
        result = {test: score(model, *data) for test, data in tests.items()}
        rows.append((name, CONFIGS[name], result, made, trained))
        print(f"{name}: {result} (data {made:.0f} s, training {trained:.0f} s)", file=sys.stderr, flush=True)

    print(f"\nCRNN + CTC trained on {args.train:,} images per row ({args.epochs} epochs, seed {args.seed}); "
          f"tested on {args.test:,} real numbers of {TEST_LENGTHS[0]}-{TEST_LENGTHS[1]} MNIST test digits per set\n")
    print("| training data (`digitgenerator-dataset` flags) | separated: read exactly | separated: CER | touching: read exactly | touching: CER |")
    print("|---|---|---|---|---|")
    for name, flags, result, _, _ in rows:
        sep, tou = result["separated"], result["touching"]
        label = f"{name} (`{' '.join(flags)}`)" if flags else f"{name} (no flags)"
        print(f"| {label} | {sep[0]:.1%} | {sep[1]:.2%} | {tou[0]:.1%} | {tou[1]:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
