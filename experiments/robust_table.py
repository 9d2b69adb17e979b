"""Print the cpu-robust table (docs/bait-robust.md) from the results.jsonl of bench runs of
configs/cpu-robust.yaml (one run, or several that each ran a part of its cells).

    python experiments/robust_table.py configs/cpu-robust.yaml runs/bench/cpu-robust/results.jsonl [more.jsonl]

Rows: the config's (victim, defense) columns; columns: its methods, final / best test accuracy
(%), mean ± std over victim seeds where there are several; then BAIT robust's final and best as
a share of the same victim's clean undefended accuracy (the goal: at most 0.5 for every
pretrained victim). A cell not run yet shows '-'.
"""

import json
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from unlearnable.bench import columns  # noqa: E402

cfg = yaml.safe_load(Path(sys.argv[1]).read_text())
records = [json.loads(line) for p in sys.argv[2:] for line in Path(p).read_text().splitlines() if line.strip()]
SAME_RECIPE = {"imagenet": "fast"}  # the defended rows train the fast victim's recipe


def runs(method, victim, defense):
    return [r for r in records if (r["method"], r["victim_name"], r["defense_name"]) == (method, victim, defense)]


def summary(rs, key):
    vals = [100 * r[key] for r in rs]
    if not vals:
        return None, "-"
    m = statistics.mean(vals)
    return m, f"{m:.1f}" + (f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else "")


methods = list(cfg["methods"])
init = {v["name"]: v["init"] for v in cfg["victims"]}
print("| victim + defense | " + " | ".join(methods) + " | robust / clean: final, best | seeds |")
print("|---" * (len(methods) + 3) + "|")
for victim, defense in columns(cfg):
    row = f"{victim}" + (f" + {defense}" if defense != "none" else "")
    cells = []
    for m in methods:
        rs = runs(m, victim, defense)
        cells.append(f"{summary(rs, 'final_test_acc')[1]} / {summary(rs, 'best_test_acc')[1]}" if rs else "-")
    ref = runs("clean", SAME_RECIPE.get(victim, victim), "none")
    robust = runs("bait-robust", victim, defense)
    ratio = "-"
    if ref and robust:
        parts = []
        for key in ("final_test_acc", "best_test_acc"):
            share = summary(robust, key)[0] / summary(ref, key)[0]
            goal = "" if init[victim] == "scratch" else (" ok" if share <= 0.5 else " MISS")
            parts.append(f"{share:.2f}{goal}")
        ratio = ", ".join(parts)
    n = max((len(runs(m, victim, defense)) for m in methods), default=0)
    print(f"| {row} | " + " | ".join(cells) + f" | {ratio} | {n} |")
