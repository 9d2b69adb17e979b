"""Print the tables of experiments/partial-and-clusters.sh from its record.json files."""

import json
import sys
from pathlib import Path

d = Path(sys.argv[1])


def rec(name):
    p = d / name / "record.json"
    return json.loads(p.read_text()) if p.is_file() else None


def cell(r):
    return f"{100 * r['final_test_acc']:.1f} / {100 * r['best_test_acc']:.1f}" if r else "-"


clean = rec("eval-clean")
print(f"clean: {cell(clean)}")
print("| protected part | BAIT final / best | EM final / best |\n|---|---|---|")
for f in ("1.0", "0.5", "0.25", "0.1"):
    print(f"| {float(f) * 100:.0f}% of every class | {cell(rec(f'eval-bait-{f}'))} | {cell(rec(f'eval-em-{f}'))} |")
print("\n| 3 of 10 classes protected | BAIT | EM |\n|---|---|---|")
rows = {m: rec(f"eval-{m}-3classes") for m in ("bait", "em")}
for key, what in (
    ("protected_classes_acc", "accuracy on the 3 protected classes"),
    ("other_classes_acc", "on the 7 others"),
):
    print(f"| {what} | " + " | ".join(f"{100 * r[key]:.1f}" if r else "-" for r in rows.values()) + " |")
if clean:
    per = clean["history"][-1]["test_class_acc"]
    print(
        f"| clean victim, same 3 classes / 7 others | {100 * sum(per[:3]) / 3:.1f} / {100 * sum(per[3:]) / 7:.1f} | |"
    )
print("\n| labels the method was fitted with | BAIT final / best | EM final / best |\n|---|---|---|")
print(f"| true classes | {cell(rec('eval-bait-1.0'))} | {cell(rec('eval-em-1.0'))} |")
print(f"| clusters:10 | {cell(rec('eval-bait-clusters'))} | {cell(rec('eval-em-clusters'))} |")
print(f"| clusters:50 | {cell(rec('eval-bait-clusters50'))} | {cell(rec('eval-em-clusters50'))} |")
for m in ("clusters", "clusters50"):
    p = d / f"em-{m}" / "manifest.json"
    if p.is_file():
        man = json.loads(p.read_text())
        pairs = [(e["label"], e["source"].split("/")[0]) for e in man["photo_files"].values()]  # its class folder
        groups = {}
        for g, c in pairs:
            groups.setdefault(g, []).append(c)
        purity = sum(max(v.count(c) for c in set(v)) for v in groups.values()) / len(pairs)
        print(f"{m}: purity {100 * purity:.1f}% (share of images in their cluster's majority class)")
