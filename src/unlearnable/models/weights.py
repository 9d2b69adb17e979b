"""Safe loading of pretrained weight files (local paths or https URLs).

Only tensor data is ever deserialised: ``.safetensors`` files go through
``safetensors.torch.load_file`` and pickle-based ``.pth``/``.pt`` files through
``torch.load(..., weights_only=True)``, which refuses arbitrary Python objects.

Downloads land in ``$UNLEARNABLE_CACHE/weights/`` (default
``~/.cache/unlearnable/weights/``); they are written to a temporary file, checked
against the expected sha256 prefix when one is given, and only then moved into place.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "WeightsError",
    "ChecksumError",
    "WeightsDownloadError",
    "UnsafeWeightsError",
    "default_cache_dir",
    "sha256_file",
    "hash_prefix_from_filename",
    "download_weights",
    "load_state_dict_file",
    "normalize_state_dict",
]

_DOWNLOAD_TIMEOUT_S = 60
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_KEY_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(RuntimeError):
    """A weights file could not be found, read, verified or matched to a model."""


class ChecksumError(WeightsError):
    """A file's sha256 does not start with the expected prefix."""


class WeightsDownloadError(WeightsError):
    """A weights URL could not be downloaded (offline machine, HTTP error, ...)."""


class UnsafeWeightsError(WeightsError):
    """A pickle file holds something other than tensors and was refused."""


# --------------------------------------------------------------------- helpers
def default_cache_dir() -> Path:
    """``$UNLEARNABLE_CACHE/weights`` or ``~/.cache/unlearnable/weights``."""
    from ..io import cache_root

    return cache_root() / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    from ..io import file_sha256

    return file_sha256(path)


def hash_prefix_from_filename(name: str) -> str | None:
    """The sha256 prefix encoded in a file name, torchvision style.

    ``resnet18-f37072fd.pth`` -> ``"f37072fd"``; None when the name carries none.
    """
    m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", os.path.basename(name))
    return m.group(1) if m else None


def _check_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    p = prefix.strip().lower()
    if not p or not re.fullmatch(r"[0-9a-f]{1,64}", p):
        raise ValueError(f"sha256_prefix must be hexadecimal, got {prefix!r}")
    return p


def _is_url(s: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s))


def _url_filename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f"cannot derive a file name from URL {url!r}")
    return name


def _verify(path: Path, prefix: str, *, what: str) -> None:
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise ChecksumError(
            f"sha256 mismatch for {what} ({path}): expected a hash starting with {prefix}, got {digest}"
        )


# -------------------------------------------------------------------- download
def download_weights(
    url: str,
    *,
    sha256_prefix: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    download_hint: str | None = None,
) -> Path:
    """Download ``url`` into the weights cache (if not already there) and return its path.

    A cached copy whose hash does not match ``sha256_prefix`` is removed and fetched
    again; a fresh download that does not match is removed and raises
    :class:`ChecksumError`. Network failures raise :class:`WeightsDownloadError`
    telling the user how to provide the file by hand.
    """
    if not url.lower().startswith("https://"):
        raise ValueError(f"only https:// URLs are supported for weights, got {url!r}")
    prefix = _check_prefix(sha256_prefix)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dest = cache / _url_filename(url)

    if dest.is_file():
        if prefix is None:
            return dest
        try:
            _verify(dest, prefix, what="cached weights")
            return dest
        except ChecksumError as exc:
            print(f"unlearnable: {exc}; removing it and downloading again", file=sys.stderr)
            dest.unlink(missing_ok=True)

    from ..io import ChecksumMismatch, DownloadError, download

    cache.mkdir(parents=True, exist_ok=True)
    try:
        download(
            url,
            dest,
            algorithm="sha256",
            expected=prefix,
            timeout=_DOWNLOAD_TIMEOUT_S,
            headers={"User-Agent": "unlearnable"},
            on_start=lambda: print(f"unlearnable: downloading {url} -> {dest}", file=sys.stderr),
        )
    except DownloadError as exc:
        hint = f" {download_hint}" if download_hint else ""
        raise WeightsDownloadError(
            f"could not download weights from {url} ({exc}). If this machine is offline, "
            f"download the file manually on another machine and pass its local path "
            f"(e.g. weights='/path/to/{dest.name}').{hint}"
        ) from exc
    except ChecksumMismatch as exc:
        raise ChecksumError(
            f"sha256 mismatch for {dest.name} downloaded from {url}: expected a hash "
            f"starting with {prefix}, got {exc.digest}; the downloaded file was removed"
        ) from None
    return dest


# ------------------------------------------------------------------------ load
def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
        return "torch"
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise WeightsError(
        f"cannot tell the format of {path}: expected a .safetensors file or a torch.save'd .pth/.pt state dict"
    )


def _load_local(path: Path):
    kind = _file_kind(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsError(f"could not read safetensors file {path}: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(
            f"refused to load {path}: it contains Python objects other than tensors and "
            f"containers, and is only loaded with torch.load(weights_only=True). Convert it "
            f"to a plain state dict (or .safetensors) from a trusted environment. Details: {exc}"
        ) from exc
    except Exception as exc:
        raise WeightsError(f"could not read weights file {path}: {exc}") from exc


def normalize_state_dict(obj, source: str = "weights") -> dict[str, torch.Tensor]:
    """Turn a loaded checkpoint into a flat ``{name: tensor}`` state dict.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` (and ``model_state_dict``,
    ``module``) containers, drops non-tensor entries and strips a ``module.``
    (DataParallel/DDP) or ``_orig_mod.`` (torch.compile) prefix shared by all keys.
    """
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source} does not hold a state dict: expected a dict of tensors, got {type(obj).__name__}")
    for _ in range(4):
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:10])) or "<empty>"
        raise WeightsError(f"{source} contains no tensors (top-level keys: {keys})")
    for prefix in _KEY_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def load_state_dict_file(
    path_or_url: str | os.PathLike,
    *,
    sha256_prefix: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    download_hint: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load a state dict from a local ``.safetensors``/``.pth``/``.pt`` file or an https URL.

    Args:
        path_or_url: local file path, or https URL downloaded into the cache.
        sha256_prefix: when given, the file's sha256 must start with it
            (:class:`ChecksumError` otherwise; a bad download is removed, a local
            file given by the user is left untouched).
        cache_dir: download directory (default :func:`default_cache_dir`).
        download_hint: extra sentence appended to download errors.

    Returns:
        a plain ``dict[str, Tensor]`` on the CPU (see :func:`normalize_state_dict`).
    """
    src = os.fspath(path_or_url)
    prefix = _check_prefix(sha256_prefix)
    if _is_url(src):
        path = download_weights(src, sha256_prefix=prefix, cache_dir=cache_dir, download_hint=download_hint)
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        if prefix is not None:
            _verify(path, prefix, what="weights file")
    return normalize_state_dict(_load_local(path), source=str(path))


def check_state_dict(expected: dict, sd: dict, source: str, what: str, optional_suffix: str | None = None) -> None:
    """Raise WeightsError naming every missing, unexpected and wrongly shaped key of `sd`.

    Keys of `expected` ending in `optional_suffix` may be absent.
    """
    missing = [k for k in expected if k not in sd and not (optional_suffix and k.endswith(optional_suffix))]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise WeightsError(f"{source} {what} ({' | '.join(problems)})")
