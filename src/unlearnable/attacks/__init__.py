"""Protection methods behind one interface (see base.Attack)."""

from .base import ATTACKS, Attack, create_attack, list_attacks, register_attack
from . import bait, em, random_noise  # noqa: F401  (register the methods)

__all__ = ["ATTACKS", "Attack", "create_attack", "list_attacks", "register_attack"]
