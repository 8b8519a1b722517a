"""Input checks shared by the API, the command lines' argparse types and the dataset spec.

Each returns the value in its canonical type or raises ValueError naming the
value, what it should be and, where there is one, the fix. The command lines
turn that ValueError into one line on stderr and exit 2.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _bounds(low, high) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f">= {low}" if low is not None else f"<= {high}"


def integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """value as an int within [low, high] (either end may be None)."""
    if not _is_int(value):
        raise ValueError(f"{name} {value!r} must be an integer {_bounds(low, high)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} {value} must be {_bounds(low, high)}")
    return value


def number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """value as a finite float within [low, high] (NaN and infinities are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} {value!r} must be a number {_bounds(low, high)}")
    value = float(value)
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} {value!r} must be a finite number {_bounds(low, high)}")
    return value


def _pair(value, name: str):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} {value!r} must be two numbers (min, max)")
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} must be two numbers (min, max)") from None
    return lo, hi


def int_pair(value, name: str, low: int | None = None, high: int | None = None) -> tuple[int, int]:
    """(min, max) as ints within [low, high], min <= max."""
    lo, hi = _pair(value, name)
    lo, hi = integer(lo, f"{name} min", low, high), integer(hi, f"{name} max", low, high)
    if lo > hi:
        raise ValueError(f"{name} ({lo}, {hi}): min is greater than max; swap them")
    return lo, hi


def float_pair(value, name: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """(min, max) as finite floats within [low, high], min <= max."""
    lo, hi = _pair(value, name)
    lo, hi = number(lo, f"{name} min", low, high), number(hi, f"{name} max", low, high)
    if lo > hi:
        raise ValueError(f"{name} ({lo}, {hi}): min is greater than max; swap them")
    return lo, hi


def choice(value, name: str, options) -> str:
    """value if it is one of options."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(map(str, options))}")
    return value
