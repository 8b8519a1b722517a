"""Every option changes the output as documented: what a user sees in the PNG and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_random_model
from digitgenerator import Digitgenerator
from digitgenerator.augment import Augment
from digitgenerator.cli import dataset_main, main
from digitgenerator.data import load_mnist, sample_source
from digitgenerator.dataset import DatasetSpec, batches
from digitgenerator.idx import read_images_and_labels, write_idx
from digitgenerator.png import read_png


def png(tmp_path, *args, name="x.png") -> np.ndarray:
    assert main([*args, "--outfile", str(tmp_path / name)]) == 0
    return read_png(tmp_path / name)


def rows(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def centroids():
    """Mean image of each digit in the embedded sample: a nearest-centroid reader (about 80% on MNIST)."""
    images, labels = read_images_and_labels(sample_source().images, sample_source().labels)
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    return np.stack([x[labels == d].mean(0) for d in range(10)])


def read_digits(crops: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    x = crops.reshape(len(crops), -1)
    return np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)


# ----------------------------------------------------------------------------- generate_png


def test_every_digit_can_be_asked_for_and_random_draws_every_digit(tmp_path, capsys, centroids):
    images, labels = read_images_and_labels(sample_source().images, sample_source().labels)
    for digit in range(10):
        image = png(tmp_path, "--digits", str(digit), "--seed", str(digit))
        matches = np.flatnonzero((np.rint(image * 255).astype(np.uint8) == images).all(axis=(1, 2)))
        assert matches.size and set(labels[matches]) == {digit}  # pixel for pixel a real digit of that label
    capsys.readouterr()
    assert main(["--random", "300", "--seed", "2", "--spacing", "0", "0", "--outfile", str(tmp_path / "r.png")]) == 0
    text = capsys.readouterr().out.split(": ")[1].split(" ")[0]
    assert len(text) == 300 and set(text) == set("0123456789")
    counts = np.bincount([int(c) for c in text], minlength=10)
    assert counts.min() > 10  # uniform: 30 expected each
    image = read_png(tmp_path / "r.png")
    crops = np.stack([image[:, 28 * k : 28 * k + 28] for k in range(300)])
    assert np.mean(read_digits(crops, centroids) == np.array([int(c) for c in text])) > 0.7


def test_stretch_meets_a_width_the_spacing_cannot(tmp_path, capsys):
    assert main(["--digits", "1", "2", "3", "--width", "60", "--outfile", str(tmp_path / "n.png")]) == 2
    assert "--stretch" in capsys.readouterr().err
    assert png(tmp_path, "--digits", "1", "2", "3", "--width", "60", "--stretch").shape == (28, 60)
    assert png(tmp_path, "--digits", "1", "2", "3", "--width", "300", "--stretch", "--seed", "1").shape == (28, 300)
    padded = png(tmp_path, "--digits", "1", "2", "3", "--width", "300", "--seed", "1", name="p.png")
    stretched = read_png(tmp_path / "x.png")
    assert padded[:, :50].max() == 0 and stretched[:, :50].max() > 0  # pad keeps margins, stretch fills them


def test_ink_spacing_measures_between_strokes(tmp_path):
    boxes = png(tmp_path, "--digits", "1", "1", "1", "--seed", "4", "--spacing", "2", "2", name="b.png")
    ink = png(tmp_path, "--digits", "1", "1", "1", "--seed", "4", "--spacing", "2", "2", "--ink-spacing", name="i.png")
    assert boxes.shape[1] == 3 * 28 + 4 and ink.shape[1] < boxes.shape[1] - 20  # a 1 has ~20 px of blank box
    gen = Digitgenerator(seed=4)
    glyphs = gen.real_digits([1, 1, 1], gen.rng)
    widths = [np.ptp(np.flatnonzero(g.max(axis=0) > 0.1)) + 1 for g in glyphs]
    assert ink.shape[1] == sum(widths) + 2 * 2  # the digits' ink and exactly 2 px between each


def test_denoise_shows_the_cvae_cleaning_noisy_digits(tmp_path):
    clean = png(tmp_path, "--digits", "3", "1", "4", "--seed", "5", name="c.png")
    denoised = png(tmp_path, "--digits", "3", "1", "4", "--seed", "5", "--denoise", "0.5", name="d.png")
    gen = Digitgenerator(seed=5)
    expected = gen.denoise([3, 1, 4], (4, 4), None, 0.5)
    np.testing.assert_allclose(denoised, expected, atol=0.5 / 255 + 1e-6)
    assert not np.array_equal(clean, denoised)
    np.testing.assert_allclose(gen.latest_clean, clean, atol=0.5 / 255 + 1e-6)  # the same real digits, before the noise


def test_same_style_and_temperature_reach_the_cvae(tmp_path, random_model):
    common = ["--digits", "2", "0", "2", "6", "--cvae", "1", "--seed", "7", "--model-dir", str(random_model)]
    independent = png(tmp_path, *common, name="i.png")
    shared = png(tmp_path, *common, "--same-style", name="s.png")
    cold = png(tmp_path, *common, "--temperature", "0", name="t.png")
    gen = Digitgenerator(seed=7, model_dir=random_model)
    np.testing.assert_allclose(shared, gen.sample_from_vae([2, 0, 2, 6], style="shared"), atol=0.5 / 255 + 1e-6)
    gen = Digitgenerator(seed=7, model_dir=random_model)
    np.testing.assert_allclose(cold, gen.sample_from_vae([2, 0, 2, 6], temperature=0.0), atol=0.5 / 255 + 1e-6)
    assert not np.array_equal(independent, shared) and not np.array_equal(independent, cold)
    # the two 2s: one latent draws them the same; independent latents do not
    assert np.abs(shared[:, :28] - shared[:, 64:92]).max() < 1e-6
    assert np.abs(independent[:, :28] - independent[:, 64:92]).max() > 0.05


def test_an_explicit_mnist_folder_wins_over_the_environment(tmp_path, monkeypatch, mnist_folder):
    other = tmp_path / "other"
    other.mkdir()
    images, labels = np.zeros((10, 28, 28), np.uint8), np.arange(10, dtype=np.uint8)
    write_idx(other / "train-images-idx3-ubyte", images)  # blank digits
    write_idx(other / "train-labels-idx1-ubyte", labels)
    monkeypatch.setenv("DIGITGENERATOR_MNIST_DATA", str(other))
    explicit = png(tmp_path, "--digits", "5", "--mnist-folder", str(mnist_folder), name="e.png")
    from_env = png(tmp_path, "--digits", "5", name="v.png")
    assert explicit.max() > 0.5 and from_env.max() == 0


def test_a_replaced_data_file_is_not_served_from_the_cache(tmp_path, mnist_folder):
    import os

    images, labels = load_mnist(mnist_folder, tmp_path / "cache")[:2]
    path = mnist_folder / "train-labels-idx1-ubyte"
    stat = path.stat()
    new_labels = (np.asarray(labels, np.uint8) + 1) % 10
    write_idx(path, new_labels)  # the same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_mnist(mnist_folder, tmp_path / "cache")[1].tolist() == new_labels.tolist()


def test_shared_style_is_the_precision_weighted_mean_of_the_labels(tmp_path):
    folder = write_random_model(tmp_path / "m", seed=3)
    from digitgenerator.model import Vae

    vae = Vae(folder)
    w = vae.weights
    rng = np.random.default_rng(0)
    # Give two labels different covariances, so that the precision weighting matters.
    chol = w["prior/label_chol"].copy()
    chol[1] *= 0.5
    chol[7] *= 2.0
    w["prior/label_chol"] = chol
    labels = [1, 7, 7]
    distinct = [1, 7]  # documented: the mean over the distinct labels of the number
    precisions = [np.linalg.inv(chol[d].astype(np.float64) @ chol[d].T) for d in distinct]
    p = np.mean(precisions, axis=0)
    mean = np.linalg.solve(p, np.mean([pr @ w["prior/label_mean"][d] for pr, d in zip(precisions, distinct)], axis=0))
    z = vae.sample_style(rng, temperature=0.0, labels=labels)
    np.testing.assert_allclose(z, mean, atol=1e-4)
    assert np.abs(mean - w["prior/label_mean"][labels].mean(0)).max() > 1e-2  # a plain average would differ
    # Its spread: the covariance P^-1, through its Cholesky factor and the same truncated draw.
    eps = vae.truncated_normal(1, np.random.default_rng(5))[0]
    z = vae.sample_style(np.random.default_rng(5), temperature=1.0, labels=labels)
    np.testing.assert_allclose(z, mean + np.linalg.cholesky(np.linalg.inv(p)) @ eps, atol=1e-4)


# ----------------------------------------------------------------------------- datasets


def test_dataset_spacing_reaches_the_manifest(tmp_path):
    assert dataset_main(["--count", "20", "--out", str(tmp_path / "d"), "--spacing", "7", "9", "--length", "3", "3",
                         "--no-progress"]) == 0
    for row in rows(tmp_path / "d"):
        xs = [x for x, _ in row["boxes"]]
        assert all(7 <= b - a - 28 <= 9 for a, b in zip(xs, xs[1:]))


def test_augmentation_changes_the_images_and_rotate_is_not_shear(tmp_path):
    # Horizontal bars: a shear keeps them one row tall, a rotation tilts them over many rows.
    folder = tmp_path / "bars"
    folder.mkdir()
    images = np.zeros((10, 28, 28), np.uint8)
    images[:, 13:15, 4:24] = 255
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    heights = {}
    for flag in ("--rotate", "--shear"):
        out = tmp_path / flag.strip("-")
        assert dataset_main(["--count", "30", "--out", str(out), flag, "40", "--length", "1", "1", "--seed", "3",
                             "--mnist-folder", str(folder), "--no-progress"]) == 0
        heights[flag] = np.mean([row["ink_boxes"][0][3] for row in rows(out)])
    assert heights["--shear"] <= 4 and heights["--rotate"] > 6


def test_augmentation_is_applied_in_the_dataset(tmp_path):
    plain, bent = tmp_path / "plain", tmp_path / "bent"
    assert dataset_main(["--count", "10", "--out", str(plain), "--seed", "1", "--no-progress"]) == 0
    assert dataset_main(["--count", "10", "--out", str(bent), "--seed", "1", "--elastic", "8", "--no-progress"]) == 0
    for a, b in zip(rows(plain), rows(bent)):
        assert a["text"] == b["text"]
        assert not np.array_equal(read_png(plain / a["file"]), read_png(bent / b["file"]))


def test_two_seeds_make_different_datasets(tmp_path):
    one, two = tmp_path / "s1", tmp_path / "s2"
    assert dataset_main(["--count", "50", "--out", str(one), "--seed", "1", "--no-progress"]) == 0
    assert dataset_main(["--count", "50", "--out", str(two), "--seed", "2", "--no-progress"]) == 0
    first = {(one / r["file"]).read_bytes() for r in rows(one)}
    second = {(two / r["file"]).read_bytes() for r in rows(two)}
    assert not first & second


def test_cvae_dataset_digits_match_the_manifest_text(tmp_path, centroids):
    out = tmp_path / "cvae"
    assert dataset_main(["--count", "40", "--out", str(out), "--source", "cvae", "--length", "4", "4",
                         "--seed", "2", "--no-progress"]) == 0
    crops, truth = [], []
    for row in rows(out):
        image = read_png(out / row["file"])
        for (x, w), digit in zip(row["boxes"], row["text"]):
            crops.append(image[:, x : x + w])
            truth.append(int(digit))
    assert np.mean(read_digits(np.stack(crops), centroids) == np.array(truth)) > 0.7


def test_batches_follow_invert(tmp_path):
    gen = Digitgenerator()
    plain = next(batches(gen, DatasetSpec(count=6, length=(2, 2), seed=3), batch_size=6))[0]
    inverted = next(batches(gen, DatasetSpec(count=6, length=(2, 2), seed=3, invert=True), batch_size=6))[0]
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)


def test_augment_rotate_and_shear_act_as_named():
    bar = np.zeros((28, 28), np.float32)
    bar[13:15, 4:24] = 1
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    sheared = Augment(shear=40).apply(bar, rng())
    rotated = Augment(rotate=40).apply(bar, rng())
    rows_of = lambda im: np.flatnonzero(im.max(axis=1) > 0.5).size  # noqa: E731
    assert rows_of(sheared) <= 3 < rows_of(rotated)


def test_augment_draws_both_directions_and_whole_pixel_strokes():
    """rotate and thickness are uniform in [-x, x]: digits lean both ways and get thinner as well as
    thicker; thickness 1 changes a stroke by exactly one pixel (a 2 x 2 grey dilation or erosion)."""
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:14] = 1  # a vertical stroke 2 px wide
    for tilt in (Augment(rotate=20), Augment(shear=20)):
        leans = []
        for seed in range(40):
            tilted = tilt.apply(bar, np.random.default_rng(seed))
            rows = np.flatnonzero(tilted.max(axis=1) > 0.5)
            top, bottom = (np.flatnonzero(tilted[r] > 0.5).mean() for r in (rows[0], rows[-1]))
            leans.append(np.sign(top - bottom))
        assert {-1.0, 1.0} <= set(leans), tilt
    sizes = set()
    for seed in range(40):
        changed = Augment(thickness=1).apply(bar, np.random.default_rng(seed)) > 0.5
        sizes.add((int(changed.any(axis=0).sum()), int(changed.any(axis=1).sum())))
    assert sizes == {(1, 19), (2, 20), (3, 21)}  # eroded, left alone, dilated: one pixel each way


@pytest.mark.parametrize("kwargs, ok", [
    ({"shear": 60}, True), ({"shear": 60.5}, False), ({"elastic": 100}, True), ({"elastic": 100.5}, False),
    ({"thickness": 3}, True), ({"thickness": 4}, False), ({"rotate": 90}, True), ({"rotate": 90.5}, False),
    ({"elastic": 5, "elastic_sigma": 0}, False), ({"elastic": 5, "elastic_sigma": 1}, True),
    ({"elastic": 0, "elastic_sigma": 0}, True),
])
def test_augment_bounds(kwargs, ok):
    if ok:
        Augment(**kwargs)
    else:
        with pytest.raises(ValueError):
            Augment(**kwargs)


def test_denoise_noise_replaces_each_pixel_by_black_or_white_with_probability_p():
    from digitgenerator.noise import corrupt

    grey = np.full((200, 28, 28), 0.5, np.float32)
    for p in (0.0, 0.3, 1.0):
        noisy = corrupt(grey, p, np.random.default_rng(1))
        replaced = noisy != 0.5
        assert set(np.unique(noisy[replaced]).tolist()) <= {0.0, 1.0}
        assert abs(replaced.mean() - p) < 0.01
        if p:
            assert abs(noisy[replaced].mean() - 0.5) < 0.01  # salt and pepper in equal parts
    per_image = corrupt(grey[:2], np.array([0.0, 1.0]), np.random.default_rng(2))
    assert (per_image[0] == 0.5).all() and not (per_image[1] == 0.5).any()


def test_default_lengths_are_one_to_eight_digits(tmp_path):
    assert dataset_main(["--count", "300", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    lengths = {len(r["text"]) for r in rows(tmp_path / "d")}
    assert lengths == set(range(1, 9))
    gen = Digitgenerator()
    labels = np.concatenate([b[1] for b in batches(gen, DatasetSpec(count=300), batch_size=100)])
    assert {int((row >= 0).sum()) for row in labels} == set(range(1, 9))


def test_worker_counts_past_the_limit_are_refused(tmp_path):
    from digitgenerator.dataset import export

    with pytest.raises(ValueError, match="workers must be between 1 and 256"):
        export(DatasetSpec(count=2), tmp_path / "w", workers=257, progress=False)
    assert not (tmp_path / "w").exists()


def test_progress_is_a_line_per_tenth_when_not_a_terminal(tmp_path, capsys):
    from digitgenerator.dataset import export

    spec = DatasetSpec(count=1280, length=(1, 1))  # 20 chunks of 64: a line every other chunk
    export(spec, tmp_path / "p", progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    # the first chunk, then one line each time a tenth is passed
    assert [line.split("] ")[1].split(" images")[0] for line in lines] == ["64/1280"] + [f"{128 * k}/1280" for k in range(1, 11)]
    assert lines[-1].startswith("[" + "#" * 30 + "]") and lines[0].startswith("[" + "#" + "." * 29 + "]")
    # a finished job re-run starts, and stays, at 640/640: nothing to report
    export(spec, tmp_path / "p", progress=True)
    assert capsys.readouterr().err == ""


def test_a_realistic_cvae_dataset_writes_each_number_in_one_hand(tmp_path, random_model):
    out = tmp_path / "rc"
    assert dataset_main(["--count", "6", "--out", str(out), "--source", "cvae", "--realistic", "--no-paper", "--length", "3", "3",
                         "--model-dir", str(random_model), "--no-progress"]) == 0
    gen = Digitgenerator(model_dir=random_model)
    for row in rows(out):
        assert read_png(out / row["file"]).shape == (40, row["width"]) and len(row["ink_boxes"]) == 3
    images, labels = next(batches(gen, DatasetSpec(count=6, length=(3, 3), source="cvae", realistic=True), batch_size=6))
    assert images.shape[:2] == (6, 40) and (labels >= 0).sum(axis=1).tolist() == [3] * 6


def test_reparameterize_and_encode_follow_their_formulas(tmp_path):
    from digitgenerator.model import Vae

    vae = Vae(write_random_model(tmp_path / "m", seed=5))
    mean = np.array([[0.5, -1.0] * 8], np.float32)
    log_var = np.array([[np.log(4.0), 0.0] * 8], np.float32)
    z = vae.reparameterize(mean, log_var, np.random.default_rng(3))
    eps = np.random.default_rng(3).standard_normal(mean.shape, dtype=np.float32)
    np.testing.assert_allclose(z, mean + np.array([[2.0, 1.0] * 8]) * eps, rtol=1e-6)  # sigma = exp(log_var / 2)
    # encode: the log-variance head is its own dense layer, bias included
    w = vae.weights
    x = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    m1, v1 = vae.encode(x, [1, 2, 3])
    w["latent_log_var/bias"] = w["latent_log_var/bias"] + 1.0
    m2, v2 = vae.encode(x, [1, 2, 3])
    np.testing.assert_allclose(v2 - v1, 1.0, atol=1e-5)
    np.testing.assert_allclose(m2, m1, atol=1e-6)
