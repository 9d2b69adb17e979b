"""Checking option values that come from a command line or a config file, before any work."""

from __future__ import annotations

_TYPES = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("a name", lambda v: isinstance(v, str)),
    list: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
    tuple: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
}


def has_type(value, want: type) -> bool:
    """Whether `value` is of the option type `want` (an int is a float; a bool is not a number)."""
    return _TYPES[want][1](value) if want in _TYPES else isinstance(value, want)


def describe(want: type) -> str:
    return _TYPES[want][0] if want in _TYPES else want.__name__
