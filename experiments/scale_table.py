"""Print a bench's datasets side by side (docs/full-scale.md): for every victim, defense and
method, the final and the best epoch's clean test accuracy on each dataset, and the final
epoch's ratio to the clean row of the same victim and dataset. Victim entries that train the
same way (they differ only in the cells they ask for: their methods, defenses or seeds) are one
column, their seeds pooled: mean ± sample std over the seeds, and the number of seeds where
there are several. Then the cost of every cell, and of every protection whose folder is there.

    python experiments/scale_table.py results/cifar10-full
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import yaml

GRID_KEYS = ("name", "defenses", "seeds", "methods")  # what a victim entry asks for, not how it trains


def recipes(cfg: dict) -> dict[str, str]:
    """Each victim's name -> the first victim entry of the config that trains the same way."""
    first: dict[str, str] = {}
    out = {}
    for v in cfg["victims"]:
        how = json.dumps({k: x for k, x in v.items() if k not in GRID_KEYS}, sort_keys=True)
        out[v["name"]] = first.setdefault(how, v["name"])
    return out


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    m = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {100 * statistics.stdev(values):.1f}"


def main(out: Path) -> None:
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
    recipe = recipes(cfg)
    cells: dict[tuple, list[dict]] = {}
    for r in recs:
        cells.setdefault((r["dataset"], r["method"], recipe[r["victim_name"]], r["defense_name"]), []).append(r)
    datasets = [d["name"] for d in cfg["datasets"]]
    n_train = {d: next((r["n_train"] for r in recs if r["dataset"] == d), None) for d in datasets}
    columns: dict[tuple[str, str], dict[str, None]] = {}  # (victim, defense) -> the methods asked of it
    for v in cfg["victims"]:
        for f in v.get("defenses", cfg["defenses"]):
            columns.setdefault((recipe[v["name"]], f), {}).update(dict.fromkeys(v.get("methods", cfg["methods"])))

    def mean_final(key) -> float | None:
        rs = cells.get(key, [])
        return statistics.fmean(r["final_test_acc"] for r in rs) if rs else None

    head = ["victim", "defense", "method"]
    for d in datasets:
        size = f"{n_train[d]:,}" if n_train[d] else "?"
        head += [f"{d} ({size}) final / best", "ratio"]
    if len(datasets) == 2:
        head.append("ratio change")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (v, f), asked in columns.items():
        for m in (m for m in cfg["methods"] if m in asked):
            row = [v, f, m]
            ratios = []
            for d in datasets:
                rs = cells.get((d, m, v, f), [])
                acc = f"{summary([r['final_test_acc'] for r in rs])} / {summary([r['best_test_acc'] for r in rs])}"
                if len(rs) > 1:
                    acc += f" ({len(rs)} seeds)"
                clean = mean_final((d, "clean", v, f))
                ratio = mean_final((d, m, v, f)) / clean if rs and clean else None
                ratios.append(ratio)
                row += [acc if rs else "-", "-" if ratio is None else f"{ratio:.2f}"]
            if len(datasets) == 2:
                a, b = ratios
                row.append("-" if a is None or b is None or m == "clean" else f"{b - a:+.2f}")
            print("| " + " | ".join(row) + " |")

    print("\nMinutes per cell (training and testing the victim; median over the cells measured, and their number):")
    print("| victim | " + " | ".join(datasets) + " |")
    print("|" + "---|" * (len(datasets) + 1))
    for v in dict.fromkeys(recipe.values()):
        row = [v]
        for d in datasets:
            secs = [r["seconds"] for (dd, _, vv, _), rs in cells.items() if dd == d and vv == v for r in rs]
            row.append(f"{statistics.median(secs) / 60:.1f} ({len(secs)})" if secs else "-")
        print("| " + " | ".join(row) + " |")
    fits = []
    for d in datasets:
        for manifest in sorted((out / "protected" / d).glob("*/manifest.json")):
            m = json.loads(manifest.read_text())
            if m.get("fit_seconds") is not None:
                fits.append(f"{d} {manifest.parent.name}: {m['fit_seconds'] / 60:.1f} min")
    if fits:
        print("\nProtection fits: " + "; ".join(fits))
    done = sum(len(rs) for rs in cells.values())
    print(f"\n{done} cells measured, seed {cfg['seeds']} for the grid.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
