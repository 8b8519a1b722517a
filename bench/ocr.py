"""What does an OCR model trained on digitgenerator's output read on real handwritten numbers?

For each configuration (a list of `digitgenerator-dataset` flags) this script
1. writes N training images with `digitgenerator-dataset` (the embedded 5,000
   training digits, as a user would, in a temporary folder);
2. trains a small CRNN (convolutions over the image, a 1-D convolution over its
   columns, per-column softmax) with the CTC loss (Graves et al. 2006) on CPU,
   fixed epochs and seed, each batch of one width class (see BUCKET);
   `--filters` and `--convs` set its width and depth;
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
   With `--tta` each test number is also read a row higher and a row lower
   and the three reads' class probabilities are averaged before decoding.
It reports sequence accuracy (the whole number read exactly) and character
error rate (edit distance / digits), then where the errors come from: numbers
read too long or too short, and digits inserted, dropped or substituted (from a
fewest-edits alignment; `--reads FOLDER` writes every read as JSON). Two trainings on the same kind of data
differ by 1-2 points (each seed writes other images; a rerun of one seed on the
same machine reads the same): `--seeds 3` reports each row's mean over three.

    python bench/ocr.py --config realistic --seeds 3     # README's realistic row (about 15 min per training on 2 cores)
    python bench/ocr.py --config default --config "ink-spacing + augmentation"   # its box-layout rows (15-23 min each)
    python bench/ocr.py --train 4000 --epochs 3          # a quick look
    DIGITGENERATOR_MNIST_DATA=/tmp/mnist60k python bench/ocr.py --config realistic   # all 60,000 digits (bench/npm_digits.py)
    DIGITGENERATOR_MNIST_DATA=/tmp/mnist60k python bench/ocr.py --config realistic \
        --filters 24 48 72 96 --convs 1 2 2 2 --tta --seeds 3      # the best recognizer so far (about 35 min a training)
    DIGITGENERATOR_MNIST_DATA=/tmp/mnist60k python bench/ocr.py --config "realistic + sharpen 2" \
        --filters 24 48 72 96 --convs 1 2 2 2 --seeds 3            # the same on the sharpest scans: 97.3% / 92.5%

Needs TensorFlow (pip install ".[train]") and ../shared/mnist/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.checks import arg  # noqa: E402  (the CLI's argparse types: the value, its bounds, one line)
from digitgenerator.idx import read_images_and_labels  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "mnist"
INPUT_HEIGHT = 24  # the recognizer's input: every image is resized to this height (16 read touching digits worse: 68% vs 78%)
MAX_WIDTH = 240  # wider inputs are squeezed to this width
BUCKET = 16  # a batch holds inputs of one width class, padded to a multiple of this: TensorFlow's CPU convolutions
# run about 3x faster on static shapes than on a dynamic width, and padding every input to MAX_WIDTH would triple the work
FILTERS = (16, 32, 48, 64)  # the convolution stages; each but the last halves the height. With all 60,000 MNIST
# digits, 1.5x as many (--filters 24 48 72 96, 1.5x the time) read more (docs/ocr-experiments.md)
MAX_FILTERS = 512
CONVS = (1, 1, 1, 1)  # 3x3 convolutions per stage. With all 60,000 digits, two in each stage after the first
# (--convs 1 2 2 2, 1.4x the time) read more than 1.5x the filters did, on the seed tried (docs/ocr-experiments.md)
MAX_CONVS = 4
# Bounds of the other options. Inputs of 8 to 64 rows: at least 8 survive the three halvings. At least 3,000 training
# images: the widths then fall in at most 10 * 64 / BUCKET = 40 classes, so one class fills a batch and an epoch has a step.
TRAIN_RANGE, TEST_RANGE, EPOCHS_RANGE, SEEDS_RANGE, INPUT_HEIGHT_RANGE = (3_000, 1_000_000), (1, 100_000), (1, 1_000), (1, 10), (8, 64)
COLUMN_FEATURES = 128  # the 1-D convolutions over the columns
DROPOUT = 0.3  # between the column convolutions
WEIGHT_DECAY = 0.05  # AdamW's decoupled decay (Loshchilov & Hutter 2019); with DROPOUT, +1 / +2 points over 0.2 and none
# on --realistic (90.2% / 82.5% against 89.4% / 80.8%); a 4x larger network at 32 pixels read no better (89.9% / 80.9%)
LEARNING_RATE = 3e-3  # Adam's, cosine-decayed to 5% over the run
EPOCHS = 40  # passes over the training images. On --realistic, means of seeds 0-2, separated / touching:
# 8 epochs 91.2% / 82.4%, 20 epochs 91.4% / 84.7%, 40 epochs 92.3% / 86.3% (docs/ocr-experiments.md)
TTA_SHIFTS = (-1, 0, 1)  # --tta: each test number is also read one row higher and one lower
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
    "realistic + sharpen 2": ["--realistic", "--sharpen", "2"],  # the scanner's sharpest setting (docs/ocr-experiments.md)
    "realistic + augmentation": ["--realistic", "--rotate", "6", "--elastic", "6"],
    # CVAE digits (one hand per number) in the realistic layout: the shipped generator, and
    # 1.4.0's model (KL weight 1), which the shipped folder keeps for denoising.
    "realistic + CVAE": ["--realistic", "--source", "cvae"],
    "realistic + CVAE 1.4.0": ["--realistic", "--source", "cvae", "--model-dir", str(ROOT / "tf_vae_files" / "denoiser")],
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
    """`count` numbers of TEST_LENGTHS real digits: float32 (h, W) images with ink = 1, cut to their ink rows, and their texts."""
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
    """An ink-positive float image (H, W) as the recognizer's (INPUT_HEIGHT, w) input, w <= MAX_WIDTH.

    Resized to INPUT_HEIGHT (squeezed to MAX_WIDTH if wider), then
    contrast-normalised as an OCR front end does: the paper level (the median:
    most of a line is paper) goes to 0 and the ink level (the INK_PERCENTILE-th
    percentile) to 1, so that neither a scan's grey paper and faint ink nor a
    clean image's pure black and white sets what the recognizer sees.
    """
    from PIL import Image

    h, w = image.shape
    new_w = min(MAX_WIDTH, max(1, round(w * INPUT_HEIGHT / h)))
    small = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((new_w, INPUT_HEIGHT), Image.Resampling.BILINEAR))
    paper, ink = np.percentile(small, [50, INK_PERCENTILE])
    return np.clip((small - paper) / max(ink - paper, MIN_CONTRAST), 0, 1).astype(np.float32)


def bucket_width(width):
    """The padded width of a batch holding inputs `width` wide (an int or an array): the next multiple of BUCKET."""
    return -(-width // BUCKET) * BUCKET


def pad_batch(inputs: list[np.ndarray], width: int) -> np.ndarray:
    """Inputs (INPUT_HEIGHT, w_i), w_i <= width, as one (n, INPUT_HEIGHT, width, 1) batch padded with paper on the right."""
    out = np.zeros((len(inputs), INPUT_HEIGHT, width, 1), np.float32)
    for k, x in enumerate(inputs):
        out[k, :, : x.shape[1], 0] = x
    return out


def encode_texts(texts: list[str], max_len: int) -> np.ndarray:
    labels = np.full((len(texts), max_len), -1, np.int32)
    for k, t in enumerate(texts):
        labels[k, : len(t)] = [int(c) for c in t]
    return labels


def load_dataset(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """The exported PNGs as recognizer inputs, ink-positive, and their texts."""
    from PIL import Image

    spec = json.loads((folder / "dataset.json").read_text())["spec"]
    dark_on_light = bool(spec.get("invert")) != bool(spec.get("realistic"))
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    x = []
    for row in rows:
        with Image.open(folder / row["file"]) as img:
            image = np.asarray(img.convert("L"), np.float32) / 255.0
        boxes = np.array(row["ink_boxes"])
        image = crop_rows(image, int(boxes[:, 1].min()), int((boxes[:, 1] + boxes[:, 3]).max()))
        x.append(to_input(1.0 - image if dark_on_light else image))
    return x, [row["text"] for row in rows]


# ----------------------------------------------------------------------------- the CRNN


def build_model(seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((INPUT_HEIGHT, None, 1))  # any width: each batch is one width class
    h = inputs
    # Width is pooled once (a column per 2 pixels), so that even touching digits get several CTC steps each.
    pools = [(2, 2)] + [(2, 1)] * (len(FILTERS) - 2) + [None]
    for stage, (filters, convs, pool) in enumerate(zip(FILTERS, CONVS, pools)):
        for k in range(convs):
            h = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"stage{stage}_conv{k}")(h)
            # momentum 0.9: the inference statistics settle within a short CPU run (0.99 needs thousands of steps)
            h = layers.BatchNormalization(momentum=0.9)(h)
            h = layers.Activation("relu")(h)
        if pool:
            h = layers.MaxPooling2D(pool)(h)
    # (rows, columns, channels) -> a sequence of columns, each rows * channels features
    h = layers.Permute((2, 1, 3))(h)
    h = layers.Reshape((-1, (INPUT_HEIGHT >> (len(FILTERS) - 1)) * FILTERS[-1]))(h)
    h = layers.Conv1D(COLUMN_FEATURES, 5, padding="same", activation="relu")(h)
    h = layers.Dropout(DROPOUT, seed=seed)(h)
    h = layers.Conv1D(COLUMN_FEATURES, 3, padding="same", activation="relu")(h)
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
    """The fewest single-digit edits (insertions, deletions, substitutions) that turn a into b."""
    return len(edits(a, b))


def shift_rows(batch: np.ndarray, rows: int) -> np.ndarray:
    """A batch (n, INPUT_HEIGHT, w, 1) moved `rows` down (up if negative), paper (0) filling the rows it leaves."""
    out = np.zeros_like(batch)
    if rows >= 0:
        out[:, rows:] = batch[:, : batch.shape[1] - rows]
    else:
        out[:, :rows] = batch[:, -rows:]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def read_numbers(model, inputs: list[np.ndarray], shifts=(0,)) -> list[str]:
    """What the model reads on inputs (INPUT_HEIGHT, w_i), each batch one width class.

    With several `shifts`, each batch is read moved by each of them (rows down)
    and the per-column class probabilities are averaged before decoding
    (test-time augmentation): a vertical shift keeps every column where it was,
    so the CTC alignments of the reads agree and their average stays peaked.
    """
    classes = bucket_width(np.array([x.shape[1] for x in inputs]))
    read = [""] * len(inputs)
    for width in np.unique(classes):
        group = np.flatnonzero(classes == width)
        batch = pad_batch([inputs[i] for i in group], int(width))
        probs = np.mean([softmax(model.predict(shift_rows(batch, d), batch_size=256, verbose=0)) for d in shifts], axis=0)
        for i, text in zip(group, greedy_decode(probs)):
            read[i] = text
    return read


def accuracy(reads: list[str], texts: list[str]) -> tuple[float, float]:
    """(sequence accuracy, character error rate): numbers read exactly, and edit distance / digits."""
    exact = np.mean([r == t for r, t in zip(reads, texts)])
    cer = sum(edit_distance(r, t) for r, t in zip(reads, texts)) / sum(len(t) for t in texts)
    return float(exact), float(cer)


def edits(text: str, read: str) -> list[tuple[str, str, str]]:
    """One fewest-edits alignment of `read` to `text`: ("sub", true, read), ("ins", "", read) or ("del", true, "")."""
    n, m = len(text), len(read)
    # Wagner-Fischer: cost[i][j] = the fewest edits that turn text[:i] into read[:j]
    cost = [list(range(m + 1))] + [[i] + [0] * m for i in range(1, n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (text[i - 1] != read[j - 1]))
    out, i, j = [], n, m
    while i or j:  # walk back, preferring a match or substitution, then a dropped, then an inserted digit
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (text[i - 1] != read[j - 1]):
            if text[i - 1] != read[j - 1]:
                out.append(("sub", text[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            out.append(("del", text[i - 1], ""))
            i -= 1
        else:
            out.append(("ins", "", read[j - 1]))
            j -= 1
    return out[::-1]


def error_kinds(texts: list[str], reads: list[str]) -> dict:
    """Where a set's errors come from: numbers read too long or short, and digits inserted, dropped, substituted."""
    kinds = {"too long": 0, "too short": 0, "inserted": 0, "inserted 1s": 0, "dropped": 0, "dropped 1s": 0, "substituted": 0}
    for text, read in zip(texts, reads):
        kinds["too long"] += len(read) > len(text)
        kinds["too short"] += len(read) < len(text)
        for kind, true, got in edits(text, read):
            if kind == "sub":
                kinds["substituted"] += 1
            else:
                name = "inserted" if kind == "ins" else "dropped"
                kinds[name] += 1
                kinds[name + " 1s"] += (got or true) == "1"
    kinds["digits"] = sum(len(t) for t in texts)
    return kinds


def epoch_batches(widths: np.ndarray, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches: (padded width, indices), BATCH inputs of one width class each, in random order.

    A width class's last partial batch waits for the next epoch (a new shuffle
    leaves out other inputs), so that every step has the same static shape.
    """
    classes = bucket_width(widths)
    batches = []
    for width in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == width))
        batches += [(int(width), members[i : i + BATCH]) for i in range(0, len(members) - BATCH + 1, BATCH)]
    return [batches[k] for k in rng.permutation(len(batches))]


def train(inputs: list[np.ndarray], texts: list[str], epochs: int, seed: int):
    """The CRNN trained on inputs (INPUT_HEIGHT, w_i) that show `texts`: AdamW, cosine decay, `epochs` passes."""
    import keras
    import tensorflow as tf

    # Grappler's MLIR pass rejects the CTC loss's while loop once per traced width and prints pages of
    # "error:" lines it then ignores; without the graph optimiser an epoch takes the same time (measured).
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    tf.get_logger().setLevel("ERROR")  # its retracing warnings: one trace per width class is the design
    model = build_model(seed)
    rng = np.random.default_rng(seed)
    widths = np.array([x.shape[1] for x in inputs])
    y = encode_texts(texts, max(len(t) for t in texts))
    steps = epochs * len(epoch_batches(widths, np.random.default_rng(seed)))
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=0.05)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=WEIGHT_DECAY)

    @tf.function  # traced once per width class (static shapes: see BUCKET)
    def step(x, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(ctc_loss(labels, model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(epochs):
        for width, batch in epoch_batches(widths, rng):
            step(tf.constant(pad_batch([inputs[i] for i in batch], width)), tf.constant(y[batch]))
    return model


def run_row(name: str, work: Path, tests: dict, args, seed: int) -> dict:
    """Write the training set of configuration `name` with `seed` under `work`, train on it (same seed), read the tests."""
    folder = work / f"{name.replace(' ', '').replace('+', '-')}-seed{seed}"
    cmd = [sys.executable, "-c", "import sys; from digitgenerator.cli import dataset_main; sys.exit(dataset_main())", "--count", str(args.train), "--out", str(folder),
           "--seed", str(seed), "--workers", "2", "--no-progress", *CONFIGS[name]]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    made = time.perf_counter() - start
    x, texts = load_dataset(folder)
    if args.keep is None:
        shutil.rmtree(folder)  # the inputs are in memory; 20,000 PNGs need not outlive the row
    start = time.perf_counter()
    model = train(x, texts, args.epochs, seed)
    trained = time.perf_counter() - start
    result = {}
    for test, (inputs, texts) in tests.items():
        reads = read_numbers(model, inputs, TTA_SHIFTS if args.tta else (0,))
        result[test] = accuracy(reads, texts)
        result[test + " errors"] = error_kinds(texts, reads)
        if args.reads is not None:
            path = args.reads / f"{folder.name}-{test}.json"
            path.write_text(json.dumps([[t, r] for t, r in zip(texts, reads)]), encoding="utf-8")
    said = {test: result[test] for test in tests}
    print(f"{name}, seed {seed}: {said} (data {made:.0f} s, training {trained:.0f} s)", file=sys.stderr, flush=True)
    return result


def table(rows: list[tuple[str, list[dict]]]) -> list[str]:
    """The markdown table: each row's mean over its seeds, and each seed's exact reads when there are several."""
    several = max(len(runs) for _, runs in rows) > 1
    head = "| training data (`digitgenerator-dataset` flags) | separated: read exactly | separated: CER | touching: read exactly | touching: CER |"
    lines = [head + (" per seed: separated / touching |" if several else ""), "|---" * (5 + several) + "|"]
    for name, runs in rows:
        flags = CONFIGS[name]
        label = f"{name} (`{' '.join(flags)}`)" if flags else f"{name} (no flags)"
        mean = {test: np.mean([run[test] for run in runs], axis=0) for test in ("separated", "touching")}
        line = f"| {label} | {mean['separated'][0]:.1%} | {mean['separated'][1]:.2%} | {mean['touching'][0]:.1%} | {mean['touching'][1]:.2%} |"
        if several:
            line += " " + ", ".join(f"{run['separated'][0]:.1%} / {run['touching'][0]:.1%}" for run in runs) + " |"
        lines.append(line)
    return lines


def errors_table(rows: list[tuple[str, list[dict]]]) -> list[str]:
    """Where each row's errors come from, per training (the mean over its seeds): numbers read too long or too
    short, digits inserted (of them 1s), dropped (of them 1s), and substituted (% of the set's digits)."""
    lines = ["| training data | test set | numbers too long | numbers too short | digits inserted (1s) | digits dropped (1s) | digits substituted |",
             "|---" * 7 + "|"]
    for name, runs in rows:
        for test in ("separated", "touching"):
            mean = {k: np.mean([run[test + " errors"][k] for run in runs]) for k in runs[0][test + " errors"]}
            lines.append(f"| {name} | {test} | {mean['too long']:.0f} | {mean['too short']:.0f} | {mean['inserted']:.0f} ({mean['inserted 1s']:.0f}) "
                         f"| {mean['dropped']:.0f} ({mean['dropped 1s']:.0f}) | {mean['substituted']:.0f} ({mean['substituted'] / mean['digits']:.2%}) |")
    return lines


def main(argv=None) -> int:
    global INPUT_HEIGHT, MAX_WIDTH, FILTERS, CONVS
    parser = argparse.ArgumentParser(description="OCR usefulness of digitgenerator datasets")
    parser.add_argument("--train", type=arg(int, "--train", *TRAIN_RANGE), default=20_000, help="training images per configuration")
    parser.add_argument("--test", type=arg(int, "--test", *TEST_RANGE), default=3_000, help="real test numbers per set (3,000: a read rate near 90%% is known to about +/- 0.5 points)")
    parser.add_argument("--epochs", type=arg(int, "--epochs", *EPOCHS_RANGE), default=EPOCHS)
    # seeds below 2**31, so that SEED + SEEDS stays a seed NumPy takes (below 2**32)
    parser.add_argument("--seed", type=arg(int, "--seed", 0, 2**31 - 1), default=0, help="the first seed of training images and recognizer")
    parser.add_argument("--seeds", type=arg(int, "--seeds", *SEEDS_RANGE), default=1, help="train each row this many times (seeds SEED, SEED + 1, ...) and report the mean")
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="only these rows (repeatable)")
    parser.add_argument("--keep", type=Path, default=None, help="write the training sets here instead of a temporary folder")
    parser.add_argument("--reads", type=Path, default=None, help="write each training's reads here, as JSON [[true, read], ...] per test set")
    parser.add_argument("--input-height", type=arg(int, "--input-height", *INPUT_HEIGHT_RANGE), default=INPUT_HEIGHT, help="the recognizer's input height (widest input: 10x)")
    parser.add_argument("--filters", type=arg(int, "--filters", 1, MAX_FILTERS), nargs=len(FILTERS), default=FILTERS, metavar="N",
                        help=f"the recognizer's convolution filters per stage (default {' '.join(map(str, FILTERS))})")
    parser.add_argument("--convs", type=arg(int, "--convs", 1, MAX_CONVS), nargs=len(CONVS), default=CONVS, metavar="N",
                        help=f"the recognizer's 3x3 convolutions per stage (default {' '.join(map(str, CONVS))})")
    parser.add_argument("--tta", action="store_true",
                        help=f"read each test number shifted by {', '.join(map(str, TTA_SHIFTS))} rows and average the class probabilities")
    args = parser.parse_args(argv)
    INPUT_HEIGHT, MAX_WIDTH, FILTERS, CONVS = args.input_height, 10 * args.input_height, tuple(args.filters), tuple(args.convs)
    if args.reads is not None:
        try:  # now, not after the first training
            args.reads.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"ocr.py: --reads {args.reads}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        print(f"ocr.py: the MNIST test set is not in {SHARED_MNIST}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    images, labels = read_images_and_labels(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    tests = {}
    for name, touching, seed in (("separated", False, 1), ("touching", True, 2)):
        numbers, texts = real_numbers(images, labels, args.test, touching, seed)
        tests[name] = ([to_input(n) for n in numbers], texts)

    rows = []
    seeds = range(args.seed, args.seed + args.seeds)
    with tempfile.TemporaryDirectory(prefix="digitgenerator-ocr-") as scratch:
        work = args.keep or Path(scratch)
        for name in args.config or list(CONFIGS):
            rows.append((name, [run_row(name, work, tests, args, seed) for seed in seeds]))

    recognizer = f"{'-'.join(map(str, FILTERS))} filters, {'-'.join(map(str, CONVS))} convolutions per stage"
    if args.tta:
        recognizer += f", each test number read at row shifts {', '.join(map(str, TTA_SHIFTS))}"
    print(f"\nCRNN + CTC ({recognizer}) trained on {args.train:,} images per row ({args.epochs} epochs, seed{'s' if args.seeds > 1 else ''} "
          f"{', '.join(map(str, seeds))}{': the mean' if args.seeds > 1 else ''}); "
          f"tested on {args.test:,} real numbers of {TEST_LENGTHS[0]}-{TEST_LENGTHS[1]} MNIST test digits per set\n")
    print("\n".join(table(rows)))
    print(f"\nWhere the errors come from, per training (of {args.test:,} numbers per set):\n")
    print("\n".join(errors_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
