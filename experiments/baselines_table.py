"""Markdown table of a baselines run: one row per protected folder, final / best test accuracy."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/baselines")
print("| method | budget | protect s | scratch final / best | imagenet final / best | protect command |")
print("|---|---|---|---|---|---|")
for folder in sorted(p.parent for p in out.glob("*/manifest.json")):
    m = json.loads((folder / "manifest.json").read_text())
    cells = []
    for init in ("scratch", "imagenet"):
        rec = out / f"eval-{folder.name}-{init}" / "record.json"
        if rec.exists():
            r = json.loads(rec.read_text())
            cells.append(f"{100 * r['final_test_acc']:.1f} / {100 * r['best_test_acc']:.1f}")
        else:
            cells.append("-")
    b = m.get("budget", {})
    eps = b.get("eps", m.get("eps"))
    budget = f"{b.get('norm', 'linf')} {round(eps * 255)}/255" if b.get("norm", "linf") == "linf" else f"{b['norm']} {eps:.3g}"
    print(f"| {folder.name} | {budget} | {m['seconds']:.0f} | {cells[0]} | {cells[1]} | `{m['command']}` |")
