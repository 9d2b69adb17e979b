"""Run one `unlearnable` CLI command for the app and report its progress to a status file.

    python -m unlearnable.app.worker STATUS.json -- protect PHOTOS --out OUT ...

The command is the CLI's own (cli.main), so the page and the terminal run the same code. Every
progress bar the pipeline opens (tqdm) is reported to STATUS.json, atomically, at most twice a
second: its description, count, total, elapsed and remaining seconds. The worker ends the run
with the CLI's own interrupt (a checkpoint keeps what finished) when the server that started it
goes away, so an orphan never holds the output's lock.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import sys
import threading
import time

import tqdm as _tqdm_pkg
import tqdm.auto as _tqdm_auto
from tqdm.std import tqdm as _tqdm

_status_path: str | None = None
_bars: dict[int, dict] = {}  # the open bars, in the order they were opened (outermost first)
_done: list[str] = []  # the stages of the bars closed so far, in order
_last = 0.0
_lock = threading.Lock()


def report(bar: _tqdm, final: bool = False) -> None:
    """Record `bar` (closed: `final`) and write every open bar to the status file, throttled."""
    global _last
    d = bar.format_dict
    n, total, elapsed, rate = d.get("n", 0), d.get("total"), d.get("elapsed", 0.0), d.get("rate")
    if rate is None and elapsed and n:
        rate = n / elapsed
    remaining = (total - n) / rate if total and rate else None
    now = time.time()
    with _lock:
        if final:
            outermost = next(iter(_bars), None) == id(bar)
            closed = _bars.pop(id(bar), None)
            if outermost and closed and closed["stage"] and closed["stage"] not in _done:
                _done.append(closed["stage"])
        else:
            _bars[id(bar)] = {
                "stage": d.get("prefix") or "",
                "n": n,
                "total": total,
                "unit": d.get("unit", "it"),
                "elapsed": round(elapsed, 1),
                "remaining": None if remaining is None else round(remaining, 1),
                "postfix": (d.get("postfix") or "").strip(", "),
            }
        if _status_path is None or (now - _last < 0.5 and not final):
            return
        _last = now
        from ..io import atomic_write_text

        atomic_write_text(_status_path, json.dumps({"bars": list(_bars.values()), "done": _done, "time": now}))


class ReportingBar(_tqdm):
    """A tqdm bar that draws nothing and reports itself to the status file instead."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("disable") is None:  # "only on a terminal": the page is the terminal here
            kwargs["disable"] = False
        kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        report(self)
        return True

    def close(self):
        disabled, file = self.disable, self.fp
        super().close()  # draws once more (display), so the bar is let go after it
        if not disabled:
            report(self, final=True)
        file.close()


def watch_parent(parent: int) -> None:
    """Interrupt the run (as Ctrl-C would) once the server that started this worker is gone."""
    while os.getppid() == parent:
        time.sleep(1)
    _thread.interrupt_main()


def main(argv: list[str]) -> int:
    global _status_path
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m unlearnable.app.worker STATUS.json -- COMMAND ARGS...", file=sys.stderr)
        return 2
    _status_path = argv[0]
    # An interrupt (the page's Cancel, the server going away) must reach the CLI as Ctrl-C does, even
    # when this process was started with SIGINT ignored (a background job of a shell); SIGTERM too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    for module in (_tqdm_pkg, _tqdm_auto):  # before the pipeline imports its tqdm
        module.tqdm = ReportingBar
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    from ..cli import main as cli_main

    sys.argv = ["unlearnable", *argv[2:]]  # the command line the manifest records
    return cli_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
