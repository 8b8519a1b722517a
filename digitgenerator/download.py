"""digitgenerator-download: the four MNIST files into the user data folder, checksummed.

The files, their SHA-256 and the mirrors come from `mnist_resources.txt`, the
table load_mnist.sh reads too. Each file is fetched from the first mirror that
sends the right bytes, into a temporary file that is renamed into place only
once its checksum holds (scikit-learn's datasets do the same); a file already
there with the right checksum is not fetched again. The loader searches this
folder after `mnist_folder`, so every later command uses all 60,000 digits.
"""

from __future__ import annotations

import argparse
import os
import urllib.error
import urllib.request
from pathlib import Path

from . import __version__, checks
from .atomic import atomic_path
from .data import data_home, file_sha256, mnist_resources

MIRRORS_ENV = "MNIST_MIRRORS"  # space-separated base URLs in place of the table's (load_mnist.sh reads it too)
DEFAULT_TIMEOUT = 10  # seconds without an answer before a mirror is given up
MAX_TIMEOUT = 9999
BLOCK = 1 << 16


def _fetch(url: str, target: Path, digest: str, timeout: float) -> None:
    """Fetch url into target through a temporary file; _Skip saying why when that fails."""
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer, open(tmp, "wb") as f:
                for block in iter(lambda: answer.read(BLOCK), b""):
                    f.write(block)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Skip(f"did not answer or refused ({reason})", unreachable=True) from None
        if file_sha256(tmp) != digest:
            raise _Skip("sent a file with the wrong checksum")


class _Skip(Exception):
    """This mirror failed for this file; try the next (and, when it is unreachable, skip it from now on)."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def download(folder: str | os.PathLike | None = None, mirrors: list[str] | None = None,
             files: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, log=print) -> Path:
    """Put the MNIST files (all four, or `files`) into `folder` (default `data_home()`); the folder.

    OSError naming the files no mirror gave a good copy of; ValueError for an unknown file name.
    """
    table_mirrors, table = mnist_resources()
    mirrors = mirrors or (os.environ.get(MIRRORS_ENV, "").split() or table_mirrors)
    unknown = [name for name in files or [] if name not in table]
    if unknown:
        raise ValueError(f"unknown file {unknown[0]} (known: {' '.join(table)})")
    dest = data_home(folder)
    dest.mkdir(parents=True, exist_ok=True)
    failed, why, unreachable = [], {}, set()
    for name in files or list(table):
        target, digest = dest / name, table[name]
        if target.is_file() and file_sha256(target) == digest:
            log(f"{name}: already there, checksum ok")
            continue
        for base in mirrors:
            base = base.rstrip("/") + "/"
            if base in unreachable:  # offline, each file would wait out the timeout again
                continue
            try:
                _fetch(base + name, target, digest, timeout)
            except _Skip as reason:
                why.setdefault(base, str(reason))
                if reason.unreachable:
                    unreachable.add(base)
                continue
            log(f"{name}: downloaded from {base}, checksum ok")
            break
        else:
            failed.append(name)
    if failed:  # one line: what is missing, and what each mirror said first
        said = "; ".join(f"{base} {reason}" for base, reason in why.items())
        raise OSError(f"no mirror gave a good copy of {', '.join(failed)} ({said}); "
                      "digitgenerator keeps using its embedded 5,000-digit sample")
    return dest


def build_parser(prog: str = "digitgenerator-download") -> argparse.ArgumentParser:
    from .cli import OneLineParser

    p = OneLineParser(prog=prog, description="Download the 60,000 MNIST training digits (and the 10,000 test digits) "
                      "into the user data folder, where every digitgenerator command finds them.")
    p.add_argument("files", nargs="*", metavar="FILE", help="only these files (default: all four)")
    p.add_argument("--dir", default=None,
                   help="where to put them (default: $DIGITGENERATOR_HOME, else the user data folder)")
    p.add_argument("--mirror", action="append", default=None, metavar="URL",
                   help="a base URL to fetch from, before any other; repeat for more (default: $MNIST_MIRRORS, else the table's)")
    p.add_argument("--timeout", type=checks.arg(float, "--timeout", 0.1, MAX_TIMEOUT), default=DEFAULT_TIMEOUT,
                   metavar="S", help=f"give a mirror up after S seconds without an answer (default: {DEFAULT_TIMEOUT})")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _download(args) -> int:
    dest = download(args.dir, args.mirror, args.files, args.timeout)
    print(f"MNIST is in {dest}/")
    return 0


def main(argv=None) -> int:
    """digitgenerator-download: fetch MNIST into the user data folder."""
    from .cli import _run

    return _run("digitgenerator-download", build_parser, _download, argv)
