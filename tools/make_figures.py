"""Draw README's pictures into docs/ from the shipped model and the embedded sample.

    python tools/make_figures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitgenerator import Digitgenerator  # noqa: E402
from digitgenerator.png import write_png  # noqa: E402

DOCS = ROOT / "docs"
SCALE = 2  # pixels are repeated so the figures read well on a web page


def grid(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile rows of equal-height images with `gap` background pixels between them."""
    width = max(sum(im.shape[1] for im in row) + gap * (len(row) - 1) for row in rows)
    lines = []
    for row in rows:
        line = np.zeros((row[0].shape[0], width), np.float32)
        x = 0
        for im in row:
            line[:, x : x + im.shape[1]] = im
            x += im.shape[1] + gap
        lines.append(line)
        lines.append(np.zeros((gap, width), np.float32))
    return np.concatenate(lines[:-1])


def save(name: str, image: np.ndarray) -> None:
    write_png(DOCS / name, np.kron(image, np.ones((SCALE, SCALE), np.float32)), invert=True)
    print(DOCS / name)


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    gen = Digitgenerator(preprocessed_folder=DOCS.parent / ".figure-cache", seed=2024)
    save("mnist_sequence.png", gen.draw_from_mnist([2, 0, 2, 6, 1, 1, 2, 4], (2, 6)))
    rng = np.random.default_rng(7)
    sheet = [list(gen.vae.sample(np.full(10, d), rng)) for d in range(10)]
    save("cvae_sheet.png", grid(sheet))
    styles = [gen.sample_from_vae(list(range(10)), (2, 2), style="shared", seed=s) for s in range(4)]
    save("cvae_styles.png", grid([[s] for s in styles]))
    pictures = []
    for p in (0.3, 0.5):
        gen.denoise([3, 1, 4, 1, 5, 9, 2, 6], (2, 2), noise_prob=p, seed=11)
        pictures += [[gen.latest_noisy], [gen.latest], [gen.latest_clean]]
    save("denoise.png", grid(pictures, gap=4))
    # `generate_png --digits 2 0 2 6 --realistic --seed 1`, the same image through the API
    save("realistic_2026.png", np.kron(gen.draw_from_mnist([2, 0, 2, 6], realistic=True, seed=1), np.ones((2, 2), np.float32)))
    number = [4, 0, 2, 3, 1, 9, 7, 5]
    rows = [[gen.draw_from_mnist(number, seed=5)]]  # the box layout, as before --realistic
    rows += [[gen.draw_from_mnist(number, realistic=True, seed=s)] for s in (3, 4, 8, 12, 21)]
    save("realistic.png", grid(rows, gap=6))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
