"""A job's state in the words the page shows: what it is doing, how far, how long is left.

Progress only goes forward: the stages of a run come in one order (ORDER), the fraction shown is
of the whole run (each stage its share), and between two stages (no bar open) the page says
which stage is done rather than starting again.
"""

from __future__ import annotations

from ..plan import duration

STAGES = {  # the pipeline's progress bars -> what a person is told
    "reading photos": "Reading the photos",
    "writing protected photos": "Writing the protected photos",
    "check: training test models": "Training test models on your photos",
    "reading the protected photos": "Reading the protected photos",
}


ORDER = [  # the stages' words in the order a run goes through them
    "Reading the photos",
    "Reading the protected photos",
    "Learning the protective pattern",
    "Training test models on your photos",
    "Writing the protected photos",
]


def stage_words(stage: str) -> str:
    from ..attacks import ATTACKS

    if stage in STAGES:
        return STAGES[stage]
    if stage.replace(":", " ").split(" ")[0] in ATTACKS:  # a method's bar: "bait: learning the protection"
        return "Learning the protective pattern"
    return stage[:1].upper() + stage[1:] if stage else "Working"


def shares(job: dict) -> dict[str, float]:
    """Each stage's share of the whole run: reading a twentieth, writing its planned part."""
    if job.get("kind") == "check":
        return {"Reading the protected photos": 0.05, "Training test models on your photos": 0.95}
    plan = job.get("plan") or {}
    total, write = plan.get("seconds"), plan.get("write_seconds")
    writing = min(0.5, max(0.02, write / total)) if total and write is not None else 0.1
    return {
        "Reading the photos": 0.05,
        "Learning the protective pattern": 0.95 - writing,
        "Writing the protected photos": writing,
    }


def fraction(job: dict) -> float | None:
    """How much of the whole run is done (0-1), or None before its first stage (the bar then moves
    without a value). Stages finished count whole; the current one by its own bar."""
    if job["state"] == "done":
        return 1.0
    progress = job.get("progress") or {}
    share = shares(job)
    seen = [stage_words(s) for s in progress.get("done") or []]
    bars = progress.get("bars") or []
    current = stage_words(bars[0]["stage"]) if bars else None
    if current is None and not seen:
        return None
    at = max([ORDER.index(w) for w in seen + [current] if w in ORDER] or [0])
    done = sum(v for k, v in share.items() if k in ORDER and ORDER.index(k) < at)
    if bars and current in share and ORDER.index(current) == at and bars[0]["total"]:
        done += share[current] * min(1.0, bars[0]["n"] / bars[0]["total"])
    elif not bars and seen and ORDER[at] in share:
        done += share[ORDER[at]]
    return round(min(1.0, done), 4)


def in_words(job: dict) -> str:
    state = job["state"]
    if state == "queued":
        return "Waiting to start (jobs run one at a time)." + (f" {job['note']}." if job.get("note") else "")
    if state == "done":
        took = job.get("ran") or (job.get("ended") or 0) - (job.get("started") or 0)
        return f"Finished in {duration(took)}." if took > 0 else "Finished."
    if state == "failed":
        return f"Stopped: {job.get('error') or 'see the log'}"
    if state == "cancelled":
        return "Cancelled. Resume carries on where it stopped."
    progress = job.get("progress") or {}
    bars = progress.get("bars") or []
    if job.get("stopping"):
        return "Stopping: what is finished is kept, and Resume carries on from there..."
    if not bars:
        seen = [stage_words(s) for s in progress.get("done") or [] if stage_words(s) in ORDER]
        if seen:
            last = max(seen, key=ORDER.index)
            return f"{last}: done. Going on to the next step..."
        return "Starting (loading the models)..."
    outer = bars[0]
    words = stage_words(outer["stage"])
    n, total = outer["n"], outer["total"]
    if total:
        unit = outer["unit"]
        if unit in ("round", "model", "photo", "img"):
            words += f": {n:g} of {total:g} {unit}s" if unit != "img" else f": {n:g} of {total:g}"
        else:
            words += f": {100 * n / total:.0f}%"
    if outer.get("remaining") is not None and n:
        words += f", about {duration(outer['remaining'])} left"
    elif total:
        words += ", estimating the time left"
    plan = job.get("plan") or {}
    if outer["stage"].endswith("learning the protection") and plan.get("write_seconds") is not None:
        words += f", then writing the photos (about {duration(plan['write_seconds'])})"
    if len(bars) > 1 and bars[-1]["total"]:
        inner = bars[-1]
        words += f" (now: {inner['stage']}, {100 * inner['n'] / inner['total']:.0f}%)"
    return words + "."
