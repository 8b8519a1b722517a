import subprocess
import sys

import numpy as np
import pytest

from digitgenerator import __version__
from digitgenerator.cli import main
from digitgenerator.png import read_png


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_digits_spacing_outfile(capsys, tmp_path):
    code, out, err = run(capsys, "--digits", "1", "3", "5", "--spacing", "2", "5", "--outfile", "seq.png")
    assert code == 0, err
    image = read_png(tmp_path / "seq.png")
    assert image.shape[0] == 28 and 88 <= image.shape[1] <= 94
    assert "seq.png: 135" in out


def test_width_is_exact_and_default_outfile(capsys, tmp_path):
    assert run(capsys, "--digits", "1", "3", "5", "--width", "200")[0] == 0
    assert read_png(tmp_path / "image_out.png").shape == (28, 200)


def test_seed_gives_identical_files(capsys, tmp_path):
    run(capsys, "--random", "6", "--seed", "7", "--outfile", "a.png")
    run(capsys, "--random", "6", "--seed", "7", "--outfile", "b.png")
    run(capsys, "--random", "6", "--seed", "8", "--outfile", "c.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


def test_invert_gives_black_ink_on_white(capsys, tmp_path):
    run(capsys, "--digits", "8", "--seed", "1", "--outfile", "w.png")
    run(capsys, "--digits", "8", "--seed", "1", "--invert", "--outfile", "b.png")
    np.testing.assert_allclose(read_png(tmp_path / "b.png"), 1 - read_png(tmp_path / "w.png"), atol=1e-6)
    assert read_png(tmp_path / "b.png")[0, 0] == 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--digits", "1", "10"], "a digit must be between 0 and 9, got 10"),
        (["--digits", "1", "x"], "a digit must be an integer"),
        (["--digits", "1", "3", "--spacing", "5", "2"], "min is greater than max"),
        (["--digits", "1", "2", "3", "--width", "10"], "too narrow"),
        (["--digits", "1", "--outfile", "/nonexistent/x.png"], "does not exist"),
        (["--digits", "1", "--outfile", "x.jpg"], "must end in .png"),
        (["--digits", "1", "--outfile", ""], "output file '' must end in .png"),
        (["--random", "-3"], "--random must be between 1"),
        (["--random", "0"], "--random must be between 1"),
        (["--digits", "1", "--random", "3"], "not allowed with"),
        ([], "one of the arguments --digits --random is required"),
        (["--digits", "1", "--cvae", "2"], "invalid choice"),
        (["--digits", "1", "--seed", "-1"], "--seed must be"),
        (["--digits", "1", "--same-style"], "need --cvae 1"),
        (["--digits", "1", "--denoise", "1.5"], "noise probability must be between 0 and 1"),
        (["--digits", "1", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_one_line_exit_2_no_file(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("generate_png: error:") and message in err
    assert "Traceback" not in err
    assert list(tmp_path.glob("**/*.png")) == []


def test_missing_model_says_so(capsys, tmp_path):
    code, _, err = run(capsys, "--digits", "1", "--cvae", "1", "--model-dir", str(tmp_path / "none"))
    assert code == 1 and "no CVAE model" in err and err.count("\n") == 1
    assert not (tmp_path / "image_out.png").exists()


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"generate_png {__version__}"


def test_fallback_note_is_one_line(capsys):
    code, _, err = run(capsys, "--digits", "4")
    assert code == 0 and err.startswith("generate_png: note: no MNIST files") and err.count("\n") == 1


def test_cvae_options(capsys, tmp_path, random_model):
    base = ["--cvae", "1", "--model-dir", str(random_model), "--seed", "3"]
    assert run(capsys, "--random", "5", *base, "--outfile", "v.png")[0] == 0
    assert read_png(tmp_path / "v.png").shape == (28, 5 * 28 + 4 * 4)
    assert run(capsys, "--digits", "1", "2", *base, "--same-style", "--temperature", "0.5", "--outfile", "s.png")[0] == 0
    assert run(capsys, "--digits", "1", "2", "--denoise", "0.3", "--model-dir", str(random_model), "--outfile", "d.png")[0] == 0


def test_real_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "digitgenerator", "--digits", "0", "7", "--seed", "1", "--outfile", "p.png"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "", "PYTHONPATH": str(__import__("conftest").ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert read_png(tmp_path / "p.png").shape == (28, 60)
    bad = subprocess.run(
        [sys.executable, "-m", "digitgenerator", "--digits", "12"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "", "PYTHONPATH": str(__import__("conftest").ROOT)},
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_failure_prints_only_its_error(capsys, tmp_path):
    code, _, err = run(capsys, "--digits", "1", "--cvae", "1", "--model-dir", str(tmp_path / "nope"))
    assert code == 1 and err.count("\n") == 1 and "note" not in err


def test_width_too_narrow_is_found_before_loading(capsys, monkeypatch):
    import digitgenerator.generator as generator

    monkeypatch.setattr(generator.Digitgenerator, "__init__", lambda *a, **k: pytest.fail("loaded data"))
    code, _, err = run(capsys, "--random", "4", "--width", "50")
    assert code == 2 and "at least 124 pixels" in err


def test_cvae_runs_say_nothing_about_mnist_files(capsys, random_model):
    code, _, err = run(capsys, "--random", "3", "--cvae", "1", "--model-dir", str(random_model), "--outfile", "c.png")
    assert code == 0 and err == ""


def test_python_m_names_itself():
    result = subprocess.run([sys.executable, "-m", "digitgenerator", "--version"], capture_output=True, text=True,
                            env={"PATH": "", "PYTHONPATH": str(__import__("conftest").ROOT)})
    assert result.stdout.strip() == f"python -m digitgenerator {__version__}"


def test_train_help_shows_the_defaults(capsys):
    from digitgenerator.cli import train_main

    assert train_main(["-h"]) == 0
    out = capsys.readouterr().out
    assert "(default: 60)" in out and "(default: 128)" in out and "(default: 0.001)" in out


@pytest.mark.parametrize(
    "args, ok",
    [
        (["--random", "10000", "--help"], True), (["--random", "10001"], False),
        (["--digits", "1", "--cvae", "0"], True), (["--digits", "1", "--cvae", "2"], False),
        (["--digits", "1", "--realistic", "--jitter", "0.5"], True), (["--digits", "1", "--realistic", "--jitter", "10.5"], False),
        (["--digits", "1", "--realistic", "--noise", "0.5"], True), (["--digits", "1", "--realistic", "--noise", "0.51"], False),
        (["--digits", "1", "--realistic", "--blur", "1"], True), (["--digits", "1", "--realistic", "--blur", "1.01"], False),
    ],
)
def test_documented_ranges_are_the_ones_accepted(tmp_path, capsys, args, ok):
    from digitgenerator.cli import build_generate_parser

    parser = build_generate_parser()
    if "--help" in args:
        args = [a for a in args if a != "--help"]
    if ok:
        parser.parse_args(args)
    else:
        assert main([*args, "--outfile", str(tmp_path / "x.png")]) == 2


@pytest.mark.parametrize("args, ok", [(["--epochs", "1"], True), (["--epochs", "0"], False),
                                      (["--learning-rate", "1"], True), (["--learning-rate", "2"], False),
                                      (["--learning-rate", "0"], False), (["--batch-size", "1"], True),
                                      (["--decoder-channels", "256"], True), (["--decoder-channels", "257"], False),
                                      (["--decoder-channels", "0"], False), (["--kl-weight", "0.01"], True),
                                      (["--kl-weight", "10"], True), (["--kl-weight", "0.009"], False),
                                      (["--kl-weight", "nan"], False), (["--kl-weight", "11"], False),
                                      (["--consistency-weight", "0"], True), (["--consistency-weight", "100"], True),
                                      (["--consistency-weight", "-0.1"], False), (["--consistency-weight", "101"], False),
                                      (["--consistency-weight", "inf"], False), (["--label-margin", "off"], True),
                                      (["--label-margin", "0"], True), (["--label-margin", "-1"], False),
                                      (["--label-margin", "none"], False), (["--label-margin", "1001"], False),
                                      (["--latent-dim", "1"], True), (["--latent-dim", "256"], True),
                                      (["--latent-dim", "0"], False), (["--latent-dim", "257"], False),
                                      (["--noisy-share", "0"], True), (["--noisy-share", "1"], True),
                                      (["--noisy-share", "-0.1"], False), (["--noisy-share", "1.1"], False),
                                      (["--noisy-share", "nan"], False)])
def test_train_ranges(capsys, args, ok):
    from digitgenerator.cli import build_train_parser

    assert_parses(build_train_parser(), args, ok)


def assert_parses(parser, args, ok: bool) -> None:
    """The parser accepts args when ok, else refuses them with a usage error."""
    from digitgenerator.cli import UsageError

    if ok:
        parser.parse_args(args)
    else:
        with pytest.raises(UsageError):
            parser.parse_args(args)


def test_slant_and_stroke_zero_write_upright_digits_with_one_pen(tmp_path):
    from digitgenerator import Digitgenerator
    from digitgenerator.handwriting import Handwriting
    from digitgenerator.realistic import Realistic

    assert main(["--digits", "7", "1", "4", "--realistic", "--slant", "0", "--stroke", "0", "--no-paper", "--seed", "3",
                 "--outfile", str(tmp_path / "u.png")]) == 0
    style = Realistic(hand=Handwriting(slant=0, digit_slant=0, stroke=0, digit_stroke=0), paper=None)
    expected = Digitgenerator(seed=3).draw_from_mnist([7, 1, 4], realistic=style)
    np.testing.assert_allclose(read_png(tmp_path / "u.png"), 1 - expected, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize(
    "args, ok",
    [
        (["--count", "5"], False),  # --out is required
        (["--count", "5", "--out", "d", "--length", "1", "1000"], True), (["--count", "5", "--out", "d", "--length", "1", "1001"], False),
        (["--count", "5", "--out", "d", "--thickness", "3"], True), (["--count", "5", "--out", "d", "--thickness", "4"], False),
        (["--count", "5", "--out", "d", "--workers", "1"], True), (["--count", "5", "--out", "d", "--workers", "256"], True),
        (["--count", "5", "--out", "d", "--workers", "257"], False), (["--count", "5", "--out", "d", "--workers", "0"], False),
        (["--count", "1000000000", "--out", "d"], True), (["--count", "5", "--out", "d", "--rotate", "90"], True),
    ],
)
def test_dataset_ranges_are_the_documented_ones(capsys, args, ok):
    from digitgenerator.cli import build_dataset_parser

    assert_parses(build_dataset_parser(), args, ok)


def test_a_cvae_dataset_says_nothing_about_mnist_files(tmp_path, capsys, random_model):
    from digitgenerator.cli import dataset_main

    assert dataset_main(["--count", "3", "--out", str(tmp_path / "c"), "--source", "cvae", "--model-dir", str(random_model),
                         "--mnist-folder", "nothing-1", "--no-progress"]) == 0
    assert "note" not in capsys.readouterr().err
    assert dataset_main(["--count", "3", "--out", str(tmp_path / "m"), "--mnist-folder", "nothing-2", "--no-progress"]) == 0
    assert "note: no MNIST files" in capsys.readouterr().err


def test_a_command_in_an_empty_folder_leaves_only_the_png(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = subprocess.run([sys.executable, "-m", "digitgenerator", "--digits", "2", "0", "2", "6", "--realistic",
                             "--seed", "1", "--outfile", "n.png"], cwd=folder, capture_output=True, text=True,
                            env={"PATH": "", "PYTHONPATH": str(__import__("conftest").ROOT)})
    assert result.returncode == 0, result.stderr
    assert [p.name for p in folder.iterdir()] == ["n.png"]


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import digitgenerator.generator as generator

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generator.Digitgenerator, "__init__", interrupted)
    code, _, err = run(capsys, "--digits", "1")
    assert code == 130 and err == "generate_png: interrupted\n"


def test_documented_defaults_and_edges_of_the_other_commands(capsys):
    from digitgenerator.cli import build_dataset_parser, build_train_parser

    train = build_train_parser().parse_args([])
    assert (train.epochs, train.batch_size, train.learning_rate, train.seed, train.out_dir) == (60, 128, 1e-3, 0, "tf_vae_files")
    data = build_dataset_parser().parse_args(["--count", "3", "--out", "d", "--shard", "0/1"])
    assert data.shard == (0, 1) and data.length == [1, 8] and data.seed == 0 and data.workers == 1
    assert build_dataset_parser().parse_args(["--count", "3", "--out", "d", "--shard", "3/4"]).shard == (3, 4)
    assert main(["--digits", "1", "--realistic", "--height", "7"]) == 2
    assert "--height must be between 8 and 512" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["1/1", "4/4", "0/0", "-1/2", "2/1"])
def test_impossible_shards_are_refused(tmp_path, capsys, shard):
    from digitgenerator.cli import dataset_main

    assert dataset_main(["--count", "5", "--out", str(tmp_path / "d"), "--shard", shard]) == 2
    assert "shard" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_small_augmentations_are_accepted():
    from digitgenerator.cli import build_dataset_parser

    args = build_dataset_parser().parse_args(["--count", "3", "--out", "d", "--rotate", "0.5", "--shear", "0.5", "--elastic", "0.5"])
    assert (args.rotate, args.shear, args.elastic) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("given, address", [("local", "local"), ("10.1.2.3:8786", "tcp://10.1.2.3:8786"),
                                            ("tls://sched.example:443/", "tls://sched.example:443"),
                                            ("tcp://[::1]:8786", "tcp://[::1]:8786")])
def test_dask_addresses_are_read_as_documented(given, address):
    from digitgenerator.cli import build_dataset_parser

    assert build_dataset_parser().parse_args(["--count", "1", "--out", "d", "--dask", given]).dask == address


@pytest.mark.parametrize("given", ["ftp://h:1", "sched", "tcp://h:1/jobs", "tcp://:8786", "h:99999", "h:port", "localhost"])
def test_bad_dask_addresses_give_one_line_and_write_nothing(tmp_path, capsys, given):
    from digitgenerator.cli import dataset_main

    assert dataset_main(["--count", "3", "--out", "d", "--dask", given]) == 2
    err = capsys.readouterr().err
    assert "--dask must be 'local' or a scheduler address like tcp://127.0.0.1:8786" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_dataset_needs_a_count_and_takes_the_smallest_values_of_its_options(tmp_path, capsys):
    from digitgenerator.cli import dataset_main

    assert dataset_main(["--out", "d"]) == 2
    assert "--count" in capsys.readouterr().err and not (tmp_path / "d").exists()
    # 0 is the default of --seed and --thickness, and a value one may type.
    assert dataset_main(["--count", "4", "--out", "a", "--no-progress"]) == 0
    assert dataset_main(["--count", "4", "--out", "b", "--seed", "0", "--thickness", "0", "--no-progress"]) == 0
    assert [(tmp_path / "a" / f).read_bytes() for f in ("manifest.jsonl", "0000003.png")] == \
        [(tmp_path / "b" / f).read_bytes() for f in ("manifest.jsonl", "0000003.png")]


def test_training_defaults_agree_between_the_command_and_the_library():
    """digitgenerator-train, Digitgenerator.train_vaemodel and train.train_cvae train the same model when
    given nothing: their defaults are the same (importing train.py does not import TensorFlow)."""
    import inspect

    from digitgenerator.cli import build_train_parser
    from digitgenerator.generator import Digitgenerator
    from digitgenerator.model import DEFAULT_CONFIG
    from digitgenerator.train import train_cvae

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}

    parser, api, core = build_train_parser(), defaults(Digitgenerator.train_vaemodel), defaults(train_cvae)
    for key in ("epochs", "batch_size", "seed", "learning_rate", "kl_weight", "consistency_weight", "label_margin",
                "noisy_share"):
        assert parser.get_default(key) == api[key] == core[key], key
    assert parser.get_default("decoder_channels") == api["decoder_channels"] == DEFAULT_CONFIG["decoder_channels"]
    assert parser.get_default("latent_dim") == api["latent_dim"] == DEFAULT_CONFIG["latent_dim"]
    assert parser.get_default("out_dir") == api["out_dir"]
