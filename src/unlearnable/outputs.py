"""Where a command may write: the rules every output folder obeys, checked before any work.

- An output never is, contains or lies inside an input: the paths a data source reads (a named
  dataset: the file found and the folder it was found in), the working directory, the home
  folder or a file-system root.
- An existing output is replaced only with --force, and only when it is an earlier output of the
  same command of this tool (its marker: a protect folder's manifest.json, an evaluate folder's
  record.json, a demo's demo.json, a check's report.json) holding nothing else: a folder with one foreign file is
  refused, so --force can never delete a person's files.
- demo and bench resume an existing output folder only if it is theirs (demo.json; a bench's
  config.yaml), holding only their own files.
- One run at a time writes an output: a second run with the same --out is refused while the
  first holds its lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOOL = "unlearnable"
MARKERS = {"protect": "manifest.json", "evaluate": "record.json", "demo": "demo.json", "check": "report.json"}
# a protect output's own files, beside its images (a photo never takes one of these names)
PROTECT_FILES = ("manifest.json", "perturbation.safetensors", "preview.png")


def marker(kind: str) -> dict:
    """The keys that make a JSON file this tool's marker of a `kind` output."""
    return {"tool": TOOL, "output": kind}


def input_paths(source, download: bool = False) -> list[Path]:
    """The paths a data source reads, resolved: a path itself; for a dataset name, what it resolves
    to (for a file, also the folder it was found in), or the folder a download would go to when it
    is not found yet."""
    from .data import DataError, resolve_source
    from .data.official import get_dataset
    from .data.sources import default_data_dir

    if source is not None and not isinstance(source, str):
        source = os.fspath(source)
    named = source is None or get_dataset(source) is not None
    if not named:
        return [Path(source).expanduser().resolve()]
    paths = []
    for split in ("train", "test"):
        try:
            _, found = resolve_source(source, download=False, split=split)
        except (DataError, ValueError):
            paths.append(default_data_dir().resolve())
            continue
        found = found.resolve()
        paths += [found, found.parent] if found.is_file() else [found]
    return list(dict.fromkeys(paths))


def _identity(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _within(a: Path, b: Path) -> bool:
    """Whether `a` is `b` or lies inside it, by path and by identity (device and inode along the
    path): a bind mount or any second path to a folder is the same folder."""
    if a == b or b in a.parents:
        return True
    target = _identity(b)
    return target is not None and any(_identity(q) == target for q in (a, *a.parents))


def _check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output that cannot be made: a parent that is a file, or a place
    where no folder can be created (probed with an empty hidden folder, removed at once)."""
    where = path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise ValueError(f"{option} {path}: {where} is a file, not a folder; choose an {option} inside a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".unlearnable-probe-", dir=where))
    except OSError as e:
        raise ValueError(
            f"{option} {path}: no folder can be made in {where} ({e.strerror}); choose a folder you may write "
            "to, or fix its permissions"
        ) from None


def check_output(out, inputs: list[Path], force: bool, kind: str, option: str = "--out", resume: bool = False) -> Path:
    """The resolved output folder, or a one-line error: it is, contains or lies inside an input,
    or exists and may not be replaced (see the module doc). With resume=True (demo, bench) an
    existing output is continued instead, if it is an earlier `kind` output of this tool."""
    if out is None or not str(out).strip():
        raise ValueError(f"{option} is empty; name a new folder for the output, e.g. {option} runs/protected")
    path = Path(out).expanduser().resolve()
    for src in inputs:
        src = Path(src).resolve()
        if path == src or (_identity(path) is not None and _identity(path) == _identity(src)):
            raise ValueError(
                f"{option} {path} is the input; choose a new folder for the output, e.g. {option} {src.name}-protected"
            )
        if _within(path, src):
            raise ValueError(f"{option} {path} is inside the input {src}; choose an output folder outside the input")
        if _within(src, path):
            raise ValueError(f"{option} {path} contains the input {src}; choose an output folder that holds no input")
    _check_writable(path, option)
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if _within(cwd, path) or path == home or len(path.parts) <= 1:
        what = (
            "the working directory" if _within(cwd, path) else "your home folder" if path == home else "a root folder"
        )
        raise ValueError(
            f"{option} {path} is or contains {what}; name a new folder for the output, e.g. {option} runs/{kind}"
        )
    if path.exists() or path.is_symlink():
        if resume and not force:
            reason = not_replaceable(path, kind)
            if reason:
                raise ValueError(
                    f"{option} {path} exists and is not an earlier `unlearnable {kind}` output to "
                    f"resume: it {reason}; choose another {option}"
                )
            return path
        if not force:
            raise FileExistsError(
                f"{option} {path} already exists; choose another folder, or pass --force to replace "
                f"an earlier output of `unlearnable {kind}`"
            )
        reason = not_replaceable(path, kind)
        if reason:
            raise ValueError(
                f"--force replaces only an earlier output of `unlearnable {kind}`, and {path} {reason}; "
                "choose another --out, or move that folder away yourself"
            )
    return path


def _marker_ok(path: Path, kind: str) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("tool") == TOOL and data.get("output") == kind:
        return data
    versions = data.get("versions")  # written before markers carried tool and output
    legacy = {"protect": "files", "evaluate": "history", "demo": "timings"}[kind]
    if isinstance(versions, dict) and TOOL in versions and legacy in data:
        return data
    return None


OS_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}  # what a file browser leaves in any folder it shows


def _foreign_files(folder: Path, allowed) -> list[str]:
    found = []
    for p in sorted(folder.rglob("*")):
        if (p.is_symlink() or not p.is_dir()) and p.name not in OS_LITTER:
            rel = p.relative_to(folder).as_posix()
            if not allowed(rel):
                found.append(rel)
    return found


def _foreign_protect_folder(path: Path, pattern: str) -> str | None:
    """Why one of the protected folders a demo or bench holds is not this tool's, or None; hidden
    entries are an unfinished protection's checkpoint, lock or partial folder."""
    for sub in sorted(path.glob(pattern)):
        if not sub.name.startswith(".") and (why := not_replaceable(sub, "protect")) is not None:
            return f"holds {sub.relative_to(path).as_posix()}, which {why}"
    return None


def not_replaceable(path: Path, kind: str) -> str | None:
    """Why `path` is not an earlier `kind` output of this tool holding only its own files, or None."""
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_dir():
        return "is a file"
    if kind == "bench":
        if not (path / "config.yaml").is_file():
            return "is not a bench results folder (it has no config.yaml)"
        if (why := _foreign_protect_folder(path, "protected/*/*")) is not None:
            return why

        def allowed(rel: str) -> bool:
            parts = rel.split("/")
            return (
                rel in ("config.yaml", "results.jsonl", "table.md", "results.csv")
                or parts[0] in ("plots", "checkpoints", "jobs")  # jobs: the cluster launcher's logs and records
                or (parts[0] == "protected" and len(parts) >= 3)
                or (len(parts) == 1 and rel.startswith("."))
            )
    elif kind == "demo":
        if not (path / "demo.json").is_file() and not (path / "timings.json").is_file():
            return "is not a demo folder (it has no demo.json)"
        if (path / "demo.json").is_file() and _marker_ok(path / "demo.json", "demo") is None:
            return "has a demo.json that this tool did not write"
        if (why := _foreign_protect_folder(path, "protected/*")) is not None:
            return why

        def allowed(rel: str) -> bool:
            parts = rel.split("/")
            if rel.startswith("protected/") and len(parts) >= 2:
                return True  # checked above, folder by folder
            if len(parts) == 1:
                return (
                    rel in ("demo.json", "timings.json", "table.md")
                    or (rel.startswith("curves-") and rel.endswith(".png"))
                    or (rel.startswith(".") and (".checkpoint.pt" in rel or ".partial-" in rel or ".tmp" in rel))
                )
            if parts[0] == "records" and len(parts) == 2:
                name = parts[1]
                return name.endswith(".json") or (name.startswith(".") and (".checkpoint.pt" in name or ".tmp" in name))
            return False
    else:
        name = MARKERS[kind]
        data = _marker_ok(path / name, kind)
        if data is None:
            return f"has no {name} written by unlearnable {kind}"
        if kind == "protect":
            listed = data.get("files")
            own = set(PROTECT_FILES) | set(listed if isinstance(listed, dict) else ())
        elif kind == "check":
            own = {"report.json", "report.md", "accuracy.png"}
        else:
            own = {"record.json", "curves.png"}

        def allowed(rel: str) -> bool:
            return rel in own

    foreign = _foreign_files(path, allowed)
    if foreign:
        return f"holds {len(foreign)} file(s) this tool did not write there (e.g. {foreign[0]})"
    return None


def _acquire(lock: Path, out: Path) -> int:
    """An open descriptor of `lock` holding its exclusive flock, or a one-line error while another
    live process holds it. The file may be removed by the run that held it just before: the lock
    is retried until it is taken on the file that is there."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(
                f"another unlearnable run is writing {out} right now (it holds {lock}); wait for it to "
                "finish, or choose another --out"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold `.OUT.lock` beside the output for the whole run: a second run with the same output
    (which would share its checkpoint) is refused while this one is alive. The lock dies with the
    process, so a killed run never blocks the next one."""
    lock = lock_path(out)
    fd = _acquire(lock, out)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


def leftovers(out: Path) -> list[Path]:
    """What an unfinished run of `out` leaves beside it: its checkpoint (and a method's second one,
    TAP's `.surrogate`) with their temporary files, the partial folder an export was writing, an
    earlier output set aside while being replaced. The lock is not one: it only says who owns them."""
    name = re.escape(out.name)
    pattern = re.compile(
        rf"\.{name}\.(checkpoint\.pt(\.surrogate)?|partial-.+|old-.+)|\.\.{name}\.checkpoint\.pt(\.surrogate)?\..+\.tmp"
    )
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if pattern.fullmatch(p.name))


def _normal(run: dict) -> dict:
    return json.loads(json.dumps(run, sort_keys=True, default=str))


def _owner(fd: int) -> dict | None:
    """The run recorded in a held lock file, or None (an empty, damaged or foreign record)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 1 << 20) or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == TOOL and isinstance(data.get("run"), dict) else None


def _differences(theirs: dict, ours: dict) -> list[str]:
    def flat(d, prefix=""):  # {"settings": {"seed": 0}} -> {"settings.seed": 0}
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
        return out

    a, b = flat(theirs), flat(ours)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def foreign_leftovers(out: Path, found: list[Path], owner: dict | None, run: dict) -> str:
    """The one line that refuses a run on an output whose leftovers belong to another run."""
    more = f" (and {', '.join(p.name for p in found[1:])})" if len(found) > 1 else ""
    if owner is None:
        whose = "a run this tool has no record of (an older version's, or one killed as it started)"
        fix = "finish it with the command that made it, or"
    else:
        differ = _differences(owner["run"], run) or ["(unrecorded)"]
        command = owner.get("command") or f"unlearnable {owner['run'].get('command', '')}".strip()
        whose = f"another run, `{command}` (it differs in: {', '.join(differ[:6])})"
        fix = "run that command again to finish it, or"
    return f"{found[0]}{more} belongs to {whose}; {fix} delete what it left with `unlearnable clean {out} --yes`"


@contextmanager
def claim(out: Path, run: dict, command: str | None = None) -> Iterator[None]:
    """Hold `out` for this run and own what it leaves beside it until it finishes.

    The lock (`.OUT.lock`, run_lock's) records the run: what it is (`run`, the settings a resume
    must repeat) and its command line. Leftovers of `out` (`leftovers`) found when the run starts
    must be this same run's, which then resumes them; anyone else's (another method, another
    command, other settings, or a run with no record) refuse this one with a line naming them and
    the way out, so no run ever deletes another's checkpoint or partial output. A run that ends
    without error deletes its own stale partial folders; the lock goes once nothing is left to own,
    and stays (with its record) while a checkpoint or a partial folder remains."""
    run = _normal(run)
    lock = lock_path(out)
    fd = _acquire(lock, out)
    try:
        found = leftovers(out)
        owner = _owner(fd)
        if found and (owner is None or owner["run"] != run):
            raise ValueError(foreign_leftovers(out, found, owner, run))
        record = {"tool": TOOL, "run": run, "command": command, "pid": os.getpid()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record, indent=1).encode(), 0)
        finished = False
        try:
            yield
            finished = True
        finally:
            left = leftovers(out)
            if finished:
                for p in left:
                    if p.is_dir() and not p.is_symlink() and ".checkpoint.pt" not in p.name:
                        shutil.rmtree(p, ignore_errors=True)
                left = leftovers(out)
            if not left:
                try:
                    os.unlink(lock)
                except OSError:
                    pass
    finally:
        os.close(fd)


def _size(p: Path) -> int:
    if p.is_dir() and not p.is_symlink():
        return sum(f.lstat().st_size for f in p.rglob("*") if not f.is_dir())
    return p.lstat().st_size


def clean(out, yes: bool = False) -> list[tuple[Path, int]]:
    """The leftovers of `out` (see `leftovers`) with their sizes in bytes, deleted with yes=True:
    a checkpoint, a partial or set-aside folder, and the lock that owns them. Refused while a run
    holds the lock; `out` itself and anything not named as one of this tool's leftovers is never
    touched."""
    out = Path(out).expanduser().absolute()
    out = out.parent.resolve() / out.name
    lock = lock_path(out)
    fd = _acquire(lock, out)
    try:
        found = [(p, _size(p)) for p in leftovers(out)]
        if yes:
            for p, _ in found:
                if p.is_symlink() or not p.is_dir():
                    p.unlink(missing_ok=True)
                else:
                    shutil.rmtree(p)
            os.unlink(lock)
        elif not found:
            os.unlink(lock)
    finally:
        os.close(fd)
    return found
