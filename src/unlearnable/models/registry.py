"""Model registry: build any toolkit model by name.

    model = create_model("efficientnet_lite0", num_classes=10, pretrained=True, input_size=64)

A builder is a function ``fn(num_classes, pretrained=False, weights=None,
input_size=None) -> ImageClassifier`` registered with :func:`register_model`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from .base import ImageClassifier

__all__ = ["register_model", "create_model", "list_models", "model_info", "is_model"]

Builder = Callable[..., ImageClassifier]


@dataclass(frozen=True)
class _Entry:
    name: str
    builder: Builder
    description: str
    pretrained: bool
    natural_input_size: int
    weights_source: str | None
    no_weights_hint: str
    weights_local: Callable[[], bool] | None


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    description: str | None = None,
    pretrained: bool = False,
    natural_input_size: int = 32,
    weights_source: str | None = None,
    no_weights_hint: str = "",
    weights_local: Callable[[], bool] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``fn`` under ``name``.

    Args:
        description: one-line description (default: first line of the docstring).
        pretrained: whether ImageNet weights exist for this model.
        natural_input_size: the resolution the architecture was designed/pretrained at.
        weights_source: human-readable origin of the pretrained weights.
        no_weights_hint: appended to the error raised for ``pretrained=True`` on a
            model without weights (e.g. which model to use instead).
        weights_local: callable telling whether the weights are on this machine now.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("model name must be a non-empty string")

    def decorator(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        desc = description
        if desc is None:
            doc = inspect.getdoc(fn) or ""
            desc = doc.strip().splitlines()[0] if doc.strip() else name
        _REGISTRY[name] = _Entry(
            name=name,
            builder=fn,
            description=desc,
            pretrained=pretrained,
            natural_input_size=natural_input_size,
            weights_source=weights_source,
            no_weights_hint=no_weights_hint,
            weights_local=weights_local,
        )
        return fn

    return decorator


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def create_model(
    name: str,
    num_classes: int = 10,
    *,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: int | None = None,
) -> ImageClassifier:
    """Build model ``name`` with a ``num_classes``-way head.

    Args:
        pretrained: load the model's default ImageNet weights (backbone only; the
            head is always freshly initialised for ``num_classes``).
        weights: explicit weights file path or https URL (implies pretrained).
        input_size: resize inputs to this size inside ``forward`` (None: data size).
    """
    entry = _entry(name)
    if (pretrained or weights is not None) and not entry.pretrained:
        hint = f" {entry.no_weights_hint}" if entry.no_weights_hint else ""
        raise ValueError(
            f"model {name!r} has no pretrained weights: it is trained from scratch only "
            f"(pretrained=True / weights=... are not supported).{hint}"
        )
    model = entry.builder(num_classes, pretrained=pretrained, weights=weights, input_size=input_size)
    if not model.name:
        model.name = name
    return model


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def is_model(name: str) -> bool:
    return name in _REGISTRY


def model_info(name: str) -> dict:
    """Static facts about a model.

    Keys: ``name``, ``description`` (one line), ``pretrained`` (ImageNet weights
    exist), ``weights_source``, ``weights_local`` (the weights are on this machine,
    no download needed; None when unknown or not applicable), ``natural_input_size``
    (resolution of the original architecture/pretraining), ``default_input_size``
    (None: by default models run at the data's own size).
    """
    entry = _entry(name)
    local: bool | None = None
    if entry.pretrained and entry.weights_local is not None:
        try:
            local = bool(entry.weights_local())
        except Exception:  # a probe must never break an info query
            local = False
    return {
        "name": entry.name,
        "description": entry.description,
        "pretrained": entry.pretrained,
        "weights_source": entry.weights_source,
        "weights_local": local,
        "natural_input_size": entry.natural_input_size,
        "default_input_size": None,
    }
