"""The line a person reads before a long protection starts: what was found, what will be done,
and about how long it takes and how much memory it needs on this machine.

Time, everything a run spends: starting (the background, the models), reading the photos at
full resolution, learning the pattern, writing the photos. Learning is the method's work
(Attack.passes: forward and backward passes of one image through its surrogate) times the
seconds one pass takes here, timed on a batch of random images just before (so it sees what
else runs on the cores), times a factor that says how a real round compares with that timed
pass. The factor and the other stages' rates are calibrated on this computer: every finished
protection records what it measured (Timings, in the cache folder), and the estimate takes the
median of the last runs of the same method, surrogate and device, the reading, writing and
start kept as on idle cores and scaled by the share of a core one thread gets now beside what
else runs (one_core_load); before the first run, measured defaults of a 2-core CPU stand in. A
run uses no more threads than the cores others leave free (distributed.share_cores). Memory: the
largest photo's pixels many times over (its decoded copy, the look's budget map of it in floats,
its protected copy, the encoder's buffer) plus the working set and the surrogate, scaled by how
this computer's finished runs peaked against that model; the size of the copies, at the rate
per megapixel this computer's runs wrote in that format.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

WRITE_SECONDS_PER_MEGAPIXEL = 0.15  # decode + draw + PNG encode of one megapixel, 2-core CPU (0.07 to 0.27 measured)
READ_SECONDS_PER_MEGAPIXEL = 0.25  # full decode + a look's budget map of one megapixel, 2-core CPU
START_SECONDS = 20.0  # the background set, the surrogate and the timed pass, 2-core CPU
FIT_FACTOR = 1.0  # a real round's passes against the timed one, before this computer has measured it
BYTES_PER_MEGAPIXEL = {  # a protected photo in each format, before this computer has written one
    "png": 1.5e6,  # 0.66e6 measured on smooth upscaled photos; more with grain
    "webp": 1.0e6,  # lossless
    "jpeg": 0.5e6,  # quality 95
}
KEPT_RUNS = 8  # runs a calibration keeps per method, surrogate and device
BYTES_PER_PIXEL = 25  # peak bytes per pixel of the largest photo (measured: 24 MP 0.88 GB, 100 MP 2.75 GB)
BASE_MEMORY = 0.5e9  # the interpreter, torch, the surrogate and its optimizer


def seconds_per_pass(attack, size: int, num_classes: int, threads: int | None = None) -> float | None:
    """Seconds of one forward + backward pass of one size x size image through the method's
    surrogate, timed on a random batch (untrained weights: the same arithmetic)."""
    if "surrogate" not in attack.option_names():
        return None
    from .attacks.base import build_surrogate
    from .distributed import free_threads

    torch.manual_seed(0)  # leaves no trace: the fit seeds itself
    model = build_surrogate(attack.options.surrogate, "scratch", max(2, num_classes)).to(attack.device).train()
    batch = min(int(getattr(attack.options, "batch_size", 64)), 64)
    x = torch.rand(batch, 3, size, size, device=attack.device)
    y = torch.zeros(batch, dtype=torch.int64, device=attack.device)
    times = []
    given = torch.get_num_threads()
    torch.set_num_threads(threads or free_threads())  # as the run will (the page's server keeps its own)
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(given)
    return min(times[1:]) / batch


class Timings:
    """What finished protections measured on this computer (cache/timings.json), per method,
    surrogate and device: the fit's factor, and the other stages' rates as on idle cores. A cache
    that cannot be read or written is no calibration, never an error."""

    def __init__(self, attack, path: Path | None = None):
        from .io import cache_root

        self.path = path or cache_root() / "timings.json"
        self.key = f"{attack.name}:{getattr(attack.options, 'surrogate', '-')}:{attack.device}"

    def _all(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def measured(self) -> dict[str, list[float]]:
        """{measure: its kept values} of this key (empty before the first run)."""
        runs = self._all().get(self.key)
        if not isinstance(runs, dict):
            return {}
        kept = {
            name: [v for v in values if isinstance(v, (int, float)) and v >= 0]
            for name, values in runs.items()
            if isinstance(values, list)
        }
        return {name: values for name, values in kept.items() if values}

    def medians(self, kept: dict[str, list[float]] | None = None) -> dict[str, float]:
        """{measure: its median over the kept runs} of this key (empty before the first run);
        `kept`: what measured() already read."""
        return {name: statistics.median(values) for name, values in (kept or self.measured()).items()}

    def record(self, **measured: float | None) -> None:
        """Keep one run's measures (None: not measured), the last KEPT_RUNS of each."""
        from .io import atomic_write_text

        data = self._all()
        runs = data.setdefault(self.key, {})
        if not isinstance(runs, dict):
            runs = data[self.key] = {}
        for name, value in measured.items():
            if value is not None and value >= 0:
                runs[name] = ([v for v in runs.get(name, []) if isinstance(v, (int, float))] + [round(value, 4)])[
                    -KEPT_RUNS:
                ]
        try:
            atomic_write_text(self.path, json.dumps(data, indent=1))
        except OSError:
            pass


def one_core_load(busy: float | None) -> float:
    """How much slower one-core work (decoding, drawing, encoding) runs now than on idle cores, with
    `busy` cores kept busy by others (distributed.busy_cores): a thread among them gets its share."""
    import os

    return 1.0 if busy is None else max(1.0, (busy + 1) / (os.cpu_count() or 1))


def output_bytes(collection, fmt: str, per_mp: dict[str, float]) -> tuple[float, int]:
    """(about how many bytes the protected copies take in `fmt`, the originals' bytes): a rate per
    megapixel for png, webp and jpeg (`per_mp`), and for `same` a JPEG at its own size, any other
    photo at PNG's rate."""
    sizes = [(collection.root / p.rel).stat().st_size for p in collection.photos]
    total = 0.0
    for p, original in zip(collection.photos, sizes):
        if fmt == "same" and p.format == "JPEG":
            total += original
        else:
            total += p.width * p.height / 1e6 * per_mp[fmt if fmt in per_mp else "png"]
    return total, sum(sizes)


def estimate(collection, attack, size: int, background=None, timings: Timings | None = None, fmt: str = "png") -> dict:
    """Seconds of each stage of protecting `collection` (fitted among the images of `background`,
    the loaded background set, when there is one), their total, the peak memory and the output's
    size in bytes: {"start", "read", "fit" (None: no count of the method's work), "write", "total",
    "memory" (calibrated), "memory_model" (before calibration), "bytes", "original_bytes", "passes",
    "per_pass", "runs" (the earlier runs it is calibrated on)}."""
    from .distributed import busy_cores, free_threads

    timings = timings or Timings(attack)
    kept = timings.measured()  # read once: the medians and how many runs they rest on
    cal = timings.medians(kept)
    extra, classes = (0, 0) if background is None else (len(background), background.num_classes)
    passes = attack.passes(len(collection) + extra)
    busy = busy_cores()  # sampled once: the threads of the timed pass and the load on the other stages
    per = seconds_per_pass(attack, size, len(collection.classes) + classes, free_threads(busy)) if passes else None
    pixels = [p.width * p.height for p in collection.photos]
    megapixels = sum(pixels) / 1e6
    load = one_core_load(busy)  # the calibration is of idle cores: reading, writing, starting slow with others' work
    fit = passes * per * cal.get("fit_factor", FIT_FACTOR) if passes and per else None  # per: timed now
    read = megapixels * cal.get("read_per_mp", READ_SECONDS_PER_MEGAPIXEL) * load
    write = megapixels * cal.get("write_per_mp", WRITE_SECONDS_PER_MEGAPIXEL) * load
    start = cal.get("start", START_SECONDS) * load
    rates = {f: cal.get(f"{f}_bytes_per_mp", rate) for f, rate in BYTES_PER_MEGAPIXEL.items()}
    written, originals = output_bytes(collection, fmt, rates)
    memory = BASE_MEMORY + BYTES_PER_PIXEL * max(pixels) + (len(collection) + extra) * 3 * size * size
    return {
        "start": start,
        "read": read,
        "fit": fit,
        "write": write,
        "total": None if fit is None else start + read + fit + write,
        "memory": memory * cal.get("memory_factor", 1.0),  # the model's, scaled as this computer's runs peaked
        "memory_model": memory,
        "bytes": written,
        "original_bytes": originals,
        "passes": passes,
        "per_pass": per,
        "load": load,
        "runs": max(map(len, kept.values()), default=0),
    }


def calibrate(
    est: dict,
    timings: Timings,
    collection,
    *,
    start: float,
    read: float,
    fit: float,
    write: float,
    fmt: str | None = None,
    written_bytes: int | None = None,
    peak_memory: int | None = None,
) -> None:
    """Record what a finished run measured against what its estimate `est` timed, for the next
    estimates on this computer: `written_bytes`, what its photos took in `fmt` (png, webp or jpeg;
    `same` mixes formats and teaches nothing); `peak_memory`, the process's peak in bytes."""
    megapixels = sum(p.width * p.height for p in collection.photos) / 1e6
    timed = est["passes"] * est["per_pass"] if est.get("passes") and est.get("per_pass") else None
    load = est.get("load", 1.0)  # the rates are kept as on idle cores
    rate = fmt in BYTES_PER_MEGAPIXEL and bool(written_bytes) and bool(megapixels)
    timings.record(
        fit_factor=fit / timed if timed else None,
        read_per_mp=read / megapixels / load if megapixels else None,
        write_per_mp=write / megapixels / load if megapixels else None,
        start=start / load,
        memory_factor=peak_memory / est["memory_model"] if peak_memory and est.get("memory_model") else None,
        **({f"{fmt}_bytes_per_mp": written_bytes / megapixels} if rate else {}),
    )


def peak_memory() -> int | None:
    """Bytes this process has held at its peak (resident set), or None where it cannot be told."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux kibibytes


def physical_memory() -> int:
    """Bytes of memory this computer has (0 when it cannot be told)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_size(option: str, size: int, images: int = 1, batch: int = 1) -> None:
    """Refuse, before any work, a square size this computer cannot hold: at the least `images`
    decoded at size x size (uint8; a set beyond the memory-mapping threshold lives on disk) and
    one batch of `batch` at that size in float32 with its gradient. A lower bound: the model's
    own activations come on top."""
    from .data.cache import mmap_threshold

    ram = physical_memory()
    per = 3 * size * size
    data = images * per
    need = (data if data <= mmap_threshold() else 0) + 2 * 4 * per * max(1, batch)
    if ram and need > ram:
        raise ValueError(
            f"{option} {size} needs at least {need / 1e9:.1f} GB of memory ({images} image(s) of {size}x{size} "
            f"px and a batch of {batch}), more than this computer's {ram / 1e9:.1f} GB; choose a smaller {option}"
        )


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe_plan(
    collection, attack, size: int, method: str, est: dict | None = None, look=None, background=None
) -> str:
    """One line: photos found, classes, working size, method, look, estimated time and memory
    (`est`: an estimate already made, so that the line and the caller's numbers agree); with a
    `background` (its source and the loaded set), what the photos are protected against."""
    name, background = background or (None, None)
    counts = torch.bincount(collection.labels, minlength=len(collection.classes)).tolist()
    groups = ", ".join(f"{c} {n}" for c, n in zip(collection.classes, counts))
    if len(groups) > 120:
        groups = groups[:117] + "..."
    est = est or estimate(collection, attack, size, background)
    calibrated = (
        f"timed on {est['runs']} earlier run{'s' if est['runs'] != 1 else ''} here"
        if est["runs"]
        else "not yet timed on this computer: the first run measures it"
    )
    when = (
        f"about {duration(est['total'])} (learning the pattern {duration(est['fit'])}, reading and writing the "
        f"photos {duration(est['read'] + est['write'])}, starting {duration(est['start'])}; {calibrated})"
        if est["fit"] is not None
        else f"reading and writing about {duration(est['read'] + est['write'])} after the method's own time (no "
        f"estimate for {method})"
    )
    mp = collection.megapixels()
    ignored = f"; {len(collection.ignored)} other files left alone" if collection.ignored else ""
    if background is None:
        what = f"in {len(collection.classes)} classes by {collection.label_mode} ({groups})"
    else:
        one = len(collection.classes) == 1
        subjects = "one subject" if one else f"{len(collection.classes)} subjects"
        what = (
            f"of {subjects} ({groups}), {'' if one else 'each '}protected as one class among {len(background)} "
            f"public images of {background.num_classes} other classes (background {name}, not written)"
        )
    return (
        f"{len(collection)} photos (largest {mp:.{0 if mp >= 10 else 1}f} MP) {what}{ignored}; working size "
        f"{size} px; {method} ({attack.preset} preset){'' if look is None else f'; look {look.name}: {look.summary}'}; "
        f"{when}; peak memory about {est['memory'] / 1e9:.1f} GB; the copies take about {megabytes(est['bytes'])} "
        f"(the originals {megabytes(est['original_bytes'])})"
    )


def megabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(0.1, n / 1e6):.1f} MB" if n < 1e7 else f"{n / 1e6:.0f} MB"
