"""Markdown table of an experiments/dataset-cpu.sh run: final / best clean test accuracy of both
victims for clean, EM and BAIT data, with each step's wall time and peak memory."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def acc(m: str, init: str) -> str:
    path = out / f"eval-{m}-{init}" / "record.json"
    if not path.exists():
        return "-"
    r = json.loads(path.read_text())
    return f"{100 * r['final_test_acc']:.1f} / {100 * r['best_test_acc']:.1f}"


def cost(name: str) -> str:
    path = out / f"{name}.time"
    lines = path.read_text().strip().splitlines() if path.exists() else []
    if not lines or ", peak " not in lines[-1]:  # not run, or still running
        return "-"
    seconds, peak = lines[-1].split(", peak ")
    return f"{float(seconds.split()[0]):.0f} s, {int(peak.split()[0]) / 1024**2:.1f} GiB"


record = next(out.glob("eval-*/record.json"), None)
if record is not None:
    r = json.loads(record.read_text())
    print(f"test images: {r['n_test']}; command of one step: `{r.get('command', '')}`\n")
print(
    "| data | protect (time, peak memory) | scratch final / best | imagenet final / best | "
    "victim runs (time, peak memory) |"
)
print("|---|---|---|---|---|")
for m in ("clean", "em", "bait"):
    runs = "; ".join(f"{init}: {cost(f'eval-{m}-{init}')}" for init in ("scratch", "imagenet"))
    print(f"| {m} | {'-' if m == 'clean' else cost(m)} | {acc(m, 'scratch')} | {acc(m, 'imagenet')} | {runs} |")
