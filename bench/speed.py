"""Speed of the things users wait for. Prints a Markdown table of medians and ratios.

    python bench/speed.py [--repeat 7] [--quick] [--only webdataset|realistic|png] [--rounds 3]

Run from anywhere once the package is installed (or from the repo root). Each
figure is a median over --repeat runs taken in this one invocation; the cold
command-line times alternate with `python -c "import numpy"` so that both see
the same machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator import Digitgenerator  # noqa: E402
from digitgenerator.data import load_mnist, sample_source  # noqa: E402
from digitgenerator.dataset import DatasetSpec, export  # noqa: E402
from digitgenerator.export import CHUNK  # noqa: E402
from digitgenerator.formats import write_pngs  # noqa: E402
from digitgenerator.spec import make_items  # noqa: E402
from digitgenerator.idx import read_images_and_labels, write_idx  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_command() -> list[str]:
    exe = shutil.which("generate_png")
    return [exe] if exe else [sys.executable, "-m", "digitgenerator"]


def cold_cli(args: list[str], repeat: int, cwd: Path) -> tuple[float, float]:
    """Median wall time of a fresh generate_png process and of `python -c "import numpy"`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = lambda cmd: subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)  # noqa: E731
    run(cli_command() + args)  # warm the digit cache and the OS file cache
    ours, numpy_only = [], []
    for _ in range(repeat):
        for cmd, out in ((cli_command() + args, ours), ([sys.executable, "-c", "import numpy"], numpy_only)):
            start = time.perf_counter()
            run(cmd)
            out.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(numpy_only)


def cvae_rows(gen: Digitgenerator) -> list[tuple[str, str, str, str]]:
    """The shipped CVAE's speed: digits in one batch of 10,000 (7 calls) and 10-digit sequences."""
    vae = gen.vae
    want = gen.rng.integers(0, 10, 10_000)
    vae.sample(want[:100], gen.rng)
    t = median_time(lambda: vae.sample(want, gen.rng), 7)
    rows = [("CVAE digits in batch (10,000 per call)", f"{10_000 / t:,.0f} /s", "", ">= 10,000 /s")]
    if vae.has_margins:
        t = median_time(lambda: vae.sample(want, gen.rng, every_digit=True), 7)
        rows.append(("the same, `every_digit=True`", f"{10_000 / t:,.0f} /s", "", ">= 10,000 /s"))
    n = 100
    seq = median_time(lambda: [gen.sample_from_vae(gen.rng.integers(0, 10, 10), (2, 6)) for _ in range(n)], 3)
    return rows + [("10-digit sequences from the CVAE", f"{n / seq:,.0f} /s", "", "")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="digitgenerator speed figures")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller dataset runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the interleaved export jobs (--only webdataset or realistic, and the WebDataset rows)")
    parser.add_argument("--only", choices=("webdataset", "realistic", "png", "cvae"),
                        help="only the WebDataset export rows, only the --realistic ones, only the PNG encoders on "
                             "realistic images, or only the CVAE's own rows (the shipped model)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only == "cvae":
            print_table(cvae_rows(Digitgenerator(seed=0)))
            return 0
        if args.only:
            only = {"webdataset": (webdataset_rows, 20_000, 100_000), "realistic": (realistic_rows, 2000, 6000),
                    "png": (png_rows, 500, 2000)}
            rows_of, quick, full = only[args.only]
            print_table(rows_of(tmp, quick if args.quick else full, args.rounds))
            return 0
        ours, base = cold_cli(["--digits", "1", "3", "5", "--outfile", "a.png"], args.repeat, tmp)
        rows.append(("cold `generate_png --digits 1 3 5`", f"{ours * 1000:.0f} ms", f"{ours / base:.2f}x `import numpy` ({base * 1000:.0f} ms)", "<= 3x"))
        ours, base = cold_cli(["--random", "5", "--cvae", "1", "--seed", "3", "--outfile", "b.png"], args.repeat, tmp)
        rows.append(("cold `generate_png --random 5 --cvae 1 --seed 3`", f"{ours * 1000:.0f} ms", f"{ours / base:.2f}x `import numpy` ({base * 1000:.0f} ms)", "<= 4x"))

        # 60,000 digits: the embedded sample tiled 12 times, cached once, then timed warm.
        images, labels = read_images_and_labels(sample_source().images, sample_source().labels)
        big = tmp / "mnist60k"
        big.mkdir()
        write_idx(big / "train-images-idx3-ubyte", np.tile(images, (12, 1, 1)))
        write_idx(big / "train-labels-idx1-ubyte", np.tile(labels, 12))
        load_mnist(big, tmp / "cache")
        start_up = median_time(lambda: Digitgenerator(big, tmp / "cache"), args.repeat)
        rows.append(("`Digitgenerator()` start-up, warm cache of 60,000", f"{start_up * 1000:.1f} ms", "", "<= 50 ms"))

        gen = Digitgenerator(big, tmp / "cache", seed=0)
        n = 2000
        seq = median_time(lambda: [gen.draw_from_mnist(gen.rng.integers(0, 10, 10), (2, 6)) for _ in range(n)], 3)
        rows.append(("10-digit sequences from MNIST", f"{n / seq:,.0f} /s", "", ""))
        seq = median_time(lambda: [gen.draw_from_mnist(gen.rng.integers(0, 10, 10), realistic=True) for _ in range(n)], 3)
        rows.append(("10-digit realistic numbers from MNIST (API)", f"{n / seq:,.0f} /s", "", ""))

        rows += cvae_rows(gen)

        # Export writes one file per image, so the file system matters as much as the CPU:
        # measured on this disk (the temporary folder) and, where there is one, in memory.
        count = 2000 if args.quick else 6000
        places = [("disk", tmp)] + ([("tmpfs", Path("/dev/shm"))] if Path("/dev/shm").is_dir() else [])
        jobs = [(place, folder, "mnist", False, w) for place, folder in places for w in (1, 2)]
        jobs += [(place, folder, "mnist", True, w) for place, folder in places for w in (1, 2)]
        jobs += [("disk", tmp, "cvae", False, w) for w in (1, 2)]
        targets = {("mnist", False): ">= 2,000 /s per core", ("mnist", True): ">= 1,500 /s per core"}
        for place, folder, source, realistic, workers in jobs:
            spec = DatasetSpec(count=count if source == "mnist" else count // 4, length=(8, 8), source=source,
                               realistic=realistic)
            out = Path(tempfile.mkdtemp(dir=folder, prefix="digitgenerator-bench-"))
            start = time.perf_counter()
            export(spec, out, workers=workers, mnist_folder=big, preprocessed_folder=tmp / "cache", progress=False)
            rate = spec.count / (time.perf_counter() - start)
            shutil.rmtree(out)
            what = f"{source}, --realistic" if realistic else source
            rows.append((f"dataset export to {place}, 8 digits, {what}, {workers} worker(s)", f"{rate:,.0f} images/s",
                         f"{rate / workers:,.0f} /s per worker", targets.get((source, realistic), "")))

        rows += webdataset_rows(tmp, 20_000 if args.quick else 100_000, args.rounds)
    print_table(rows)
    return 0


def timed_rounds(runs: list[tuple], job, rounds: int) -> dict[tuple, list[float]]:
    """Seconds of `job(run, out)` for each run, `rounds` rounds with the runs interleaved so that
    all of them see the same machine load; each into a fresh folder `run[0]` gives, removed after."""
    times: dict[tuple, list[float]] = {run: [] for run in runs}
    for _ in range(rounds):
        for run in runs:
            out = Path(tempfile.mkdtemp(dir=run[0], prefix="digitgenerator-bench-"))
            start = time.perf_counter()
            job(run, out)
            times[run].append(time.perf_counter() - start)
            shutil.rmtree(out)
    return times


def rate_cells(count: int, seconds: list[float]) -> tuple[float, str]:
    """The median rate of `count` images in these times, and its table cell with every run's rate."""
    rate = count / statistics.median(seconds)
    return rate, f"{rate:,.0f} images/s (runs: {', '.join(f'{count / t:,.0f}' for t in seconds)})"


def webdataset_rows(tmp: Path, count: int, rounds: int) -> list[tuple[str, ...]]:
    """`digitgenerator-dataset --count N --length 8 8 --format webdataset`: one and two workers, and Dask.

    Whole jobs, start-up included (a Dask cluster's too), medians of interleaved
    rounds (`timed_rounds`); each ratio a ratio of medians.
    """
    spec = DatasetSpec(count=count, length=(8, 8))
    runs = [(tmp, "local processes", 1, None), (tmp, "local processes", 2, None)]
    if importlib.util.find_spec("distributed") is not None:
        runs += [(tmp, "--dask local", 1, "local"), (tmp, "--dask local", 2, "local")]
    times = timed_rounds(runs, lambda run, out: export(spec, out, workers=run[2], progress=False, format="webdataset",
                                                       dask=run[3]), rounds)
    rates = {run[1:3]: rate_cells(count, times[run]) for run in runs}
    rows = []
    for _, how, workers, dask in runs:
        rate, cell = rates[how, workers]
        speed_up = f", {rate / rates['local processes', 1][0]:.2f}x one worker" if workers > 1 else ""
        if dask and workers > 1:
            speed_up += f", {rate / rates[how, 1][0]:.2f}x one Dask worker"
        rows.append((f"webdataset export to disk, {count:,} x 8 digits, mnist, {how}, {workers} worker(s)",
                     cell, f"{rate / workers:,.0f} /s per worker{speed_up}",
                     ">= 5,000 /s per core" + ("; 2 workers >= 1.7x" if workers > 1 else "")))
    return rows


def realistic_rows(tmp: Path, count: int, rounds: int) -> list[tuple[str, ...]]:
    """`digitgenerator-dataset --count N --length 8 8 --realistic`, PNG files on disk and tmpfs and
    WebDataset shards on disk, one and two workers, and the images alone made and written in this
    process: medians of interleaved rounds (`timed_rounds`)."""
    spec = DatasetSpec(count=count, length=(8, 8), realistic=True)
    places = [("disk", tmp)] + ([("tmpfs", Path("/dev/shm"))] if Path("/dev/shm").is_dir() else [])
    runs = [(folder, f"PNG files on {place}", "png", w) for place, folder in places for w in (1, 2)]
    runs += [(tmp, "WebDataset shards (8 per job) on disk", "webdataset", w) for w in (1, 2)]
    # The images alone: made and written by this process, without a worker pool's start-up or the
    # job's files and manifest (what each image costs).
    runs.append((places[-1][1], f"PNG files on {places[-1][0]}, in this process (no pool, no manifest)", "in-process", 1))
    gen = Digitgenerator()

    def job(run, out):
        if run[2] == "in-process":
            for indices in chunks(count):
                write_pngs(out, spec, indices, make_items(gen, spec, indices, as_uint8=True))
            return
        shards = {"shard_size": max(1, count // 8)} if run[2] == "webdataset" else {}  # work for both workers
        export(spec, out, workers=run[3], progress=False, format=run[2], **shards)

    export(spec, Path(tempfile.mkdtemp(dir=tmp)), progress=False)  # warm the caches and the code paths
    times = timed_rounds(runs, job, rounds)
    rows = []
    for run in runs:
        rate, cell = rate_cells(count, times[run])
        rows.append((f"--realistic export, {count:,} x 8 digits, {run[1]}, {run[3]} worker(s)", cell,
                     f"{rate / run[3]:,.0f} /s per worker", ">= 1,500 /s per core"))
    return rows


def chunks(count: int) -> list[range]:
    """Indices 0..count-1 in the dataset's units of CHUNK images."""
    return [range(start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]


def png_rows(tmp: Path, count: int, rounds: int) -> list[tuple[str, ...]]:
    """The compressors a PNG of scanned paper could use, on `count` 8-digit --realistic images:
    microseconds per image (median of `rounds` x 3 interleaved passes), mean file size, and the
    ratio of each time to zlib's Huffman coding (the choice before ISA-L)."""
    import zlib

    from digitgenerator.png import encode_png

    spec = DatasetSpec(count=count, length=(8, 8), realistic=True)
    gen = Digitgenerator()
    grays = [item[0] for indices in chunks(count) for item in make_items(gen, spec, indices, as_uint8=True)]
    encoders = {
        "zlib level 1, default strategy": lambda g: encode_png(g, 1),
        "zlib level 1, Huffman coding only": lambda g: encode_png(g, 1, zlib.Z_HUFFMAN_ONLY),
        "zlib level 1, run lengths only": lambda g: encode_png(g, 1, zlib.Z_RLE),
        **{f"ISA-L level {level}" + (" (the dataset's)" if level == 1 else ""): (lambda g, level=level: encode_png(g, level, engine="isal"))
           for level in (0, 1, 2)},
    }
    times: dict[str, list[float]] = {name: [] for name in encoders}
    sizes: dict[str, float] = {}
    for _ in range(3 * rounds):
        for name, encode in encoders.items():
            start = time.perf_counter()
            files = [encode(g) for g in grays]
            times[name].append((time.perf_counter() - start) / count * 1e6)
            sizes[name] = float(np.mean([len(f) for f in files]))
    base = statistics.median(times["zlib level 1, Huffman coding only"])
    rows = []
    for name in encoders:
        us, size = statistics.median(times[name]), sizes[name]
        rows.append((f"PNG of an 8-digit --realistic image, {name}", f"{us:.0f} us, {size:,.0f} bytes", f"{us / base:.2f}x Huffman-only time", ""))
    return rows


def print_table(rows) -> None:
    print(f"digitgenerator speed, {os.cpu_count()} cores, Python {sys.version.split()[0]}, numpy {np.__version__}\n")
    print("| what | median | ratio | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
