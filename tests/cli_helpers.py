"""Helpers shared by the command-line tests."""

import hashlib
from pathlib import Path


def sets(**options) -> list[str]:
    """--set key=value arguments."""
    return [arg for k, v in options.items() for arg in ("--set", f"{k}={v}")]


def tree_hash(root: Path) -> str:
    """One sha256 over every path and file content below `root`."""
    h = hashlib.sha256()
    for f in sorted(Path(root).rglob("*")):
        h.update(str(f.relative_to(root)).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()
