"""Checking option values that come from a command line or a config file, before any work."""

from __future__ import annotations

import math

SEED_LIMIT = 2**63  # seeds are 64-bit in torch and numpy: 0 <= seed < 2**63

_TYPES = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    str: ("a name", lambda v: isinstance(v, str)),
    list: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
    tuple: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
}


def has_type(value, want: type) -> bool:
    """Whether `value` is of the option type `want` (an int is a float; a bool is not a number)."""
    return _TYPES[want][1](value) if want in _TYPES else isinstance(value, want)


def describe(want: type) -> str:
    return _TYPES[want][0] if want in _TYPES else want.__name__


def check_seed(seed, option: str = "--seed") -> int:
    """A seed every generator takes (a whole number, 0 <= seed < 2**63), or a one-line error."""
    if not has_type(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{option} must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed
