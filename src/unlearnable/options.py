"""Checking option values that come from a command line or a config file, before any work."""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
SEED_LIMIT = 2**63  # seeds are 64-bit in torch and numpy: 0 <= seed < 2**63

_TYPES: dict[type, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    str: ("a name", lambda v: isinstance(v, str)),
    list: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
    tuple: ("a list like [1, 2]", lambda v: isinstance(v, (list, tuple))),
}


def has_type(value: object, want: type) -> bool:
    """Whether `value` is of the option type `want` (an int is a float; a bool is not a number)."""
    return _TYPES[want][1](value) if want in _TYPES else isinstance(value, want)


def describe(want: type) -> str:
    return _TYPES[want][0] if want in _TYPES else want.__name__


def check_seed(seed: object, option: str = "--seed") -> int:
    """A seed every generator takes (a whole number, 0 <= seed < 2**63), or a one-line error."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{option} must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed


@dataclass(frozen=True)
class NoOptions:
    """The options of a method or a defense that takes none."""


def option(default: Any, *, positive: bool = False, low: float | None = None, high: float | None = None) -> Any:
    """A field of an options dataclass with its bounds: `positive` (> 0), `low` / `high` (inclusive)."""
    return field(default=default, metadata={"positive": positive, "low": low, "high": high})


def _matches(value: object, want: Any) -> bool:
    origin, args = get_origin(want), get_args(want)
    if want is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if want is type(None):
        return value is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple):
        items = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_matches(v, items) for v in value)
    if origin is dict:
        keys, items = args if args else (Any, Any)
        return isinstance(value, dict) and all(_matches(k, keys) and _matches(v, items) for k, v in value.items())
    return has_type(value, want)


def _words(want: Any) -> str:
    origin, args = get_origin(want), get_args(want)
    if origin in (Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        return " or ".join(_words(a) for a in arms) + (" (or null)" if len(arms) < len(args) else "")
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple):
        return "a list like [1, 2]" if not args or args[0] is not str else "a list of names like [a, b]"
    if origin is dict:
        return "a mapping of names to " + (_words(args[1]) if args else "values").replace("a ", "", 1) + "s"
    return describe(want)


def check_options(options: Any, owner: str, example: Any = None) -> None:
    """Every field of the options dataclass `options` against its annotation (int, float, bool,
    str, X | None, Literal[...], lists, mappings) and its bounds (`option`), before any work: a one-line
    error naming `owner` and the option. `example` (options of the same kind) gives the value
    an error shows as an example."""
    hints = get_type_hints(type(options))
    for f in fields(options):
        value, want = getattr(options, f.name), hints[f.name]
        if not _matches(value, want):
            shown = getattr(example, f.name, None) if example is not None else None
            hint = f" (e.g. --set {f.name}={shown})" if shown is not None else ""
            raise ValueError(f"{owner}: option {f.name} must be {_words(want)}, got {value!r}{hint}")
        # the bounds hold for every number: a mapping's values and a list's items too
        numbers = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for number in numbers:
            _check_bounds(number, f, owner)


def _check_bounds(value: Any, f: Any, owner: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):  # bounds are for numbers
        return
    if f.metadata.get("positive") and not value > 0:
        raise ValueError(f"{owner}: option {f.name} must be greater than 0, got {value!r}")
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            span = f"from {low} to {high}"
        else:
            span = f"at least {low}" if low is not None else f"at most {high}"
        raise ValueError(f"{owner}: option {f.name} must be {span}, got {value!r}")


def options_of(cls: type[T], given: dict[str, Any], owner: str, base: T | None = None) -> T:
    """`base` (default: `cls()`) with the options `given` by name, each known to `cls` and checked
    (check_options): what a method's or a defense's options are built by."""
    base = cls() if base is None else base
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        known = f"its options are {', '.join(names)}" if names else "it takes no options"
        raise ValueError(f"{owner} has no option {', '.join(unknown)}; {known}")
    built = replace(base, **given)
    check_options(built, owner, example=base)
    return built
