"""Markdown table of a baselines run: one row per protected folder, final / best test accuracy.
Rows for clean data, class-wise EM and BAIT come from the demo's records when present
(`unlearnable demo` evaluates them with the same victims on the same subset)."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/baselines")
demo = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/demo")


def cell(path: Path) -> str:
    if not path.exists():
        return "-"
    r = json.loads(path.read_text())
    return f"{100 * r['final_test_acc']:.1f} / {100 * r['best_test_acc']:.1f}"


print("| method | budget | protect s | scratch final / best | imagenet final / best | command |")
print("|---|---|---|---|---|---|")
if (demo / "records").exists():
    timings = json.loads((demo / "timings.json").read_text()) if (demo / "timings.json").exists() else {}
    for method in ("clean", "em", "bait"):
        seconds = timings.get(f"protect {method}")
        print(
            f"| {method if method != 'em' else 'em (class-wise)'} | {'-' if method == 'clean' else 'linf 8/255'} | "
            f"{'-' if seconds is None else f'{seconds:.0f}'} | {cell(demo / 'records' / f'{method}-scratch.json')} | "
            f"{cell(demo / 'records' / f'{method}-imagenet.json')} | `unlearnable demo` |"
        )
for folder in sorted(p.parent for p in out.glob("*/manifest.json")):
    m = json.loads((folder / "manifest.json").read_text())
    b = m.get("budget", {})
    norm, eps = b.get("norm", "linf"), b.get("eps", m.get("eps"))
    budget = f"linf {round(eps * 255)}/255" if norm == "linf" else f"{norm} {eps:.3g}"
    scratch = cell(out / f"eval-{folder.name}-scratch" / "record.json")
    print(
        f"| {folder.name} | {budget} | {m['seconds']:.0f} | {scratch} | "
        f"{cell(out / f'eval-{folder.name}-imagenet' / 'record.json')} | `{m['command']}` |"
    )
