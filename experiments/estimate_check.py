"""Does the plan's time hold? The estimate `protect --plan` prints against the wall time of the run.

    python experiments/estimate_check.py PHOTOS OUT [--runs 2] [--loaded 1]

Each run is the plan `protect --plan` prints (protect.photo_plan, its seconds) then
`unlearnable protect` with the defaults, timed from outside, in one cache folder of its own (OUT/cache), so the first
run is estimated with the built-in defaults and each later one with what the earlier runs here
measured (plan.Timings). `--loaded N` adds N runs beside another 2-thread job (a torch matmul
loop) that runs through the plan and the protection alike. Prints one row per run: estimate,
measured, their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LOAD = (
    "import torch\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\nwhile True:\n    a = torch.tanh(a @ a / 32)\n"
)


PLAN = (
    "import json, sys\n"
    "from unlearnable.protect import photo_plan\n"
    "p = photo_plan(sys.argv[1])\n"
    "print(json.dumps({'seconds': p['seconds'], 'stages': p['stages'], 'text': p['text']}))\n"
)


def one_run(photos: Path, out: Path, env: dict) -> tuple[dict, float]:
    """(the plan, as `protect --plan` makes it; the wall seconds of the protection that follows)."""
    plan = json.loads(
        subprocess.run(
            [sys.executable, "-c", PLAN, str(photos)], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "unlearnable", "protect", "--data", str(photos), "--out", str(out), "--quiet"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return plan, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=2, help="runs on an idle machine (default 2)")
    ap.add_argument("--loaded", type=int, default=1, help="runs beside another 2-thread job (default 1)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "UNLEARNABLE_CACHE": str(args.out / "cache")}
    rows = []
    for k in range(args.runs + args.loaded):
        loaded = k >= args.runs
        load = subprocess.Popen([sys.executable, "-c", LOAD]) if loaded else None
        try:
            plan, took = one_run(args.photos, args.out / f"run{k}", env)
        finally:
            if load is not None:
                load.kill()
                load.wait()
        rows.append(
            {
                "run": k + 1,
                "loaded": loaded,
                "estimate": plan["seconds"],
                "stages": plan["stages"],
                "measured": round(took, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n| run | beside another 2-thread job | plan said | measured | measured / plan |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {'yes' if r['loaded'] else 'no'} | {r['estimate']:.0f} s | {r['measured']:.0f} s | "
            f"{r['measured'] / r['estimate']:.2f} |"
        )


if __name__ == "__main__":
    main()
