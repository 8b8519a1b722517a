"""Command lines: generate_png (images) and digitgenerator-train (the CVAE).

Each is a thin `main(argv) -> int` over the library: argument errors print one
line on stderr and return 2, runtime errors one line and return 1; nothing is
written unless everything before the write succeeded.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import __version__, checks
from .compose import MAX_WIDTH
from .model import (DEFAULT_CONFIG, LABEL_MARGIN, MAX_CONSISTENCY_WEIGHT, MAX_DECODER_CHANNELS, MAX_KL_WEIGHT,
                    MAX_LABEL_MARGIN, MAX_LATENT_DIM, MIN_KL_WEIGHT, NOISY_SHARE)

USAGE_ERROR = 2
RUNTIME_ERROR = 1


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and never exits."""

    def error(self, message):
        raise UsageError(message)

    def exit(self, status=0, message=None):
        if message:
            print(message, end="", file=sys.stderr if status else sys.stdout)
        raise _Exit(status)


class UsageError(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status):
        self.status = status


def _int_in(low: int, high: int | None, what: str):
    return checks.arg(int, what, low, high)


def _float_in(low: float, high: float | None, what: str):
    return checks.arg(float, what, low, high)


def _folder(flag: str):
    """An argparse type: a folder path that is or can be made (checks.output_folder), as typed."""
    def parse(text: str) -> str:
        try:
            checks.output_folder(text, flag)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    parse.__name__ = flag
    return parse


def _quiet_about_the_sample() -> None:
    """The digits come from the CVAE: where MNIST was found does not concern the user."""
    from .data import EmbeddedSampleWarning

    warnings.simplefilter("ignore", EmbeddedSampleWarning)


def _run(prog: str, build, work, argv) -> int:
    """Parse, run, and turn every expected failure into one line on stderr.

    Warnings (such as the embedded-sample note) are held back and printed as
    "prog: note: ..." lines after a success; a failure prints only its error.
    """
    parser = build(prog)
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("default")
            code = work(args)
        for note in notes:
            print(f"{prog}: note: {note.message}", file=sys.stderr)
        return code
    except _Exit as exc:
        return exc.status
    except (UsageError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (OSError, ModuleNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return RUNTIME_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


# The handwriting and paper flags: each adjusts one part of --realistic (None: the recommended value),
# named as the Handwriting and Paper fields they set.
HAND_FLAGS = ("gap", "digit_gap", "jitter", "scale", "slant", "stroke", "height")
PAPER_FLAGS = ("guides", "noise", "blur", "sharpen")
REALISTIC_FLAGS = (*HAND_FLAGS, *PAPER_FLAGS, "no_paper")


def _realistic_options(parser) -> None:
    from .handwriting import MAX_GAP, MAX_HEIGHT, MAX_SCALE, MAX_SLANT, MAX_STROKE, Handwriting
    from .paper import GUIDES, MAX_BLUR, MAX_NOISE, MAX_SHARPEN, Paper

    hand, paper = Handwriting(), Paper()  # the recommended mix: its values are the defaults shown

    g = parser.add_argument_group("handwriting (with --realistic; each flag overrides one part of the mix)")
    g.add_argument("--realistic", action="store_true",
                   help="numbers as people write them (touching digits, baseline jitter, one slant and stroke) on scanned paper, black on white")
    g.add_argument("--gap", nargs=2, type=_int_in(-MAX_GAP, MAX_GAP, "gap"), metavar=("MIN", "MAX"),
                   help=f"pixels between neighbouring digits' ink, negative = overlapping; every gap lies here (default: {hand.gap[0]} {hand.gap[1]})")
    g.add_argument("--digit-gap", type=_int_in(0, MAX_GAP, "--digit-gap"), metavar="PX",
                   help=f"a writer's spacing: a number's gaps vary up to +/-PX about its own, within --gap (default: {hand.digit_gap})")
    g.add_argument("--jitter", type=_float_in(0, 10, "--jitter"), metavar="PX", help=f"each digit up to +/-PX off the baseline (default: {hand.jitter:g})")
    g.add_argument("--scale", nargs=2, type=_float_in(0.3, MAX_SCALE, "scale"), metavar=("MIN", "MAX"),
                   help=f"size of the number relative to an MNIST digit (default: {hand.scale[0]:g} {hand.scale[1]:g})")
    g.add_argument("--slant", type=_float_in(0, MAX_SLANT, "--slant"), metavar="DEG", help=f"the number's slant up to +/-DEG degrees (default: {hand.slant:g})")
    g.add_argument("--stroke", type=_float_in(0, MAX_STROKE, "--stroke"), metavar="PX", help=f"the number's stroke width change up to +/-PX (default: {hand.stroke:g})")
    g.add_argument("--height", type=_int_in(8, MAX_HEIGHT, "--height"), help=f"image height in pixels (default: {hand.height})")
    g.add_argument("--guides", choices=GUIDES, help=f"printed guides: a rule under the number, comb boxes, none, or a mix (default: {paper.guides})")
    g.add_argument("--noise", type=_float_in(0, MAX_NOISE, "--noise"), metavar="SIGMA", help=f"scanner grain up to SIGMA (default: {paper.noise:g})")
    g.add_argument("--blur", type=_float_in(0, MAX_BLUR, "--blur"), metavar="B", help=f"scanner blur up to B, 0-{MAX_BLUR:g} (default: {paper.blur:g})")
    g.add_argument("--sharpen", type=_float_in(0, MAX_SHARPEN, "--sharpen"), metavar="S",
                   help=f"scanner sharpening (unsharp mask) up to S, 0-{MAX_SHARPEN:g}; each scan draws from sharpen S to blur B (default: {paper.sharpen:g})")
    g.add_argument("--no-paper", action="store_true", default=None, help="the handwriting layout alone: no paper tone, texture, guides or scan")


def _realistic_from_args(args):
    """The Realistic config the flags ask for, or None; a part's flag without --realistic is a usage error."""
    given = [name for name in REALISTIC_FLAGS if getattr(args, name) is not None]
    if not args.realistic:
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} needs --realistic")
        return None
    from dataclasses import replace

    from .realistic import Realistic

    mix = Realistic()
    hand = {k: getattr(args, k) for k in HAND_FLAGS if getattr(args, k) is not None}
    hand = {k: tuple(v) if isinstance(v, list) else v for k, v in hand.items()}
    # The per-digit wobble never exceeds the number's own range: --slant 0 writes upright digits.
    for part in ("slant", "stroke"):
        if part in hand:
            hand[f"digit_{part}"] = min(getattr(mix.hand, f"digit_{part}"), hand[part])
    paper = {k: getattr(args, k) for k in PAPER_FLAGS if getattr(args, k) is not None}
    if args.no_paper and paper:
        raise UsageError(f"--{next(iter(paper))} is a paper option; leave out --no-paper")
    return Realistic(replace(mix.hand, **hand), None if args.no_paper else replace(mix.paper, **paper))


def _data_options(parser) -> None:
    from .data import DEFAULT_PREPROCESSED_FOLDER

    parser.add_argument("--mnist-folder", default="mnist_data", help="folder with MNIST IDX files (default: mnist_data; $DIGITGENERATOR_MNIST_DATA)")
    parser.add_argument("--cache-dir", default=DEFAULT_PREPROCESSED_FOLDER,
                        help="where the cache of downloaded digits is kept (default: $DIGITGENERATOR_CACHE, else the user cache folder)")


def build_generate_parser(prog: str = "generate_png") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Write a PNG of a handwritten digit sequence.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--digits", nargs="+", type=_int_in(0, 9, "a digit"), metavar="D", help="the digits to write, 0-9")
    what.add_argument("--random", type=_int_in(1, 10_000, "--random"), metavar="N", help="write N random digits")
    p.add_argument("--spacing", nargs=2, type=_int_in(0, MAX_WIDTH, "spacing"), default=None, metavar=("MIN", "MAX"),
                   help="pixels between digits, each gap drawn from MIN..MAX inclusive (default: 4 4)")
    p.add_argument("--width", type=_int_in(0, MAX_WIDTH, "--width"), default=None,
                   help="exact image width in pixels (default or 0: natural width)")
    p.add_argument("--stretch", action="store_true", help="resize the digits when --width is too narrow or wide for the spacing")
    p.add_argument("--ink-spacing", action="store_true", help="measure spacing between ink, not between 28-pixel boxes")
    p.add_argument("--cvae", type=int, choices=(0, 1), default=0, help="1: digits written by the CVAE instead of real MNIST digits")
    p.add_argument("--same-style", action="store_true", help="with --cvae 1: the whole sequence in one handwriting")
    p.add_argument("--temperature", type=float, default=1.0, help="with --cvae 1: spread of the handwriting (default 1)")
    p.add_argument("--every-digit", action="store_true",
                   help="with --cvae 1: also the handwritings the model nearly reads as another digit (better OCR training data)")
    p.add_argument("--denoise", type=_float_in(0.0, 1.0, "noise probability"), default=None, metavar="P",
                   help="real digits corrupted with noise probability P, then cleaned by the CVAE")
    p.add_argument("--outfile", default="image_out.png", help="PNG file to write (default: image_out.png)")
    p.add_argument("--invert", action="store_true", help="black ink on white paper (with --realistic, which is already: white on black)")
    p.add_argument("--seed", type=_int_in(0, None, "--seed"), default=None, help="random seed: same seed, same image")
    p.add_argument("--model-dir", default=None, help="CVAE folder (default: ./tf_vae_files, else the shipped model)")
    _realistic_options(p)
    _data_options(p)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _box_spacing(args) -> tuple[int, int]:
    """--spacing (default 4 4); it belongs to the box layout, not to --realistic."""
    if args.realistic and (args.spacing is not None or args.ink_spacing):
        flag = "--spacing" if args.spacing is not None else "--ink-spacing"
        raise UsageError(f"{flag} applies to the box layout; with --realistic set the gaps with --gap MIN MAX")
    return tuple(args.spacing) if args.spacing is not None else (4, 4)


def _check_outfile(path) -> None:
    """An output path that cannot be written is a usage error, found before any work."""
    from .atomic import remove_stale_temporaries
    from .png import check_png_path

    try:
        path = check_png_path(path)
    except OSError as exc:
        raise UsageError(str(exc)) from None
    remove_stale_temporaries(path.parent)  # left by a generate_png killed between write and rename


def _generate(args) -> int:
    from .compose import check_spacing, plan_layout
    from .data import IMAGE_SIZE
    from .generator import Digitgenerator, make_rng
    from .png import write_png

    spacing = check_spacing(_box_spacing(args))
    realistic = _realistic_from_args(args)
    _check_outfile(args.outfile)
    if args.cvae == 0 and (args.same_style or args.temperature != 1.0 or args.every_digit):
        raise UsageError("--same-style, --temperature and --every-digit need --cvae 1")
    if args.every_digit and (args.same_style or realistic is not None):
        raise UsageError("--every-digit draws each digit's own handwriting; leave out --same-style and --realistic")
    if args.cvae == 1 and args.denoise is not None:
        raise UsageError("--denoise already uses the CVAE; leave out --cvae 1")
    if realistic is not None and args.denoise is not None:
        raise UsageError("--denoise shows the CVAE's cleaning in the box layout; leave out --realistic")
    fit = "stretch" if args.stretch else "pad"
    width = args.width
    count = len(args.digits) if args.digits is not None else args.random
    if not args.ink_spacing and realistic is None:  # a width the digits cannot fit is a usage error: say so before loading anything
        plan_layout([IMAGE_SIZE] * count, spacing, width, make_rng(0), fit)
    rng = make_rng(args.seed)
    if args.cvae:
        _quiet_about_the_sample()
    gen = Digitgenerator(args.mnist_folder, args.cache_dir, seed=rng, model_dir=args.model_dir)
    digits = args.digits if args.digits is not None else rng.integers(0, 10, args.random).tolist()
    if args.denoise is not None:
        image = gen.denoise(digits, spacing, width, args.denoise, fit=fit)
    elif args.cvae:
        style = "shared" if args.same_style else None
        image = gen.sample_from_vae(digits, spacing, width, style=style, temperature=args.temperature,
                                    fit=fit, ink_spacing=args.ink_spacing, realistic=realistic, every_digit=args.every_digit)
    else:
        image = gen.draw_from_mnist(digits, spacing, width, fit=fit, ink_spacing=args.ink_spacing, realistic=realistic)
    path = write_png(args.outfile, image, args.invert != (realistic is not None))
    print(f"{path}: {''.join(map(str, digits))} ({image.shape[0]} x {image.shape[1]} px)")
    return 0


def main(argv=None, prog: str = "generate_png") -> int:
    """generate_png: write a PNG of a digit sequence."""
    return _run(prog, build_generate_parser, _generate, argv)


def build_train_parser(prog: str = "digitgenerator-train") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Train the conditional VAE on the loaded MNIST digits (needs TensorFlow).",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=_int_in(1, 100_000, "--epochs"), default=60, help="passes over the digits")
    p.add_argument("--batch-size", type=_int_in(1, 100_000, "--batch-size"), default=128, help="digits per step")
    p.add_argument("--learning-rate", type=_float_in(1e-7, 1.0, "--learning-rate"), default=1e-3, help="Adam's step size")
    p.add_argument("--seed", type=_int_in(0, None, "--seed"), default=0, help="same seed, same model")
    p.add_argument("--decoder-channels", type=_int_in(1, MAX_DECODER_CHANNELS, "--decoder-channels"),
                   default=DEFAULT_CONFIG["decoder_channels"],
                   help="channels of the decoder's 7x7 and 14x14 feature maps")
    p.add_argument("--latent-dim", type=_int_in(1, MAX_LATENT_DIM, "--latent-dim"), default=DEFAULT_CONFIG["latent_dim"],
                   help="values per latent (more: reconstructions hold more detail)")
    p.add_argument("--noisy-share", type=_float_in(0.0, 1.0, "--noisy-share"), default=NOISY_SHARE, metavar="SHARE",
                   help="share of the digits whose encoder input is corrupted, so that the model also denoises "
                        "(0: a generator only, which denoises worse)")
    p.add_argument("--kl-weight", type=_float_in(MIN_KL_WEIGHT, MAX_KL_WEIGHT, "--kl-weight"), default=1.0, metavar="BETA",
                   help="weight of the KL term in the loss (beta-VAE; 1 is the ELBO; the shipped model has 0.2: sharper digits "
                        "whose latents also carry the label, README's Quality)")
    p.add_argument("--consistency-weight", type=_float_in(0.0, MAX_CONSISTENCY_WEIGHT, "--consistency-weight"), default=0.0,
                   metavar="LAMBDA",
                   help="weight of the label-consistency term: a frozen reader must see the label asked for in each digit's "
                        "hand decoded under another label (0: off; the shipped model has 10, with --kl-weight 0.2)")
    p.add_argument("--label-margin", type=_margin, default=LABEL_MARGIN, metavar="NATS",
                   help="training digits the model reads as their label by no more than this many nats (ELBO) are left "
                        "out when sampling, unless --every-digit asks for them; 'off' stores no margins (every digit always)")
    p.add_argument("--out-dir", type=_folder("--out-dir"), default="tf_vae_files",
                   help="where the finished cvae.npz and config.json go (per-epoch checkpoints in OUT_DIR/checkpoint/)")
    p.add_argument("--refit-prior", action="store_true",
                   help="do not train: refit the sampling prior of the model in OUT_DIR to the loaded digits "
                        "(for a model saved before 1.2.0; no TensorFlow needed)")
    _data_options(p)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _margin(text: str) -> float | None:
    """--label-margin: 'off', or nats from 0 to MAX_LABEL_MARGIN."""
    if text.strip().lower() == "off":
        return None
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--label-margin must be a number of nats or 'off', got {text!r}") from None
    return _float_in(0.0, MAX_LABEL_MARGIN, "--label-margin")(text)


def _train(args) -> int:
    from .generator import Digitgenerator

    gen = Digitgenerator(args.mnist_folder, args.cache_dir)
    if args.refit_prior:
        from .train import refit_prior

        config = refit_prior(args.out_dir, gen.images, gen.labels, args.label_margin)
        unclear = (f"; {config['prior_unclear_digits']} read by no more than the {config['prior_label_margin']:g}-nat "
                   "margin, left out unless --every-digit") if "prior_unclear_digits" in config else ""
        print(f"refitted the prior of {args.out_dir}/cvae.npz to {len(gen.labels)} digits "
              f"({config['prior_components']} per label, sharpness {config['sharpness']}{unclear})")
        return 0
    print(f"training on {len(gen.labels)} digits from {gen.source.images}", file=sys.stderr)
    config = gen.train_vaemodel(args.epochs, args.batch_size, seed=args.seed, out_dir=args.out_dir,
                                learning_rate=args.learning_rate, decoder_channels=args.decoder_channels,
                                kl_weight=args.kl_weight, consistency_weight=args.consistency_weight,
                                label_margin=args.label_margin, latent_dim=args.latent_dim,
                                noisy_share=args.noisy_share)
    print(f"saved {args.out_dir}/cvae.npz (reconstruction {config['final_reconstruction']:.2f}, KL {config['final_kl']:.2f})")
    return 0


def train_main(argv=None) -> int:
    """digitgenerator-train: train the CVAE."""
    return _run("digitgenerator-train", build_train_parser, _train, argv)


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like I/N (e.g. 0/4), got {text!r}") from None
    from .dataset import check_shard

    try:
        return check_shard((i, n))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dask_address(text: str) -> str:
    """'local', or a scheduler address: tcp://HOST:PORT (also tls://, or HOST:PORT)."""
    from urllib.parse import urlsplit

    if text == "local":
        return text
    url = urlsplit(text if "://" in text else "tcp://" + text)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme not in ("tcp", "tls") or not url.hostname or port is None or url.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"--dask must be 'local' or a scheduler address like tcp://127.0.0.1:8786, got {text!r}")
    return f"{url.scheme}://{url.netloc}"


def build_dataset_parser(prog: str = "digitgenerator-dataset") -> argparse.ArgumentParser:
    from .formats import DEFAULT_SHARD_SIZE, FORMATS, MAX_SHARD_SIZE
    from .spec import MAX_COUNT, MAX_LENGTH

    p = OneLineParser(prog=prog, description="Write N labelled digit-sequence images and a JSON Lines manifest, for OCR training.")
    p.add_argument("--count", "-n", type=_int_in(0, MAX_COUNT, "--count"), required=True, help="number of images (whole job, all shards)")
    p.add_argument("--out", type=_folder("--out"), required=True, help="output folder (created); re-run the same command to resume")
    p.add_argument("--length", nargs=2, type=_int_in(1, MAX_LENGTH, "length"), default=[1, 8], metavar=("MIN", "MAX"), help="digits per image (default: 1 8)")
    p.add_argument("--spacing", nargs=2, type=_int_in(0, MAX_WIDTH, "spacing"), default=None, metavar=("MIN", "MAX"), help="pixels between digits (default: 4 4)")
    p.add_argument("--width", type=_int_in(0, MAX_WIDTH, "--width"), default=None, help="exact image width (default: natural)")
    p.add_argument("--stretch", action="store_true", help="resize digits to meet --width when spacing cannot")
    p.add_argument("--ink-spacing", action="store_true", help="spacing measured between ink rather than 28-pixel boxes")
    p.add_argument("--source", choices=("mnist", "cvae"), default="mnist", help="real MNIST digits or CVAE samples (default: mnist)")
    p.add_argument("--every-digit", action="store_true",
                   help="with --source cvae: also the handwritings the model nearly reads as another digit (better OCR training data)")
    p.add_argument("--invert", action="store_true", help="black ink on white (with --realistic, which is already: white on black)")
    p.add_argument("--rotate", type=_float_in(0.0, None, "--rotate"), default=0.0, metavar="DEG", help="random rotation up to +/-DEG degrees")
    p.add_argument("--shear", type=_float_in(0.0, None, "--shear"), default=0.0, metavar="DEG", help="random shear up to +/-DEG degrees")
    p.add_argument("--elastic", type=_float_in(0.0, None, "--elastic"), default=0.0, metavar="ALPHA", help="elastic distortion (Simard et al. 2003): the smoothed field's scale; pixels move about ALPHA/20 (a digit's furthest about ALPHA/7); Simard used 34")
    p.add_argument("--thickness", type=_int_in(0, 3, "--thickness"), default=0, metavar="PX", help="random stroke thickening/thinning up to PX pixels")
    p.add_argument("--seed", type=_int_in(0, None, "--seed"), default=0, help="same seed, same dataset (default: 0)")
    p.add_argument("--workers", type=_int_in(1, 256, "--workers"), default=1, help="worker processes (default: 1)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="write only part I of N of the job (0-based), for one machine of N")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png: a PNG per image and a manifest; webdataset: tar shards of PNG + JSON samples (default: png)")
    p.add_argument("--shard-size", type=_int_in(1, MAX_SHARD_SIZE, "--shard-size"), default=None, metavar="N",
                   help=f"with --format webdataset: images per tar shard (default: {DEFAULT_SHARD_SIZE})")
    p.add_argument("--dask", type=_dask_address, default=None, metavar="ADDRESS",
                   help="run on a Dask cluster: tcp://HOST:PORT of its scheduler, or 'local' for --workers processes here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--model-dir", default=None, help="CVAE folder for --source cvae")
    _realistic_options(p)
    _data_options(p)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _dataset(args) -> int:
    from .augment import Augment
    from .dataset import DatasetSpec, export
    from .formats import DEFAULT_SHARD_SIZE

    if args.shard_size is not None and args.format != "webdataset":
        raise UsageError("--shard-size applies to --format webdataset")
    shard_size = DEFAULT_SHARD_SIZE if args.shard_size is None else args.shard_size
    if args.every_digit and (args.source != "cvae" or args.realistic):
        raise UsageError("--every-digit needs --source cvae, without --realistic (whose numbers share one handwriting)")
    if args.source == "cvae":
        _quiet_about_the_sample()
    spec = DatasetSpec(
        count=args.count, length=tuple(args.length), spacing=_box_spacing(args), width=args.width,
        source=args.source, invert=args.invert, ink_spacing=args.ink_spacing,
        fit="stretch" if args.stretch else "pad", seed=args.seed,
        augment=Augment(rotate=args.rotate, shear=args.shear, elastic=args.elastic, thickness=args.thickness),
        realistic=_realistic_from_args(args), every_digit=args.every_digit,
    )
    if args.dask is not None and args.shard != (0, 1):
        raise UsageError("--dask runs the whole job across the cluster; leave out --shard")
    result = export(spec, args.out, args.shard, args.workers, args.mnist_folder, args.cache_dir,
                    args.model_dir, progress=not args.no_progress, format=args.format,
                    shard_size=shard_size, dask=args.dask)
    if args.format == "png":
        with open(result, encoding="utf-8") as f:
            print(f"{result}: {sum(1 for _ in f)} images")
    else:
        shards = sorted(result.glob("shard-*.tar"))
        print(f"{result}: {len(shards)} tar shards of up to {shard_size} images")
    return 0


def dataset_main(argv=None) -> int:
    """digitgenerator-dataset: export a synthetic OCR dataset."""
    return _run("digitgenerator-dataset", build_dataset_parser, _dataset, argv)
