import json

import numpy as np
import pytest

from digitgenerator import Digitgenerator, Vae
from digitgenerator.model import DEFAULT_CONFIG, WEIGHTS_FILE, ModelConfig, conv2d, conv2d_transpose, shipped_model_dir

from conftest import needs_tf, write_random_model


def reference_conv2d(x, kernel, stride):
    """Direct loops over TensorFlow's SAME padding: the independent reference."""
    n, h, w, cin = x.shape
    k, cout = kernel.shape[0], kernel.shape[3]
    ho, wo = -(-h // stride), -(-w // stride)
    pad_h = max((ho - 1) * stride + k - h, 0) // 2
    pad_w = max((wo - 1) * stride + k - w, 0) // 2
    out = np.zeros((n, ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            for a in range(k):
                for b in range(k):
                    r, c = i * stride + a - pad_h, j * stride + b - pad_w
                    if 0 <= r < h and 0 <= c < w:
                        out[:, i, j] += x[:, r, c] @ kernel[a, b]
    return out


@pytest.mark.parametrize("k, stride, size", [(3, 2, 28), (3, 2, 14), (4, 2, 28), (3, 1, 7), (2, 2, 28), (1, 1, 7)])
def test_conv2d_matches_direct_loops(k, stride, size):
    rng = np.random.default_rng(k + size)
    x = rng.standard_normal((2, size, size, 3))
    kernel = rng.standard_normal((k, k, 3, 5))
    np.testing.assert_allclose(conv2d(x, kernel, np.zeros(5), stride), reference_conv2d(x, kernel, stride), atol=1e-9)


@pytest.mark.parametrize("k", [3, 4])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(k):
    # <T(x), y> = <x, C(y)>: the transposed convolution is the adjoint of the strided one.
    rng = np.random.default_rng(k)
    kernel = rng.standard_normal((k, k, 4, 6))  # transposed layout (k, k, out=4, in=6)
    x = rng.standard_normal((1, 7, 7, 6))
    y = rng.standard_normal((1, 14, 14, 4))
    lhs = np.sum(conv2d_transpose(x, kernel, np.zeros(4), 2) * y)
    rhs = np.sum(x * conv2d(y, kernel, np.zeros(6), 2))
    assert lhs == pytest.approx(rhs, rel=1e-10)


@pytest.fixture
def gen(random_model):
    return Digitgenerator(seed=0, model_dir=random_model)


def test_sample_from_vae_contract(gen):
    image = gen.sample_from_vae([1, 2, 3], (2, 5))
    assert image.dtype == np.float32 and image.shape[0] == 28 and 88 <= image.shape[1] <= 94
    assert 0 <= image.min() and image.max() <= 1
    assert gen.sample_from_vae([1, 2, 3], (2, 5), 150).shape == (28, 150)
    np.testing.assert_array_equal(gen.sample_from_vae([4, 5], seed=3), gen.sample_from_vae([4, 5], seed=3))
    assert not np.array_equal(gen.sample_from_vae([4, 5], seed=3), gen.sample_from_vae([4, 5], seed=4))


def test_an_empty_batch_gives_empty_results(gen):
    """A data loader's last batch may be empty: every batch method of Vae takes zero digits (an empty
    list or array) and returns arrays of the documented shapes with no rows, rather than failing."""
    vae, rng = gen.vae, np.random.default_rng(0)
    d = vae.latent_dim
    for images in ([], np.zeros((0, 28, 28), np.uint8)):
        mean, log_var = vae.encode(images, [])
        assert mean.shape == log_var.shape == (0, d)
        assert vae.elbo(images, []).shape == (0,)
        assert vae.ff_autoencode(images, []).shape == vae.denoise(images, []).shape == (0, 28, 28)
    assert vae.decode(np.zeros((0, d)), []).shape == vae.sample([], rng).shape == (0, 28, 28)
    assert vae.sample_latents([], rng).shape == (0, d)
    # No labels asked for: the pooled prior, as without labels.
    np.testing.assert_array_equal(vae.sample_style(np.random.default_rng(1), labels=[]),
                                  vae.sample_style(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="digits is empty"):
        gen.sample_from_vae([])


def test_shared_style_uses_one_latent_for_every_digit(gen):
    image = gen.sample_from_vae([3, 3, 3], (0, 0), style="shared", seed=1)
    np.testing.assert_allclose(image[:, :28], image[:, 28:56], atol=1e-6)  # BLAS may round rows differently
    independent = gen.sample_from_vae([3, 3, 3], (0, 0), seed=1)
    assert np.abs(independent[:, :28] - independent[:, 28:56]).max() > 1e-3


def test_style_of_a_real_digit(gen):
    z = gen.style_of(gen.images[0], gen.labels[0])
    assert z.shape == (gen.vae.latent_dim,)
    image = gen.sample_from_vae([0, 1], (0, 0), style=z)
    np.testing.assert_allclose(image[:, :28], gen.vae.decode(z[None], [0])[0], atol=1e-6)


def test_the_highest_temperature_is_allowed(gen):
    assert gen.sample_from_vae([3, 4], temperature=10, seed=0).shape == (28, 28 * 2 + 4)


def test_temperature_zero_is_the_label_mean(gen):
    a = gen.sample_from_vae([7], temperature=0, seed=1)
    b = gen.sample_from_vae([7], temperature=0, seed=2)
    np.testing.assert_array_equal(a, b)


def test_denoise_keeps_clean_and_noisy(gen):
    out = gen.denoise([1, 2], (3, 3), noise_prob=0.3)
    assert out.shape == gen.latest_clean.shape == gen.latest_noisy.shape == (28, 59)
    assert not np.array_equal(gen.latest_clean, gen.latest_noisy)
    gen.denoise([1, 2], (3, 3), noise_prob=0.0)
    np.testing.assert_array_equal(gen.latest_clean, gen.latest_noisy)


def test_ff_autoencode_takes_a_list(gen):
    out = gen.vae.ff_autoencode([gen.images[0], gen.images[1]], [gen.labels[0], gen.labels[1]])
    assert out.shape == (2, 28, 28) and out.dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: g.sample_from_vae([10]), "digit must be between 0 and 9, got 10"),
        (lambda g: g.denoise([1], noise_prob=1.5), "noise_prob must be between 0 and 1, got 1.5"),
        (lambda g: g.sample_from_vae([1], style="bold"), "style must be"),
        (lambda g: g.sample_from_vae([1], style=np.zeros(3)), "style must be"),
        (lambda g: g.sample_from_vae([1], temperature=-1), "temperature"),
        (lambda g: g.sample_from_vae([1], temperature=10.5), "temperature .* must be between 0 and 10, got 10.5"),
        (lambda g: g.vae.encode(np.zeros((2, 28, 28)), [1]), "2 images but 1 labels"),
        (lambda g: g.vae.encode(np.zeros((2, 20, 20)), [1, 2]), "28x28"),
        (lambda g: g.vae.decode(np.zeros((1, 16)), [11]), "label 11"),
        (lambda g: g.vae.decode(np.full((1, 16), np.nan), [1]), "z holds NaN or infinite values"),
        (lambda g: g.vae.decode(np.zeros((2, 15)), [1, 2]), r"z must hold 16 values per digit, shape \(N, 16\); got shape \(2, 15\)"),
        (lambda g: g.vae.encode(np.full((1, 28, 28), 255.0), [1]), r"pixels in \[0, 1\] \(1 = ink\), got 255 to 255: divide uint8"),
        (lambda g: g.vae.encode(np.full((1, 28, 28), np.nan), [1]), "got NaN or infinite values"),
        (lambda g: g.vae.ff_autoencode(-np.ones((28, 28)), [1]), "got -1 to -1"),
    ],
)
def test_bad_inputs(gen, call, message):
    with pytest.raises(ValueError, match=message):
        call(gen)


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="cvae.npz is missing; train one"):
        Vae(tmp_path / "none")
    folder = write_random_model(tmp_path / "m")
    (folder / WEIGHTS_FILE).write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match="corrupt"):
        Vae(folder)
    folder = write_random_model(tmp_path / "m2")
    with np.load(folder / WEIGHTS_FILE) as npz:
        weights = dict(npz)
    weights["latent_mean/kernel"] = weights["latent_mean/kernel"][:, :3]
    np.savez(folder / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match="latent_mean/kernel has shape"):
        Vae(folder)
    weights = dict(np.load(write_random_model(tmp_path / "m3") / WEIGHTS_FILE))
    weights["decoder_grid/bias"][0] = np.nan
    np.savez(tmp_path / "m3" / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match="NaN"):
        Vae(tmp_path / "m3")
    (tmp_path / "m2" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid CVAE config"):
        Vae(tmp_path / "m2")


def test_model_lookup_order(tmp_path, monkeypatch):
    assert Vae().model_dir == shipped_model_dir()
    local = write_random_model(tmp_path / "tf_vae_files")
    assert Vae().model_dir.resolve() == local.resolve()  # ./tf_vae_files wins over the shipped model
    other = write_random_model(tmp_path / "other")
    monkeypatch.setenv("DIGITGENERATOR_MODEL_DIR", str(other))
    assert Vae().model_dir == other
    assert Vae(local).model_dir == local


def nearest_neighbour_reader(images, labels):
    """A reader independent of the model: each digit gets the label of its nearest (Euclidean) of `images`."""
    reference = np.asarray(images, dtype=np.float32).reshape(len(labels), -1)
    norms = (reference**2).sum(1)[None]

    def read(x):
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return labels[np.argmin(norms - 2 * x @ reference.T, axis=1)]  # + |x|^2, the same for every candidate

    return read


def test_shipped_model_writes_recognisable_digits():
    """1-nearest-neighbour on 4,000 embedded digits (no TensorFlow) reads the CVAE's digits about as
    well as it reads the 1,000 real digits held out of those 4,000 (both about 95%)."""
    gen = Digitgenerator(seed=0)
    order = np.random.default_rng(0).permutation(len(gen.labels))
    train, held = order[:4000], order[4000:]
    nearest_label = nearest_neighbour_reader(gen.images[train], gen.labels[train])
    real = np.mean(nearest_label(gen.images[held]) == gen.labels[held])
    labels = np.repeat(np.arange(10), 100)
    fake = np.mean(nearest_label(gen.vae.sample(labels, np.random.default_rng(1))) == labels)
    assert real >= 0.9 and fake >= real - 0.025, (fake, real)
    config = json.loads((gen.vae.model_dir / "config.json").read_text())
    assert config["latent_dim"] == gen.vae.latent_dim and "keras_version" in config


def test_readme_names_the_commands_that_trained_the_shipped_models():
    """README's *Model files* gives one digitgenerator-train command per shipped folder (--out-dir
    tf_vae_files, and tf_vae_files/denoiser): each folder's config.json records exactly those settings,
    and the defaults stand for every flag a command leaves out."""
    import shlex
    from pathlib import Path

    from digitgenerator.cli import build_train_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = {}
    for line in readme.splitlines():
        if not line.strip().startswith("digitgenerator-train "):
            continue
        words = shlex.split(line.strip(), comments=True)
        if "--out-dir" in words:
            args = build_train_parser().parse_args(words[1:])
            if str(args.out_dir).startswith("tf_vae_files"):
                # README may give a command twice (usage and Model files), never two different ones.
                assert commands.setdefault(str(args.out_dir), args) == args, f"two commands for {args.out_dir}"
    assert sorted(commands) == ["tf_vae_files", "tf_vae_files/denoiser"]
    for out_dir, args in commands.items():
        config = json.loads((shipped_model_dir().parent / out_dir / "config.json").read_text())
        recorded = {"epochs": config["epochs"], "seed": config["seed"], "latent_dim": config["latent_dim"],
                    "decoder_channels": config["decoder_channels"], "noisy_share": config["noisy_share"],
                    "kl_weight": config.get("kl_weight", 1.0), "consistency_weight": config.get("consistency_weight", 0.0),
                    "label_margin": config.get("prior_label_margin")}
        assert {k: getattr(args, k) for k in recorded} == recorded, out_dir
    assert ModelConfig().arch() == DEFAULT_CONFIG


def test_a_models_config_reports_its_truncation(random_model):
    shipped = json.loads((shipped_model_dir() / "config.json").read_text())["truncation_radius"]
    assert shipped > 0 and Vae().config["truncation_radius"] == shipped
    config = json.loads((random_model / "config.json").read_text())
    config.pop("truncation_radius", None)  # a model saved before truncation: none
    (random_model / "config.json").write_text(json.dumps(config))
    assert Vae(random_model).config["truncation_radius"] is None and Vae(random_model).truncation_radius == np.inf


@pytest.mark.parametrize("field, value", [("kernel_size", 8), ("kernel_size", 0), ("upsample_kernel_size", 9),
                                          ("upsample_kernel_size", 1)])
def test_kernel_sizes_outside_their_range_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field} must be between"):
        ModelConfig(**{field: value})
    ModelConfig(**{field: {"kernel_size": 7, "upsample_kernel_size": 8}[field]})  # the largest is fine


def test_shipped_model_keeps_the_label_out_of_a_shared_hand():
    """A number written in one latent (style="shared", or style_of a real digit) shows the digits asked
    for, as legibly as digits drawn one by one: the label comes from the decoder's label input, not
    the latent. (A model trained with --kl-weight 0.2 and no --consistency-weight fails this: its latents
    carry the label, and a shared one writes a number as one digit repeated.) The reader:
    1-nearest-neighbour on the sample."""
    gen = Digitgenerator(seed=0)
    read = nearest_neighbour_reader(gen.images, gen.labels)
    rng = np.random.default_rng(3)
    numbers = rng.integers(0, 10, (100, 8))
    shared = np.concatenate([gen.sample_from_vae(number, (0, 0), style="shared", seed=i).reshape(28, 8, 28).transpose(1, 0, 2)
                             for i, number in enumerate(numbers)])
    alone = gen.vae.sample(numbers.ravel(), rng)
    sources = rng.choice(len(gen.labels), 100, replace=False)
    written = np.concatenate([gen.vae.decode(np.tile(gen.style_of(gen.images[i], gen.labels[i]), (8, 1)), number)
                              for i, number in zip(sources, numbers)])
    alone_read = np.mean(read(alone) == numbers.ravel())
    assert alone_read >= 0.9
    assert np.mean(read(shared) == numbers.ravel()) >= alone_read - 0.03
    assert np.mean(read(written) == numbers.ravel()) >= alone_read - 0.08


def test_shipped_model_denoises():
    """The shipped folder denoises with its denoiser/ model (1.4.0's, KL weight 1), which restores noisy
    digits better than the sharper generator's own encoder and decoder do (README's Quality: about 1 dB)."""
    from digitgenerator.noise import corrupt

    gen = Digitgenerator(seed=0)
    clean, labels = gen.images[::10], gen.labels[::10]
    noisy = corrupt(clean, 0.5, np.random.default_rng(0))
    error = lambda x: np.mean((x - clean) ** 2)  # noqa: E731
    restored = gen.vae.denoise(noisy, labels)
    assert error(restored) < 0.2 * error(noisy)
    assert gen.vae.denoiser.model_dir == gen.vae.model_dir / "denoiser"
    assert error(restored) < 0.9 * error(gen.vae.ff_autoencode(noisy, labels))


def test_denoising_uses_the_denoiser_folder_when_there_is_one(tmp_path, random_model):
    """Digitgenerator.denoise: a model folder's denoiser/ model cleans the digits; without one, the model
    itself; a broken denoiser is named when denoising needs it, and sampling does not need it."""
    import shutil

    own = Digitgenerator(seed=0, model_dir=random_model).denoise([3, 1], seed=4)
    other = write_random_model(tmp_path / "other", seed=7)
    via_other = Digitgenerator(seed=0, model_dir=other).denoise([3, 1], seed=4)
    folder = tmp_path / "with_denoiser"
    shutil.copytree(random_model, folder)
    shutil.copytree(other, folder / "denoiser")
    gen = Digitgenerator(seed=0, model_dir=folder)
    assert np.array_equal(gen.denoise([3, 1], seed=4), via_other) and not np.array_equal(own, via_other)
    assert np.array_equal(gen.sample_from_vae([3, 1], seed=4),
                          Digitgenerator(seed=0, model_dir=random_model).sample_from_vae([3, 1], seed=4))
    (folder / "denoiser" / WEIGHTS_FILE).write_bytes(b"not a zip")
    broken = Digitgenerator(seed=0, model_dir=folder)
    assert broken.sample_from_vae([3]).shape == (28, 28)
    with pytest.raises(ValueError, match="denoiser"):
        broken.denoise([3])


@needs_tf
def test_numpy_matches_keras_on_random_inputs():
    from digitgenerator.keras_model import Cvae
    from digitgenerator.model import one_hot

    keras_model = Cvae()  # fresh random weights
    vae = Vae.from_weights(keras_model.arch, keras_model.named_weights())
    rng = np.random.default_rng(0)
    x = rng.random((50, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 50)
    mean_k, log_var_k = (np.asarray(t) for t in keras_model.encode(x[..., None], one_hot(y)))
    mean_n, log_var_n = vae.encode(x, y)
    z = rng.standard_normal((50, vae.latent_dim)).astype(np.float32)
    logits_k = np.asarray(keras_model.decode_logits(z, one_hot(y)))[..., 0]
    assert np.abs(mean_k - mean_n).max() <= 1e-4 and np.abs(log_var_k - log_var_n).max() <= 1e-4
    assert np.abs(logits_k - vae.decode_logits(z, y)).max() <= 1e-4
    assert np.abs(np.asarray(keras_model.decode(z, one_hot(y)))[..., 0] - vae.decode(z, y)).max() <= 1e-4


@needs_tf
def test_training_round_trip(tmp_path, mnist_folder, capsys):
    from digitgenerator.cli import train_main
    from digitgenerator.keras_model import Cvae
    from digitgenerator.model import one_hot

    code = train_main(["--epochs", "2", "--batch-size", "10", "--seed", "1", "--out-dir", "model",
                       "--decoder-channels", "8", "--kl-weight", "0.5", "--consistency-weight", "1.5",
                       "--label-margin", "7", "--latent-dim", "6", "--noisy-share", "0",
                       "--mnist-folder", str(mnist_folder)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "epoch 2/2" in err
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["epochs_done"] == 2 and config["trained_on"] == 30 and config["seed"] == 1
    assert config["decoder_channels"] == 8 and config["kl_weight"] == 0.5 and config["prior_label_margin"] == 7.0 and "prior_unclear_digits" in config
    assert config["consistency_weight"] == 1.5 and config["latent_dim"] == 6 and config["noisy_share"] == 0.0
    checkpoint = json.loads((tmp_path / "model" / "checkpoint" / "config.json").read_text())
    assert checkpoint["weights_sha256"] == config["weights_sha256"]  # the final checkpoint is the model
    vae = Vae(tmp_path / "model")
    keras_model = Cvae(config)
    keras_model.load_weights(tmp_path / "model" / "cvae.weights.h5")  # the Keras checkpoint
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    y = np.arange(5)
    np.testing.assert_allclose(np.asarray(keras_model((x[..., None], one_hot(y))))[..., 0], vae.ff_autoencode(x, y), atol=1e-4)
    gen = Digitgenerator(mnist_folder, seed=2, model_dir=tmp_path / "model")
    assert gen.sample_from_vae([1, 2]).shape == (28, 60)
    assert not list((tmp_path / "model").glob(".*"))  # no temporary files left


@needs_tf
def test_the_same_training_writes_the_same_bytes_in_any_process(tmp_path, mnist_folder):
    """README's claim that the shipped model is reproduced byte for byte by its command: two runs in
    processes with different string hashing (which reorders sets) write the same cvae.npz."""
    import hashlib
    import os
    import subprocess
    import sys

    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"model{hash_seed}"
        subprocess.run([sys.executable, "-c", "import sys; from digitgenerator.cli import train_main; sys.exit(train_main())",
                        "--epochs", "1", "--batch-size", "10", "--decoder-channels", "4", "--out-dir", str(out),
                        "--mnist-folder", str(mnist_folder)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
        digests.append(hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_refit_prior_from_the_command_line_takes_the_label_margin(tmp_path, mnist_folder, random_model, capsys):
    """digitgenerator-train --refit-prior --label-margin: the margin is recorded and applied ('off': every digit)."""
    from digitgenerator.cli import train_main

    config = lambda: json.loads((random_model / "config.json").read_text())  # noqa: E731
    for margin, recorded in (("7", 7.0), ("off", None)):
        assert train_main(["--refit-prior", "--label-margin", margin, "--out-dir", str(random_model),
                           "--mnist-folder", str(mnist_folder)]) == 0, capsys.readouterr().err
        assert config().get("prior_label_margin") == recorded
        said = capsys.readouterr().out
        assert (f"{config().get('prior_unclear_digits')} read by no more than the 7-nat margin, left out unless "
                "--every-digit" in said) == (recorded is not None), said
    assert "prior_unclear_digits" not in config() and config()["prior_components"] == 3  # every digit: 3 a label
    assert train_main(["--refit-prior", "--label-margin", "-1", "--out-dir", str(random_model)]) == 2
    assert "--label-margin" in capsys.readouterr().err


@needs_tf
def test_kl_weight_trades_kl_for_reconstruction(tmp_path, mnist_folder):
    """beta-VAE: the same run with the KL term weighted 0.01 ends with a larger KL and a smaller
    reconstruction loss than with it weighted 10 (Higgins et al. 2017: beta sets that trade-off)."""
    ends = {}
    for beta in (0.01, 10.0):
        gen = Digitgenerator(mnist_folder)
        ends[beta] = gen.train_vaemodel(4, 5, seed=0, out_dir=tmp_path / str(beta), kl_weight=beta,
                                        decoder_channels=4, log=lambda msg: None)
    assert ends[0.01]["final_kl"] > 2 * ends[10.0]["final_kl"]
    assert ends[0.01]["final_reconstruction"] < ends[10.0]["final_reconstruction"]
    for bad in (0.0, 11.0, float("nan")):
        with pytest.raises(ValueError, match="kl_weight"):
            Digitgenerator(mnist_folder).train_vaemodel(1, 5, out_dir=tmp_path / "x", kl_weight=bad)
    for name, bad in (("latent_dim", 0), ("latent_dim", 257), ("noisy_share", -0.1), ("noisy_share", 1.5)):
        with pytest.raises(ValueError, match=name):
            Digitgenerator(mnist_folder).train_vaemodel(1, 5, out_dir=tmp_path / "x", **{name: bad})
    assert not (tmp_path / "x").exists()


@needs_tf
def test_noisy_share_teaches_the_encoder_to_see_through_noise(tmp_path):
    """noisy_share is the share of training digits whose encoder input is corrupted (the target
    stays clean). Trained on every digit corrupted, the encoder maps a noisy digit near where it
    maps the clean one; trained on none, noise moves the latent much further. Measured on 500
    embedded digits held out of the 1,000 trained on: the latent mean's move under noise p = 0.3,
    as a share of the distance between two different digits' latents."""
    from digitgenerator.noise import corrupt
    from digitgenerator.train import train_cvae

    gen = Digitgenerator(seed=0)
    held, held_labels = gen.images[4000:4500] / 255.0, gen.labels[4000:4500]
    noisy = corrupt(held, 0.3, np.random.default_rng(1))
    moved = {}
    for share in (0.0, 1.0):
        config = train_cvae(gen.images[:1000], gen.labels[:1000], tmp_path / str(share), epochs=6, batch_size=50,
                            learning_rate=0.003, noisy_share=share, kl_weight=0.01, config={"decoder_channels": 4},
                            label_margin=None, log=lambda msg: None)
        assert config["noisy_share"] == share
        vae = Vae(tmp_path / str(share))
        clean_mean, _ = vae.encode(held, held_labels)
        noisy_mean, _ = vae.encode(noisy, held_labels)
        spread = np.linalg.norm(clean_mean - clean_mean[::-1], axis=1).mean()
        moved[share] = np.linalg.norm(noisy_mean - clean_mean, axis=1).mean() / spread
    assert moved[1.0] < 0.75 * moved[0.0], moved


@needs_tf
def test_consistency_term_makes_the_decoder_write_the_label_it_is_given(tmp_path):
    """With the KL term weighted 0.01 the latent holds everything, and a digit decoded under another
    label comes out as the same digit; with --consistency-weight the frozen reader must see the label
    asked for, so the ink moves to that label's place. The synthetic digits are blobs whose column is
    the label (one column per label step): the measure is how far the ink's centre column moves per
    label step asked, read straight off the pixels (slope about 1 with the term, about 0 without)."""
    from conftest import make_digits
    from digitgenerator.train import train_cvae

    images, labels = make_digits(50)
    labels = labels.astype(np.int64)
    rng = np.random.default_rng(0)
    other = (labels + rng.integers(1, 10, len(labels))) % 10

    def centre_column(x):
        return (x.sum(axis=1) * np.arange(28)).sum(axis=1) / x.sum(axis=(1, 2))

    slopes, configs = {}, {}
    for weight in (0.0, 10.0):
        configs[weight] = train_cvae(images, labels, tmp_path / str(weight), epochs=20, batch_size=50, learning_rate=0.01,
                                     kl_weight=0.01, consistency_weight=weight, config={"decoder_channels": 4},
                                     log=lambda msg: None)
        vae = Vae(tmp_path / str(weight))
        mean, _ = vae.encode(images / 255.0, labels)
        moved = centre_column(vae.decode(mean, other, 1.0)) - centre_column(vae.decode(mean, labels, 1.0))
        slopes[weight] = np.polyfit(other - labels, moved, 1)[0]
    assert slopes[10.0] >= 0.6 and slopes[0.0] <= 0.3, slopes
    assert configs[10.0]["consistency_weight"] == 10.0 and configs[0.0]["consistency_weight"] == 0.0


def test_style_values_are_bounded_at_100(gen):
    """A latent vector within +/-100 is a style (fitted latents lie within about +/-5); beyond, it is refused."""
    edge = np.full(gen.vae.latent_dim, 100.0)
    edge[1::2] = -100.0
    assert np.isfinite(gen.sample_from_vae([3], style=edge)).all()
    for value in (100.5, 150.0, np.inf, np.nan):
        bad = edge.copy()
        bad[0] = value
        with pytest.raises(ValueError, match=r"within \+/-100 "):
            gen.sample_from_vae([3], style=bad)


@pytest.mark.parametrize("value", [1.001, 2.0, -0.001])
def test_style_of_refuses_pixels_outside_0_1(gen, value):
    image = gen.images[0].copy()
    gen.style_of(image, gen.labels[0])  # in range: fine
    image[5, 5] = value
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        gen.style_of(image, gen.labels[0])


def refitted_model(tmp_path, n_per_class=4):
    """A random model whose priors are fitted to small synthetic digits; returns (folder, float images, labels)."""
    from conftest import make_digits
    from digitgenerator.train import refit_prior

    folder = write_random_model(tmp_path / "refit")
    images, labels = make_digits(n_per_class)
    refit_prior(folder, images, labels)
    return folder, images.astype(np.float32) / 255, labels.astype(np.int64)


def test_refit_prior_keeps_the_weights_and_records_the_mixture(tmp_path):
    from digitgenerator.data import file_sha256

    before = dict(np.load(write_random_model(tmp_path / "refit") / WEIGHTS_FILE))
    folder, images, labels = refitted_model(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["prior_components"] == 4 and config["weights_sha256"] == file_sha256(folder / WEIGHTS_FILE)
    assert 1.0 <= config["sharpness"] <= 3.0 and config["truncation_radius"] > 0
    with np.load(folder / WEIGHTS_FILE) as npz:
        after = dict(npz)
    for name, array in before.items():
        if not name.startswith("prior/"):
            np.testing.assert_array_equal(after[name], array)
    vae = Vae(folder)
    means, log_vars = vae.encode(images, labels)
    # the pooled style Gaussian is refitted to the posterior means (4 a label is too few for a label's own)
    np.testing.assert_allclose(after["prior/style_mean"], means.mean(0), atol=1e-5)
    np.testing.assert_array_equal(after["prior/label_mean"], 0)
    # every component is the posterior of one training digit of its own label
    for k in range(10):
        own = means[labels == k]
        for m, s in zip(after["prior/mixture_mean"][k], after["prior/mixture_std"][k]):
            j = np.argmin(np.abs(own - m).sum(1))
            np.testing.assert_allclose(m, own[j], atol=1e-5)
            np.testing.assert_allclose(s, np.exp(0.5 * log_vars[labels == k][j]), rtol=1e-4)


def test_mixture_prior_draws_a_training_digit_then_its_posterior(tmp_path):
    folder, images, labels = refitted_model(tmp_path)
    vae = Vae(folder)
    means, log_vars = vae.encode(images, labels)
    wanted = np.repeat(np.arange(10), 200)
    z0 = vae.sample_latents(wanted, np.random.default_rng(0), temperature=0.0)
    for z, y in zip(z0, wanted):  # T = 0: exactly some training digit's posterior mean, of the right label
        assert np.abs(means[labels == y] - z).max(axis=1).min() <= 1e-5
    assert len({tuple(np.round(z, 4)) for z in z0[wanted == 3]}) == 4  # all four digits of a label are drawn
    vae.truncation_radius = np.inf  # untruncated: the mixture's variance in closed form
    z = vae.sample_latents(np.full(20000, 7), np.random.default_rng(1))
    own_m, own_s = means[labels == 7], np.exp(0.5 * log_vars[labels == 7])
    expected = (own_s**2).mean(0) + own_m.var(0)  # law of total variance over 4 equally likely components
    np.testing.assert_allclose(z.var(0), expected, rtol=0.08)
    np.testing.assert_allclose(z.mean(0), own_m.mean(0), atol=4 * np.sqrt(expected / 20000).max())
    twice = vae.sample_latents(wanted, np.random.default_rng(5)), vae.sample_latents(wanted, np.random.default_rng(5))
    np.testing.assert_array_equal(*twice)


def test_fit_prior_keeps_as_many_digits_as_the_rarest_label():
    from digitgenerator.train import fit_prior

    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(30, k) for k in range(10)] + [np.full(5, 4)])  # label 4: 35 digits, the rest 30
    means = (rng.standard_normal((len(labels), 16)) + labels[:, None]).astype(np.float32)
    log_vars = rng.standard_normal((len(labels), 16))
    prior = fit_prior(means, labels, log_vars, components=500)
    assert prior["prior/mixture_mean"].shape == prior["prior/mixture_std"].shape == (10, 30, 16)
    assert fit_prior(means, labels, log_vars, components=7)["prior/mixture_mean"].shape == (10, 7, 16)
    for k in (0, 4, 9):  # each component is one of its label's digits, each digit at most once
        rows = [np.flatnonzero(np.all(means == m, axis=1)) for m in prior["prior/mixture_mean"][k].astype(np.float64)]
        rows = [r[0] for r in rows if len(r)] if all(len(r) == 1 for r in rows) else []
        assert len(set(rows)) == 30 and np.all(labels[rows] == k)
        np.testing.assert_allclose(prior["prior/mixture_std"][k], np.exp(0.5 * log_vars[rows]), rtol=1e-6)
    assert "prior/mixture_mean" not in fit_prior(means, labels)  # no variances: the Gaussians only
    assert "prior/mixture_mean" not in fit_prior(means[labels != 9], labels[labels != 9], log_vars[labels != 9])


@pytest.mark.parametrize("components, message", [(-1, "prior_components"), (10**6, "prior_components"),
                                                   ("4", "prior_components"), (5, "mixture_mean has shape")])
def test_a_bad_mixture_prior_is_refused(tmp_path, components, message):
    folder, _, _ = refitted_model(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "prior_components": components}))
    with pytest.raises(ValueError, match=message):
        Vae(folder)


def test_a_mixture_model_without_its_arrays_is_refused(tmp_path):
    folder, _, _ = refitted_model(tmp_path)
    with np.load(folder / WEIGHTS_FILE) as npz:
        weights = {k: v for k, v in npz.items() if k != "prior/mixture_std"}
    np.savez(folder / WEIGHTS_FILE, **weights)
    with pytest.raises(ValueError, match="lacks prior/mixture_std"):
        Vae(folder)


def test_refit_prior_command_needs_no_tensorflow(tmp_path, mnist_folder):
    import subprocess
    import sys

    write_random_model(tmp_path / "model")
    script = ("import sys; from digitgenerator.cli import train_main; "
              f"code = train_main(['--refit-prior', '--out-dir', 'model', '--mnist-folder', {str(mnist_folder)!r}]); "
              "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refitted the prior of model/cvae.npz to 30 digits (3 per label" in done.stdout
    assert Vae(tmp_path / "model").prior_components == 3
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "cvae.npz"]


def test_refit_prior_command_without_a_model_is_one_line(tmp_path, mnist_folder, capsys):
    from digitgenerator.cli import train_main

    assert train_main(["--refit-prior", "--out-dir", "nowhere", "--mnist-folder", str(mnist_folder)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "cvae.npz is missing" in err[0]


def test_frechet_distance_of_a_scaled_and_shifted_copy():
    """f2 = 2 f1 + 3: means differ by m1 + 3, and Tr(S + 4S - 2 (4 S^2)^(1/2)) = Tr(S)."""
    from digitgenerator.train import frechet_distance

    f1 = np.random.default_rng(0).standard_normal((400, 6)) @ np.diag([1, 2, 3, 0.5, 1, 4]) + 1.0
    expected = ((f1.mean(0) + 3) ** 2).sum() + np.trace(np.cov(f1, rowvar=False))
    assert frechet_distance(f1, 2 * f1 + 3) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(f1, f1) == pytest.approx(0, abs=1e-6)


def test_refit_prior_reads_uint8_and_float_digits_alike(tmp_path):
    from conftest import make_digits
    from digitgenerator.train import refit_prior

    images, labels = make_digits(4)
    a = refit_prior(write_random_model(tmp_path / "a"), images, labels)
    b = refit_prior(write_random_model(tmp_path / "b"), images.astype(np.float32) / 255, labels)
    assert a["weights_sha256"] == b["weights_sha256"] and a["sharpness"] == b["sharpness"]


@pytest.mark.parametrize("kwargs, message", [({"learning_rate": 1.5}, "learning_rate"), ({"learning_rate": 0}, "learning_rate"),
                                             ({"batch_size": 31}, "fewer than one batch of 31"), ({"epochs": 0}, "epochs"),
                                             ({"kl_weight": 0.0}, "kl_weight"), ({"kl_weight": np.nan}, "kl_weight"),
                                             ({"consistency_weight": -1}, "consistency_weight"),
                                             ({"consistency_weight": np.inf}, "consistency_weight"),
                                             ({"label_margin": -0.5}, "label_margin"), ({"label_margin": np.nan}, "label_margin")])
def test_train_cvae_refuses_bad_settings_before_importing_tensorflow(tmp_path, kwargs, message):
    from conftest import make_digits
    from digitgenerator.train import train_cvae

    images, labels = make_digits()  # 30 digits
    with pytest.raises(ValueError, match=message):
        train_cvae(images, labels, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_elbo_is_the_bernoulli_likelihood_at_the_posterior_mean_minus_the_kl(random_model):
    """Against the textbook form: sum x log p + (1 - x) log(1 - p) with p the Bernoulli mean, minus KL to N(0, I)."""
    vae = Vae(random_model)
    rng = np.random.default_rng(0)
    images, labels = rng.random((6, 28, 28)).astype(np.float32), np.arange(6)
    mean, log_var = vae.encode(images, labels)
    p = vae.decode(mean, labels, sharpness=1.0).astype(np.float64).reshape(6, -1)
    x = images.reshape(6, -1)
    likelihood = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    kl = [sum(0.5 * (np.exp(v) + m * m - 1 - v) for m, v in zip(ms, vs)) for ms, vs in zip(mean.astype(float), log_var.astype(float))]
    np.testing.assert_allclose(vae.elbo(images, labels), likelihood - np.array(kl), rtol=1e-4)


@pytest.mark.parametrize("value", [255.0, -0.5, np.nan])
def test_elbo_refuses_pixels_outside_0_1(random_model, value):
    images = np.zeros((2, 28, 28), np.float32)
    Vae(random_model).elbo(images, [1, 2])  # in range: fine
    images[1, 3, 3] = value
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        Vae(random_model).elbo(images, [1, 2])


def test_the_shipped_model_reads_digits_by_their_elbo():
    """argmax over labels of the ELBO is a classifier: the shipped model reads the embedded digits with it."""
    from digitgenerator.train import label_margin

    gen = Digitgenerator(seed=0)
    assert np.mean(label_margin(gen.vae, gen.images[::10], gen.labels[::10]) > 0) >= 0.97


def test_mislabelled_training_digits_are_never_drawn_as_styles_of_the_label_by_default(tmp_path):
    """Refitting to digits of which 20 ones are labelled 7: the config counts them as unclear, sampling
    never starts from one of them by default, and every_digit (or no margin at all) does."""
    import shutil

    import digitgenerator.train as train

    gen = Digitgenerator(seed=0)
    picked = np.concatenate([np.flatnonzero(gen.labels == k)[:60] for k in range(10)])
    images, labels = gen.images[picked], gen.labels[picked].astype(np.int64)
    wrong = np.flatnonzero(labels == 1)[:20]
    labels[wrong] = 7
    wrong_means, _ = gen.vae.encode(images[wrong], labels[wrong])

    def sevens_written_as_ones(margin, every_digit=False):
        folder = tmp_path / f"margin{margin}"
        shutil.copytree(gen.vae.model_dir, folder, ignore=shutil.ignore_patterns("__*"), dirs_exist_ok=True)
        config = train.refit_prior(folder, images, labels, **({} if margin == "default" else {"label_margin": margin}))
        # Temperature 0: each latent is exactly the mean of the component it was drawn from.
        z = Vae(folder).sample_latents(np.full(2000, 7), np.random.default_rng(0), 0.0, every_digit=every_digit)
        hits = sum(np.abs(z - m).max(axis=1).min() <= 1e-4 for m in wrong_means)
        return hits, config

    hits, config = sevens_written_as_ones("default")
    assert hits == 0 and config["prior_unclear_digits"] >= 20 and config["prior_label_margin"] == train.LABEL_MARGIN
    assert config["prior_components"] == 40  # as many a label as label 1 has left, each kept with its margin
    assert sevens_written_as_ones("default", every_digit=True)[0] >= 5
    hits, config = sevens_written_as_ones(None)  # no margin: every digit joins
    assert hits >= 5 and "prior_unclear_digits" not in config and "prior_label_margin" not in config


def test_one_latent_decodes_as_one_digit(gen):
    z = np.zeros(gen.vae.latent_dim, np.float32)
    assert np.array_equal(gen.vae.decode(z, [3]), gen.vae.decode(z[None], [3])) and gen.vae.decode(z, [3]).shape == (1, 28, 28)


@pytest.mark.parametrize("bad", [10, -1])
def test_labels_outside_0_9_are_named(random_model, bad):
    """10 is the first label past the digits: refused by name, not an index error deep in numpy."""
    vae = Vae(random_model)
    for call in (lambda: vae.sample([3, bad], np.random.default_rng(0)),
                 lambda: vae.decode(np.zeros((2, vae.latent_dim), np.float32), [3, bad]),
                 lambda: vae.encode(np.zeros((2, 28, 28), np.float32), [3, bad])):
        with pytest.raises(ValueError, match=f"label {bad} is not a digit 0-9"):
            call()
    vae.sample([0, 9], np.random.default_rng(0))  # the ends of the range are digits
