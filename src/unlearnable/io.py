"""The one place for writing files safely, downloading, hashing, and the cache root.

Every file and folder the toolkit writes goes through `atomic_file` or `atomic_dir`: the content
is written to a temporary name unique to this write (so two runs never share one) in the target's
own folder, then renamed over the target, so a reader never sees half a file and a kill never
leaves something that looks finished. Downloads stream into such a temporary file, are checked
against their published checksum and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "cache_root",
    "atomic_file",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_dir",
    "file_sha256",
    "file_digest",
    "read_json",
    "set_aside",
    "source_checksums",
    "download",
    "DownloadError",
    "ChecksumMismatch",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_root() -> Path:
    """$UNLEARNABLE_CACHE, or ~/.cache/unlearnable when unset: decoded datasets, downloads, weights."""
    env = os.environ.get("UNLEARNABLE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unlearnable"


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it replaces `path`
    in one rename, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # the permissions of an ordinary new file, not mkstemp's 0600
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_dir(out: str | os.PathLike, replace: bool = False, kind: str | None = None) -> Iterator[Path]:
    """Yield a new temporary sibling folder of `out`; on success it becomes `out` in one rename.

    With replace=True an existing `out` is renamed away first and removed once the new folder is
    in place; whether it may be replaced is the caller's decision (outputs.check_output), made
    before any work, and made again here for a `kind` of output (something else may have
    appeared there meanwhile). Without it an existing `out` is an error, and the new folder is
    discarded.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # an ordinary new folder once in place, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists() or out.is_symlink():
        reason = None
        if replace and kind is not None:
            from .outputs import not_replaceable

            reason = not_replaceable(out, kind)
        if not replace or reason:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(
                f"{out} already exists"
                + (f" and {reason}; nothing was replaced" if reason else "; pass --force to replace it")
            )
        old = set_aside(out)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def set_aside(path: Path) -> Path:
    """Move `path` into a new hidden sibling folder (one rename: the name is free at once) and
    return that folder, for the caller to delete once the replacement is in place."""
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.rename(path, old / path.name)
    return old


def read_json(path: str | os.PathLike, kind: type = dict, fix: str = "delete it and run the command again"):
    """A JSON file this tool wrote earlier, or a one-line ValueError naming it and the fix."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} cannot be read ({e}); {fix}") from None
    if not isinstance(data, kind):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not what this tool wrote there; {fix}")
    return data


def file_digest(path: str | os.PathLike | bytes, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """The digest of a file's contents, or of `path` itself when it is bytes (data not yet written)."""
    h = hashlib.new(algorithm, usedforsecurity=False)  # integrity checks, not security
    if isinstance(path, bytes):
        h.update(path)
        return h.hexdigest()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike | bytes) -> str:
    return file_digest(path, "sha256")


def source_checksums(source: str | os.PathLike) -> dict:
    """sha256 of an input archive, or one over every file of an input folder (relative paths and
    contents, sorted by path) with the number of files."""
    p = Path(source)
    if p.is_file():
        return {p.name: file_sha256(p)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(p)).encode())
            h.update(file_sha256(f).encode())
        return {p.name + "/": h.hexdigest(), "files": len(files)}
    return {}


class DownloadError(OSError):
    """The file could not be fetched (offline, refused, interrupted)."""


class ChecksumMismatch(ValueError):
    """The fetched bytes are not the published file."""

    def __init__(self, message: str, digest: str):
        super().__init__(message)
        self.digest = digest


def download(
    url: str,
    target: str | os.PathLike,
    *,
    algorithm: str,
    expected: str | None,
    progress: bool = True,
    timeout: float = 60,
    headers: dict | None = None,
    on_start: Callable[[], None] | None = None,
) -> Path:
    """Fetch `url` to `target`: streamed into a temporary file beside it, its `algorithm` digest
    checked against `expected` (the whole digest or a prefix of it; None checks nothing), and
    only then renamed into place. Raises DownloadError or ChecksumMismatch; nothing is left
    behind on failure."""
    from tqdm.auto import tqdm

    target = Path(target)
    request = urllib.request.Request(url, headers=headers or {})
    with atomic_file(target) as tmp:
        h = hashlib.new(algorithm, usedforsecurity=False)
        if on_start is not None:
            on_start()
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
                total = getattr(resp, "headers", {}).get("Content-Length")
                with tqdm(
                    total=int(total) if total and str(total).isdigit() else None,
                    unit="B",
                    unit_scale=True,
                    desc=f"downloading {target.name}",
                    disable=None if progress else True,
                    leave=False,
                ) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
        except (OSError, ValueError) as exc:  # URLError is an OSError
            raise DownloadError(f"{exc}") from exc
        except Exception as exc:  # http.client errors (IncompleteRead, BadStatusLine, ...)
            raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
        digest = h.hexdigest()
        if expected is not None and not digest.startswith(expected.lower()):
            raise ChecksumMismatch(f"{algorithm} of {url} is {digest}, expected {expected}", digest)
    return target
