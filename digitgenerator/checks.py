"""Input checks shared by the API, the command lines' argparse types and the dataset spec.

Each returns the value in its canonical type or raises ValueError naming the
value, what it should be and, where there is one, the fix. The command lines
turn that ValueError into one line on stderr and exit 2.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _bounds(low, high) -> str:
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731 - 0.0 reads as 0
    if low is not None and high is not None:
        return f"between {show(low)} and {show(high)}"
    if low is not None:
        return f">= {show(low)}"
    return f"<= {show(high)}" if high is not None else ""


def integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """value as an int within [low, high] (either end may be None)."""
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer {_bounds(low, high)}, got {value!r:.60}".replace("  ", " "))
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {_bounds(low, high)}, got {value}")
    return value


def number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """value as a finite float within [low, high] (NaN and infinities are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number {_bounds(low, high)}, got {value!r:.60}".replace("  ", " "))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {_bounds(low, high)}, got {value!r}".replace("  ", " "))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {_bounds(low, high)}, got {value:g}")
    return value


def _pair(value, name: str):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be two numbers (min, max), got {value!r:.60}")
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (min, max), got {value!r:.60}") from None
    return lo, hi


def _ordered_pair(value, name: str, check, low, high):
    lo, hi = _pair(value, name)
    lo, hi = check(lo, f"{name} min", low, high), check(hi, f"{name} max", low, high)
    if lo > hi:
        raise ValueError(f"{name} ({lo}, {hi}): min is greater than max; swap them")
    return lo, hi


def int_pair(value, name: str, low: int | None = None, high: int | None = None) -> tuple[int, int]:
    """(min, max) as ints within [low, high], min <= max."""
    return _ordered_pair(value, name, integer, low, high)


def float_pair(value, name: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """(min, max) as finite floats within [low, high], min <= max."""
    return _ordered_pair(value, name, number, low, high)


def choice(value, name: str, options) -> str:
    """value if it is one of options."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(map(str, options))}")
    return value


def seed(value, name: str = "seed") -> int:
    """A seed: a non-negative integer (numpy takes up to 128 bits)."""
    return integer(value, name, low=0, high=2**128 - 1)


def path(value, name: str) -> Path:
    """value as a Path, if it is a str or os.PathLike."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a folder path (a str or pathlib.Path), got {value!r:.60}")
    return Path(value)


def output_folder(value, name: str) -> Path:
    """value as a Path to a folder that exists or can be made: ValueError when it, or one of its parents, is a file.

    Checked before any work, so that a long job does not fail at its first write.
    """
    folder = path(value, name)
    if not os.fspath(value):  # Path("") would be the working directory
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file, not a folder" if part == folder else f"cannot be made: {part} is a file"
                raise ValueError(f"{name} {folder} {what}; give a new or empty folder")
            break
    return folder


def arg(kind: type, name: str, low=None, high=None):
    """An argparse `type=` that parses text as `kind` (int or float) and applies the same check as the API.

    The message names the flag, the bounds and what was typed, and argparse
    turns it into the command's one line on stderr.
    """
    import argparse

    check = integer if kind is int else number

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        try:
            return check(value, name, low, high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse shows it in "invalid <name> value" messages
    return parse
