"""The mixture's label margins: legible digits by default, every training digit's hand on request.

A model from 1.7.0 keeps, beside each mixture component, the label margin of the
training digit it came from (how clearly the model reads that digit as its label).
Sampling draws by default only components above the model's margin; every_digit
(API) / --every-digit (CLI) draws from all of them.
"""

import json

import numpy as np
import pytest

from digitgenerator import Digitgenerator, Vae
from digitgenerator.model import CONFIG_FILE, WEIGHTS_FILE, shipped_model_dir

from conftest import make_digits, write_random_model

THRESHOLD = 5.0
# Label margins (nats) of each label's four components: label 3's are all at or below
# the threshold (5.0 itself is not above it), label 7 has a single clear component.
MARGINS = np.tile([9.0, -2.0, 6.0, 5.0], (10, 1))
MARGINS[3] = [1.0, 5.0, -3.0, 0.0]
MARGINS[7] = [-1.0, -1.0, 40.0, 2.0]


def margin_model(tmp_path, margins=MARGINS, threshold=THRESHOLD):
    """A random model whose mixture (4 components a label, fitted to synthetic digits) has the given margins."""
    from digitgenerator.train import refit_prior

    folder = write_random_model(tmp_path / "margins")
    images, labels = make_digits(4)
    config = refit_prior(folder, images, labels, label_margin=threshold)
    assert config["prior_margins"] is True and config["prior_label_margin"] == threshold
    with np.load(folder / WEIGHTS_FILE) as npz:
        weights = dict(npz)
    weights["prior/mixture_margin"] = np.asarray(margins, np.float32)
    np.savez(folder / WEIGHTS_FILE, **weights)
    return folder


def drawn_components(vae, label, every_digit, n=400):
    """Which of label's components n temperature-0 draws (z = the component's mean exactly) came from, with counts."""
    z = vae.sample_latents(np.full(n, label), np.random.default_rng(label), temperature=0.0, every_digit=every_digit)
    means = vae.weights["prior/mixture_mean"][label]
    hits = [np.flatnonzero(np.all(means == row, axis=1)) for row in z]
    assert all(len(h) == 1 for h in hits)  # every draw is exactly one component
    return np.bincount([h[0] for h in hits], minlength=len(means))


def test_default_draws_only_components_above_the_margin_and_every_digit_draws_them_all(tmp_path):
    vae = Vae(margin_model(tmp_path))
    assert vae.has_margins and vae.label_margin == THRESHOLD
    for label in (0, 5, 9):
        default, every = drawn_components(vae, label, False), drawn_components(vae, label, True)
        assert set(np.flatnonzero(default)) == {0, 2}  # 9 and 6 nats; -2 and exactly 5 are left out
        assert set(np.flatnonzero(every)) == {0, 1, 2, 3}
        assert every.min() >= 60 and default[[0, 2]].min() >= 150  # uniform over the allowed ones (400 draws)
    assert set(np.flatnonzero(drawn_components(vae, 7, False))) == {2}
    # A label with no clear digit at all keeps every one of its own rather than failing.
    assert set(np.flatnonzero(drawn_components(vae, 3, False))) == {0, 1, 2, 3}


def test_the_threshold_is_the_one_in_config_json(tmp_path):
    folder = margin_model(tmp_path)
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "prior_label_margin": 5.5}))
    assert set(np.flatnonzero(drawn_components(Vae(folder), 0, False))) == {0, 2}
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "prior_label_margin": 0.0}))
    assert set(np.flatnonzero(drawn_components(Vae(folder), 0, False))) == {0, 2, 3}
    assert set(np.flatnonzero(drawn_components(Vae(folder), 3, False))) == {0, 1}


def test_sample_follows_sample_latents(tmp_path):
    """Vae.sample passes every_digit on: the digits are the decodes of the same latents."""
    vae = Vae(margin_model(tmp_path))
    labels = np.arange(40) % 10
    for every_digit in (False, True):
        z = vae.sample_latents(labels, np.random.default_rng(2), every_digit=every_digit)
        np.testing.assert_array_equal(vae.sample(labels, np.random.default_rng(2), every_digit=every_digit),
                                      vae.decode(z, labels))
    assert not np.array_equal(vae.sample(labels, np.random.default_rng(2)),
                              vae.sample(labels, np.random.default_rng(2), every_digit=True))


def test_fit_prior_keeps_each_components_margin_beside_it():
    from digitgenerator.train import fit_prior

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 30)
    means = rng.standard_normal((300, 16)).astype(np.float32)
    log_vars = rng.standard_normal((300, 16)).astype(np.float32)
    margins = rng.uniform(-20, 20, 300).astype(np.float32)
    prior = fit_prior(means, labels, log_vars, components=12, margins=margins)
    assert prior["prior/mixture_margin"].shape == (10, 12)
    for k in range(10):
        rows = [int(np.flatnonzero(np.all(means == m, axis=1))[0]) for m in prior["prior/mixture_mean"][k]]
        assert np.all(labels[rows] == k) and len(set(rows)) == 12
        np.testing.assert_array_equal(prior["prior/mixture_margin"][k], margins[rows])
    assert "prior/mixture_margin" not in fit_prior(means, labels, log_vars)


def test_refit_records_every_digits_margin_and_how_many_fall_below(tmp_path):
    """The refit keeps all digits in the mixture (as many a label as the rarest has) with their margins
    as train.label_margin computes them, and counts the digits at or below the threshold."""
    from digitgenerator.train import label_margin, refit_prior

    folder = write_random_model(tmp_path / "model")
    images, labels = make_digits(4)
    x = images.astype(np.float32) / 255
    config = refit_prior(folder, images, labels, label_margin=2.0)
    vae = Vae(folder)
    expected = label_margin(vae, x, labels)
    means, _ = vae.encode(x, labels)
    assert config["prior_components"] == 4 and config["prior_unclear_digits"] == int(np.sum(expected <= 2.0))
    for k in range(10):
        for component, margin in zip(vae.weights["prior/mixture_mean"][k], vae.weights["prior/mixture_margin"][k]):
            row = np.flatnonzero(np.abs(means - component).max(axis=1) <= 1e-6)
            assert len(row) == 1 and labels[row[0]] == k
            assert margin == pytest.approx(expected[row[0]], abs=1e-3)
    config = refit_prior(folder, images, labels, label_margin=None)  # 'off': no margins kept
    assert not {"prior_margins", "prior_label_margin", "prior_unclear_digits"} & set(config)
    assert not Vae(folder).has_margins and "prior/mixture_margin" not in np.load(folder / WEIGHTS_FILE)


def test_every_digit_on_a_model_that_cannot_give_it_is_refused(tmp_path, random_model):
    """A mixture fitted before 1.7.0 to the digits a margin let in has lost the others: say so and how to refit.
    A model with no margin (every digit in) draws the same digits either way; one without a mixture has no digits."""
    folder = margin_model(tmp_path)
    config = json.loads((folder / CONFIG_FILE).read_text())
    del config["prior_margins"]  # as 1.4.0-1.6.0 wrote it
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    vae = Vae(folder)
    assert not vae.has_margins
    vae.sample([1, 2], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"5-nat label margin.*--refit-prior"):
        vae.sample([1, 2], np.random.default_rng(0), every_digit=True)
    del config["prior_label_margin"]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    vae = Vae(folder)
    np.testing.assert_array_equal(vae.sample([1, 2], np.random.default_rng(0), every_digit=True),
                                  vae.sample([1, 2], np.random.default_rng(0)))
    with pytest.raises(ValueError, match="has no mixture prior"):
        Vae(random_model).sample([1], np.random.default_rng(0), every_digit=True)
    with pytest.raises(ValueError, match="every_digit must be True or False"):
        vae.sample([1], np.random.default_rng(0), every_digit="yes")


@pytest.mark.parametrize("change, message", [
    ({"prior_margins": "yes"}, "prior_margins must be true or false"),
    ({"prior_label_margin": None}, "prior_margins needs prior_label_margin"),
    ({"prior_label_margin": -1}, "prior_label_margin must be between"),
    ({"prior_label_margin": float("nan")}, "prior_label_margin"),
])
def test_a_bad_margin_config_is_refused(tmp_path, change, message):
    folder = margin_model(tmp_path)
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        Vae(folder)


def test_a_margin_model_without_its_margins_is_refused(tmp_path):
    folder = margin_model(tmp_path)
    with np.load(folder / WEIGHTS_FILE) as npz:
        weights = {k: v for k, v in npz.items() if k != "prior/mixture_margin"}
    np.savez(folder / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match="lacks prior/mixture_margin"):
        Vae(folder)
    weights["prior/mixture_margin"] = np.zeros((10, 3), np.float32)
    np.savez(folder / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match=r"mixture_margin has shape \(10, 3\)"):
        Vae(folder)


def test_sample_from_vae_every_digit(tmp_path):
    gen = Digitgenerator(seed=0, model_dir=margin_model(tmp_path))
    digits = [0, 1, 2, 4, 5, 6, 8, 9] * 3
    default = gen.sample_from_vae(digits, seed=3)
    every = gen.sample_from_vae(digits, seed=3, every_digit=True)
    assert default.shape == every.shape and not np.array_equal(default, every)
    np.testing.assert_array_equal(every, gen.sample_from_vae(digits, seed=3, every_digit=True))
    for kwargs in ({"style": "shared"}, {"realistic": True}, {"style": np.zeros(gen.vae.latent_dim, np.float32)}):
        with pytest.raises(ValueError, match="every_digit"):
            gen.sample_from_vae([1, 2], seed=0, every_digit=True, **kwargs)


def test_generate_png_every_digit(tmp_path, capsys):
    from PIL import Image

    from digitgenerator.cli import main

    model = str(margin_model(tmp_path))
    base = ["--digits", "0", "1", "2", "4", "5", "6", "8", "9", "--seed", "5", "--model-dir", model]
    assert main([*base, "--cvae", "1", "--outfile", "a.png"]) == 0
    assert main([*base, "--cvae", "1", "--every-digit", "--outfile", "b.png"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "ab")
    assert a.shape == b.shape and not np.array_equal(a, b)
    capsys.readouterr()
    for extra in (["--every-digit"], ["--cvae", "1", "--every-digit", "--same-style"],
                  ["--cvae", "1", "--every-digit", "--realistic"]):
        assert main([*base, *extra, "--outfile", "c.png"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--every-digit" in err[0]
    assert not (tmp_path / "c.png").exists()


def test_dataset_every_digit(tmp_path, capsys):
    """--every-digit changes a CVAE dataset's pixels, not its digits; the spec records it (only when set,
    so that jobs written before it still resume); it needs --source cvae."""
    from digitgenerator.cli import dataset_main
    from digitgenerator.spec import DatasetSpec

    model = str(margin_model(tmp_path))
    base = ["--count", "12", "--length", "3", "5", "--source", "cvae", "--model-dir", model, "--no-progress"]
    assert dataset_main([*base, "--out", "a"]) == 0
    assert dataset_main([*base, "--every-digit", "--out", "b"]) == 0
    rows = {name: [json.loads(line) for line in (tmp_path / name / "manifest.jsonl").read_text().splitlines()]
            for name in "ab"}
    assert [r["text"] for r in rows["a"]] == [r["text"] for r in rows["b"]]
    differ = [(tmp_path / "a" / ra["file"]).read_bytes() != (tmp_path / "b" / rb["file"]).read_bytes()
              for ra, rb in zip(rows["a"], rows["b"])]
    assert sum(differ) >= 6
    assert dataset_main([*base, "--every-digit", "--out", "b"]) == 0  # resumes: nothing to do, nothing changed
    capsys.readouterr()
    assert dataset_main(["--count", "2", "--every-digit", "--out", "c", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--every-digit needs --source cvae" in err[0]
    assert "every_digit" not in DatasetSpec(count=1, source="cvae").to_json()
    assert DatasetSpec(count=1, source="cvae", every_digit=True).to_json()["every_digit"] is True
    # A model that cannot draw every digit (one fitted before 1.7.0) is refused before the folder is made.
    config = json.loads((tmp_path / "margins" / CONFIG_FILE).read_text())
    del config["prior_margins"]
    (tmp_path / "margins" / CONFIG_FILE).write_text(json.dumps(config))
    assert dataset_main([*base, "--every-digit", "--out", "d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--refit-prior --out-dir" in err[0] and not (tmp_path / "d").exists()
    for kwargs in ({"source": "mnist"}, {"source": "cvae", "realistic": True}):
        with pytest.raises(ValueError, match="every_digit applies to source 'cvae'"):
            DatasetSpec(count=1, every_digit=True, **kwargs)


def test_the_shipped_generator_leaves_its_least_clear_hands_out_by_default():
    """README's Quality: the shipped model's default digits read more clearly than its every-digit ones.
    The reader: 1-nearest-neighbour on the embedded digits (about 95% on real held-out ones)."""
    from test_model import nearest_neighbour_reader

    gen = Digitgenerator(seed=0)
    assert gen.vae.model_dir == shipped_model_dir() and gen.vae.has_margins
    read = nearest_neighbour_reader(gen.images, gen.labels)
    labels = np.repeat(np.arange(10), 300)
    default = np.mean(read(gen.vae.sample(labels, np.random.default_rng(0))) == labels)
    every = np.mean(read(gen.vae.sample(labels, np.random.default_rng(0), every_digit=True)) == labels)
    assert default >= 0.9 and default - every >= 0.01, (default, every)
