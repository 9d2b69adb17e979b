"""Print the one-subject tables (docs/photos.md) from bench results: for every victim and every
protected class, the accuracy on that class's clean test images at the final epoch and at the
best epoch (the one of highest test accuracy over all classes, what `best_test_acc` reports)
against a clean victim's, and the mean over the other classes.

    python experiments/one_subject_table.py runs/bench-one-subject [runs/bench-one-subject-small ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def classes_of(out: Path, dataset: str) -> list[str]:
    for m in sorted((out / "protected" / dataset).glob("*/manifest.json")):
        return list(json.loads(m.read_text())["classes"])
    raise SystemExit(f"{out}: no protected folder of {dataset} yet")


def main(outs: list[str]) -> None:
    for out in map(Path, outs):
        recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
        for dataset in dict.fromkeys(r["dataset"] for r in recs):
            classes = classes_of(out, dataset)
            rows = [r for r in recs if r["dataset"] == dataset]
            clean = {r["victim_name"]: r for r in rows if r["method"] == "clean"}
            print(f"\n{out.name} / {dataset} (n_train {rows[0]['n_train']})")
            print(
                "| victim | protected class | clean victim on it final / best | protected final / best | ratio "
                "final / best | other classes clean / protected |"
            )
            print("|---|---|---|---|---|---|")
            means: dict[str, list] = {}
            for r in rows:
                if r["method"] == "clean" or r["victim_name"] not in clean:
                    continue
                c = r["protected_classes"][0]
                k = classes.index(c)
                base = clean[r["victim_name"]]
                per = [h["test_class_acc"] for h in r["history"]]
                ref = [h["test_class_acc"] for h in base["history"]]
                pb = per[max(range(len(per)), key=lambda e: r["history"][e]["test_acc"])][k]
                cb = ref[max(range(len(ref)), key=lambda e: base["history"][e]["test_acc"])][k]
                pf, cf = per[-1][k], ref[-1][k]
                others = [i for i in range(len(classes)) if i != k]
                of = sum(per[-1][i] for i in others) / len(others)
                cof = sum(ref[-1][i] for i in others) / len(others)
                means.setdefault(r["victim_name"], []).append((pf / cf, pb / cb, of - cof))
                print(
                    f"| {r['victim_name']} | {c} | {100 * cf:.1f} / {100 * cb:.1f} | {100 * pf:.1f} / {100 * pb:.1f} "
                    f"| {pf / cf:.2f} / {pb / cb:.2f} | {100 * cof:.1f} / {100 * of:.1f} ({100 * (of - cof):+.1f}) |"
                )
            for v, m in means.items():
                n = len(m)
                print(
                    f"mean over {n} classes, {v}: ratio final {sum(x[0] for x in m) / n:.2f}, best "
                    f"{sum(x[1] for x in m) / n:.2f}; other classes {100 * sum(x[2] for x in m) / n:+.1f} points"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
