"""What a model trainer might do to get around a protection, behind one interface (base.Defense)."""

from . import adversarial, mixing, photometric, probe, projection, squeeze, ueraser  # noqa: F401  (register the defenses)
from .base import DEFENSES, Defense, create_defense, list_defenses, register_defense

__all__ = ["DEFENSES", "Defense", "create_defense", "list_defenses", "register_defense"]
