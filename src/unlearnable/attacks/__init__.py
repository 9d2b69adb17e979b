"""Protection methods behind one interface (see base.Attack)."""

from . import ar, bait, em, gue, lsp, ops, random_noise, rem, tap, tue  # noqa: F401  (register the methods)
from .base import ATTACKS, Attack, create_attack, list_attacks, register_attack

__all__ = ["ATTACKS", "Attack", "create_attack", "list_attacks", "register_attack"]
