"""The app's jobs: CLI runs (protect, check) queued and run one at a time, each in a worker
process (worker.py), recorded in jobs/<id>/job.json so that a page reload finds them and a
restarted app carries on.

States: queued -> running -> done | failed | cancelled. A cancelled or failed job can be queued
again: it runs the same command, which resumes from its checkpoint. When the app starts, a job
that was running when it stopped is queued again, after its old worker (if still alive) has been
interrupted and has exited, so that two runs never share one output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..io import atomic_write_text
from .uploads import new_id

STATES = ("queued", "running", "done", "failed", "cancelled")
STOP_GRACE = 30  # seconds a worker has to stop after an interrupt, before it is killed


class Jobs:
    def __init__(self, work: Path, start: bool = True):
        self.root = work / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._cv = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._running: str | None = None
        self._cancel: set[str] = set()
        self._closed = False
        self._recover()
        self._thread = threading.Thread(target=self._run, name="unlearnable-jobs", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ records
    def folder(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise KeyError(job_id)
        return self.root / job_id

    def get(self, job_id: str) -> dict:
        try:
            job = json.loads((self.folder(job_id) / "job.json").read_text())
        except (OSError, ValueError):
            raise KeyError(job_id) from None
        try:
            job["progress"] = json.loads((self.folder(job_id) / "status.json").read_text())
        except (OSError, ValueError):
            job["progress"] = None
        return job

    def all(self) -> list[dict]:
        jobs = []
        for p in self.root.iterdir():
            try:
                jobs.append(self.get(p.name))
            except KeyError:
                continue
        return sorted(jobs, key=lambda j: j["created"], reverse=True)

    def _save(self, job: dict) -> None:
        job = {k: v for k, v in job.items() if k != "progress"}
        atomic_write_text(self.folder(job["id"]) / "job.json", json.dumps(job, indent=1))

    def _update(self, job_id: str, **changes) -> dict:
        with self._cv:
            job = self.get(job_id)
            job.update(changes)
            self._save(job)
            return job

    # ------------------------------------------------------------------ actions
    def submit(self, kind: str, argv: list[str], out: str, **meta) -> dict:
        """Queue the CLI command `argv` (its words after `unlearnable`), whose "{out}" is the job's
        own output, the folder `out` inside the job's folder; `meta` is kept with it."""
        job_id = new_id()
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        path = str(folder / out)
        argv = [path if a == "{out}" else a for a in argv]
        job = {"id": job_id, "kind": kind, "argv": argv, "out": path, "state": "queued", "created": time.time(), **meta}
        with self._cv:
            self._save(job)
            self._cv.notify_all()
        return job

    def cancel(self, job_id: str) -> dict:
        with self._cv:
            job = self.get(job_id)
            if job["state"] == "queued":
                return self._update(job_id, state="cancelled", ended=time.time(), note="cancelled before it started")
            if job["state"] == "running" and self._running == job_id and self._proc is not None:
                self._cancel.add(job_id)
                _interrupt(self._proc.pid)
                job = self._update(job_id, stopping=True)  # the page says "stopping" until it has
                proc = self._proc
                last_resort = threading.Timer(STOP_GRACE, _kill_if_running, args=(proc,))
                last_resort.daemon = True
                last_resort.start()
            return job

    def resume(self, job_id: str) -> dict:
        with self._cv:
            job = self.get(job_id)
            if job["state"] not in ("cancelled", "failed"):
                raise ValueError(f"job {job_id} is {job['state']}; only a cancelled or failed job can be resumed")
            job = self._update(job_id, state="queued", error=None, note="queued again: it resumes from its checkpoint")
            self._cv.notify_all()
            return job

    def delete(self, job_id: str) -> list[str]:
        """Remove a job that is not queued or running, with every check of it: its folder holds only
        what the app wrote (the protected copies, previews, checkpoints, logs). The ids removed."""
        with self._cv:
            job = self.get(job_id)
            doomed = [job] + [j for j in self.all() if j.get("of") == job_id]
            busy = [j for j in doomed if j["state"] in ("queued", "running")]
            if busy:
                what = "this job" if busy[0]["id"] == job_id else "a check of this job"
                raise ValueError(f"{what} is {busy[0]['state']}: cancel it first, then delete")
            for j in doomed:
                shutil.rmtree(self.folder(j["id"]))
            return [j["id"] for j in doomed]

    def close(self, wait: bool = True) -> None:
        """Stop taking jobs; interrupt the running one (its checkpoint keeps its work)."""
        with self._cv:
            self._closed = True
            if self._proc is not None:
                _interrupt(self._proc.pid)
            self._cv.notify_all()
        if wait and self._thread.is_alive():
            self._thread.join(STOP_GRACE + 5)

    # ------------------------------------------------------------------ the queue
    def _recover(self) -> None:
        for job in self.all():
            if job["state"] != "running":
                continue
            pid, status = job.get("pid"), self.folder(job["id"]) / "status.json"
            if pid and _is_worker(pid, status):
                _interrupt(pid)
                _wait_gone(pid, status, STOP_GRACE)
            self._update(
                job["id"],
                state="queued",
                pid=None,
                note="the app stopped while this ran; it resumes from its checkpoint",
            )

    def _next(self) -> dict | None:
        queued = [j for j in self.all() if j["state"] == "queued"]
        return min(queued, key=lambda j: j["created"]) if queued else None

    def _run(self) -> None:
        while True:
            with self._cv:
                job = None if self._closed else self._next()
                while job is None and not self._closed:
                    self._cv.wait(1.0)
                    job = self._next()
                if self._closed:
                    return
                assert job is not None
                folder = self.folder(job["id"])
                (folder / "status.json").unlink(missing_ok=True)
                log = open(folder / "log.txt", "ab")  # noqa: SIM115 - closed below
                cmd = [sys.executable, "-m", "unlearnable.app.worker", str(folder / "status.json"), "--", *job["argv"]]
                env = {**os.environ, "PYTHONUNBUFFERED": "1", **cache_env(self.root.parent)}
                self._proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
                )
                self._running = job["id"]
                self._update(job["id"], state="running", pid=self._proc.pid, started=time.time(), stopping=False)
            rc = self._proc.wait()
            log.close()
            with self._cv:
                stretch = time.time() - (self.get(job["id"]).get("started") or time.time())
                ran = (self.get(job["id"]).get("ran") or 0.0) + stretch  # every stretch of a resumed job
                self._update(job["id"], ran=round(ran, 1), stopping=False)
                cancelled = job["id"] in self._cancel
                self._cancel.discard(job["id"])
                if self._closed and not cancelled:  # the app is stopping: run it again when it starts
                    self._update(job["id"], state="running", ended=None)
                elif rc == 0:
                    self._update(job["id"], state="done", ended=time.time(), pid=None)
                elif cancelled:
                    self._update(
                        job["id"],
                        state="cancelled",
                        ended=time.time(),
                        pid=None,
                        note="cancelled; resume carries on from its checkpoint",
                    )
                else:
                    self._update(
                        job["id"], state="failed", ended=time.time(), pid=None, error=last_error(folder / "log.txt")
                    )
                self._proc, self._running = None, None


def cache_env(work: Path) -> dict[str, str]:
    """Caches of the worker (decoded data, matplotlib's fonts, torch) inside the work folder: the
    app writes nowhere else."""
    cache = work / "cache"
    return {
        "UNLEARNABLE_CACHE": str(cache / "unlearnable"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "TORCH_HOME": str(cache / "torch"),
        "XDG_CACHE_HOME": str(cache),
    }


def last_error(log: Path) -> str:
    """The CLI's one-line error from a worker's log (or its last line)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "the run stopped with no message"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["the run stopped with no message"])[-1].removeprefix("error:").strip()


def _interrupt(pid: int) -> None:
    """Ctrl-C for a worker (its own process group): the CLI stops at once, keeping its checkpoint."""
    try:
        os.killpg(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        pass


def _is_worker(pid: int, status: Path) -> bool:
    """Whether `pid` is still the worker of the job whose status file is `status` (a pid may have
    been reused since, by anything, another app's worker included)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: assume it is ours rather than run two workers on one output
    return b"unlearnable.app.worker" in cmdline and str(status).encode() in cmdline


def _kill_if_running(proc: subprocess.Popen) -> None:
    """The last resort of a cancel: a worker that did not stop within STOP_GRACE of its interrupt."""
    if proc.poll() is None:
        _kill(proc.pid)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, status: Path, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not _is_worker(pid, status):
            return
        time.sleep(0.2)
    _kill(pid)
