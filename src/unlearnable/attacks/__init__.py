"""Protection methods behind one interface (see base.Attack). Every module of this package is
imported here, so a method is added by its own file: `@register_attack` does the rest."""

import importlib
import pkgutil

from .base import ATTACKS, Attack, create_attack, list_attacks, register_attack

for _module in pkgutil.iter_modules(__path__):  # registers the methods
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ATTACKS", "Attack", "create_attack", "list_attacks", "register_attack"]
