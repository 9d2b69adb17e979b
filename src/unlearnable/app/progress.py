"""A job's state in the words the page shows: what it is doing, how far, how long is left."""

from __future__ import annotations

from ..plan import duration

STAGES = {  # the pipeline's progress bars -> what a person is told
    "reading photos": "Reading the photos",
    "bait: learning the protection": "Learning the protective pattern",
    "writing protected photos": "Writing the protected photos",
    "check: training test models": "Training test models on your photos",
    "reading the protected photos": "Reading the protected photos",
}


def stage_words(stage: str) -> str:
    from ..attacks import ATTACKS

    if stage in STAGES:
        return STAGES[stage]
    if stage.replace(":", " ").split(" ")[0] in ATTACKS:  # a method's own bar: "em classwise", "gue: ..."
        return "Learning the protective pattern"
    return stage[:1].upper() + stage[1:] if stage else "Working"


def in_words(job: dict) -> str:
    state = job["state"]
    if state == "queued":
        return "Waiting to start (jobs run one at a time)." + (f" {job['note']}." if job.get("note") else "")
    if state == "done":
        took = (job.get("ended") or 0) - (job.get("started") or 0)
        return f"Finished in {duration(took)}." if took > 0 else "Finished."
    if state == "failed":
        return f"Stopped: {job.get('error') or 'see the log'}"
    if state == "cancelled":
        return "Cancelled. Resume carries on where it stopped."
    bars = (job.get("progress") or {}).get("bars") or []
    if not bars:
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
