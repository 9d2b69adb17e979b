"""Uploaded photos: names checked, sizes bounded, archives unpacked safely.

An upload is a folder of the app's work folder (uploads/<id>/photos) that the page fills one
file at a time. A name is the file's path relative to the chosen folder (a browser's
webkitRelativePath, minus the folder itself); a name that could leave that folder (.., an
absolute path, a drive, a backslash, a hidden or empty part) is refused, not rewritten, and a ZIP
entry goes through the same check before anything is unpacked (zip-slip). Sizes are counted as
the bytes arrive, so a file over the limit is refused without being stored whole, and every photo
is decoded once before it is kept, so a damaged file is refused by name when it arrives instead
of blocking every plan later. What a computer leaves in folders and archives by itself
(.DS_Store, Thumbs.db, desktop.ini, __MACOSX/) is passed over in a ZIP, not refused.
"""

from __future__ import annotations

import os
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..data.sources import DataError, _skipped
from ..io import atomic_file
from ..photos import PHOTO_SUFFIXES, UNREADABLE, check_photo

MAX_DEPTH = 8
MAX_NAME = 255  # bytes of one path part, as most file systems allow
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")


class UploadError(ValueError):
    """An upload refused, with a sentence for the person who sent it (HTTP 400 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    file_bytes: int = 200 * 2**20  # one photo: a 100-megapixel PNG fits
    files: int = 2000  # photos in one upload
    total_bytes: int = 4 * 2**30  # all photos of one upload

    def __post_init__(self):
        for key in ("file_bytes", "files", "total_bytes"):
            if getattr(self, key) < 1:
                raise ValueError(f"upload limit {key} must be at least 1, got {getattr(self, key)}")


def safe_name(name: str, what: str = "photo") -> str:
    """The relative posix path `name` names inside an upload, or UploadError saying why not."""
    if not name or len(name) > 4096:
        raise UploadError(f"a {what} name must be a relative path of 1 to 4096 characters, got {len(name)}")
    name = unicodedata.normalize("NFC", name)
    if name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name):
        raise UploadError(f"{name!r}: a {what} name must be relative to the chosen folder, not an absolute path")
    if _BAD_CHARS.search(name):
        raise UploadError(f'{name!r}: a {what} name may not hold backslashes, control characters or :*?"<>|')
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UploadError(
                f"{name!r}: a {what} name may not hold empty, '.' or '..' parts (it must stay inside its folder)"
            )
        if part.startswith("."):
            raise UploadError(f"{name!r}: hidden files and folders (starting with '.') are not uploaded")
        if len(part.encode()) > MAX_NAME:
            raise UploadError(f"{name!r}: a file or folder name is longer than {MAX_NAME} bytes")
    if len(parts) > MAX_DEPTH:
        raise UploadError(f"{name!r}: folders nested deeper than {MAX_DEPTH} levels are not uploaded")
    return str(PurePosixPath(*parts))


def photo_name(name: str) -> str:
    """safe_name for a photo, which must also be a file type the pipeline reads."""
    rel = safe_name(name)
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix in UNREADABLE:
        raise UploadError(f"{rel} is {UNREADABLE[suffix]}, which this tool cannot read; export it as JPEG or PNG first")
    if suffix not in PHOTO_SUFFIXES:
        raise UploadError(f"{rel} is not a photo this tool reads ({', '.join(sorted(PHOTO_SUFFIXES))})")
    return rel


class Upload:
    """uploads/<id>: photos/ (the files, as named) and labels.csv (optional)."""

    def __init__(self, folder: Path, limits: Limits):
        self.folder, self.limits = folder, limits
        self.photos = folder / "photos"

    def files(self) -> list[tuple[str, int]]:
        if not self.photos.is_dir():
            return []
        return sorted(
            (p.relative_to(self.photos).as_posix(), p.stat().st_size)
            for p in self.photos.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def used(self) -> tuple[int, int]:
        f = self.files()
        return len(f), sum(s for _, s in f)

    def _room(self, name: str, replacing: int = 0) -> int:
        """Bytes a new file may take, after the count limit is checked."""
        count, total = self.used()
        if not replacing and count >= self.limits.files:
            raise UploadError(f"{name}: an upload holds at most {self.limits.files} photos", 413)
        return min(self.limits.file_bytes, self.limits.total_bytes - total + replacing)

    def receive(self, name: str, length: int | None = None) -> Receiver:
        """A writer for one photo (`with upload.receive(name) as w: w.write(chunk)`): the name and
        the limits are checked before a byte is stored, and the photo appears only when complete."""
        rel = photo_name(name)
        dest = self.photos / rel
        replacing = dest.stat().st_size if dest.is_file() else 0
        room = self._room(rel, replacing)
        if length is not None and length > room:
            raise UploadError(self._too_big(rel, length), 413)
        return Receiver(dest, room, lambda size: self._too_big(rel, size), check=lambda path: readable(path, rel))

    def remove(self, name: str) -> None:
        """Take one photo out of the upload (a copy the page sent: the person's own file is elsewhere)."""
        rel = safe_name(name)
        path = self.photos / rel
        if not path.is_file():
            raise KeyError(rel)
        path.unlink()
        for parent in path.parents:  # folders the photo's removal left empty
            if parent == self.photos or any(parent.iterdir()):
                break
            parent.rmdir()

    def receive_labels(self, length: int | None = None) -> Receiver:
        room = 16 * 2**20
        too_big = lambda size: "labels.csv: a labels file may be at most 16 MB"
        if length is not None and length > room:
            raise UploadError(too_big(length), 413)
        return Receiver(self.folder / "labels.csv", room, too_big)

    def unpack(self, archive: Path) -> list[str]:
        """The photos of a ZIP, every entry's name checked and every size bounded before any is
        written; folders and non-photo entries (a __MACOSX folder, notes) are left out."""
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile:
            raise UploadError(f"{archive.name} is not a ZIP archive") from None
        with zf:
            members = []
            for info in zf.infolist():
                if info.is_dir() or litter(info.filename):
                    continue
                rel = safe_name(info.filename, "ZIP entry")  # a traversal refuses the whole archive
                if PurePosixPath(rel).suffix.lower() not in PHOTO_SUFFIXES:
                    continue
                members.append((info, photo_name(rel)))
            seen: set[str] = set()
            for _, rel in members:  # never one photo silently replacing another
                if rel in seen:
                    raise UploadError(f"the ZIP holds {rel} twice; rename one of them and upload the ZIP again")
                if (self.photos / rel).exists():
                    raise UploadError(f"{rel} is already uploaded; remove it from the ZIP or rename it")
                seen.add(rel)
            count, total = self.used()
            if count + len(members) > self.limits.files:
                raise UploadError(
                    f"the ZIP holds {len(members)} photos; an upload holds at most {self.limits.files}", 413
                )
            sizes = [i.file_size for i, _ in members]
            if any(s > self.limits.file_bytes for s in sizes) or total + sum(sizes) > self.limits.total_bytes:
                raise UploadError("the ZIP's photos are larger than this page accepts (see --max-upload-mb)", 413)
            written: list[Path] = []
            try:
                for info, rel in members:  # sizes are counted again while unpacking: a header may lie
                    room = min(self.limits.file_bytes, self.limits.total_bytes - total)
                    try:
                        with (
                            zf.open(info) as f,
                            Receiver(
                                self.photos / rel,
                                room,
                                lambda n, r=rel: self._too_big(r, n),
                                check=lambda path, r=rel: readable(path, r),
                            ) as w,
                        ):
                            while chunk := f.read(1 << 20):
                                w.write(chunk)
                    except UploadError:
                        raise
                    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as e:
                        # a lying size or CRC, a damaged stream, an encrypted entry, an unknown compression
                        raise UploadError(
                            f"{rel} in the ZIP cannot be read ({str(e).splitlines()[0] or type(e).__name__}): the "
                            "archive is damaged or encrypted; make the ZIP again without a password"
                        ) from None
                    written.append(self.photos / rel)
                    total += w.size
            except BaseException:
                for path in written:  # all of the ZIP or none of it
                    path.unlink(missing_ok=True)
                raise
            return [rel for _, rel in members]

    def _too_big(self, rel: str, size: int) -> str:
        return (
            f"{rel} ({size / 2**20:.1f} MB) is over this page's limit of {self.limits.file_bytes / 2**20:.2g} MB per "
            f"photo and {self.limits.total_bytes / 2**30:.1f} GB per upload (the app's --max-upload-mb sets it)"
        )


def litter(name: str) -> bool:
    """Whether an archive entry is what an operating system leaves by itself (.DS_Store, a
    __MACOSX/ folder, Thumbs.db, desktop.ini, other hidden files): passed over, never unpacked.
    '.' and '..' are not litter: a name holding them refuses the whole archive."""
    return any(part not in (".", "..") and _skipped(part) for part in name.split("/"))


def readable(path: Path, rel: str) -> None:
    """A photo that arrived, decoded once: UploadError naming it where it cannot be read."""
    try:
        check_photo(path, rel)
    except DataError as e:
        raise UploadError(f"{e}; it was not added") from None


class Receiver:
    """Bytes into an atomic file beside `dest`, refused (and removed) once past `room`; `check`
    (the complete file's path) runs before the file takes its name, and refuses it by raising."""

    def __init__(self, dest: Path, room: int, too_big, check=None):
        self.dest, self.room, self.too_big, self.size, self.check = dest, room, too_big, 0, check

    def __enter__(self) -> Receiver:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._atomic = atomic_file(self.dest)
        self._tmp = self._atomic.__enter__()
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.room:
            raise UploadError(self.too_big(self.size), 413)
        self._file.write(chunk)

    def __exit__(self, *exc) -> bool:
        self._file.close()
        if exc[0] is None and self.check is not None:
            try:
                self.check(self._tmp)
            except BaseException as e:
                self._atomic.__exit__(type(e), e, e.__traceback__)
                raise
        return bool(self._atomic.__exit__(*exc))


def new_id() -> str:
    return os.urandom(6).hex()
