"""Visibility against protection, one point per look (docs/photos.md, "Looks").

Reads what experiments/visibility.py scored (JSON lines, one per photo and look) and what
experiments/look-protection.sh measured (a work folder holding check-NAME/ and eval-NAME-*/ per
look), prints one table row per look and plots the pretrained photo victim's accuracy (as a
fraction of clean) against the looks' worst and median SSIMULACRA2.

    python experiments/look_tradeoff.py --visibility vis.jsonl --protection runs/look-protection \
        --look strong --look strong-smooth --look subtle --look invisible --plot docs/look/tradeoff.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

VICTIMS = ("scratch", "imagenet", "imagenet-gentle")  # the 5k row's victims, as look-protection.sh names them


def visibility(path: Path, look: str) -> dict:
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if r["variant"] == look]
    if not rows:
        raise SystemExit(f"{path}: no photos scored for {look!r}; run experiments/visibility.py --protected {look}=...")
    out = {}
    for view in ("100", "screen"):
        scores = [r[f"ssimulacra2_{view}"] for r in rows]
        out[view] = (min(scores), statistics.median(scores))
    return out


def protection(work: Path, look: str) -> dict:
    report = json.loads((work / f"check-{look}" / "report.json").read_text())
    rows = report["rows"]
    out = {"clean": rows["clean"]["imagenet"]}
    for row in ("protected", "jpeg75"):
        out[row] = rows[row]["imagenet"]
    for v in VICTIMS:
        record = work / f"eval-{look}-{v}" / "record.json"
        if record.exists():
            r = json.loads(record.read_text())
            out[v] = {"final": r["final_test_acc"], "best": r["best_test_acc"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visibility", type=Path, required=True, help="experiments/visibility.py --results")
    ap.add_argument("--protection", type=Path, required=True, help="experiments/look-protection.sh's work folder")
    ap.add_argument("--look", action="append", required=True, help="a look's name in both (repeat)")
    ap.add_argument(
        "--measured",
        action="append",
        default=[],
        metavar="LOOK=FINAL,BEST",
        help="a look whose photo protection was measured elsewhere (fractions of clean), plotted with its visibility",
    )
    ap.add_argument("--plot", type=Path, help="PNG of the trade-off")
    args = ap.parse_args()

    pct = lambda a: f"{100 * a['final']:.1f} / {100 * a['best']:.1f}"  # noqa: E731
    print(
        "| look | SSIMULACRA2 100%, min / median | fit to screen, min / median | photos, as published "
        "| photos, then JPEG 75 | " + " | ".join(f"5k row: {v}" for v in VICTIMS) + " |"
    )
    print("|---" * (5 + len(VICTIMS)) + "|")
    points = []
    for look in args.look:
        v, p = visibility(args.visibility, look), protection(args.protection, look)
        clean = p["clean"]["final"]
        cells = [f"{v[k][0]:.1f} / {v[k][1]:.1f}" for k in ("100", "screen")]
        for row in ("protected", "jpeg75"):
            a = p[row]
            cells.append(f"{pct(a)} ({a['final'] / clean:.2f} / {a['best'] / clean:.2f})")
        cells += [pct(p[k]) if k in p else "-" for k in VICTIMS]
        print(f"| {look} | " + " | ".join(cells) + " |")
        points.append((look, v, p["protected"]["final"] / clean, p["protected"]["best"] / clean))
    print(f"clean (photos, pretrained victim): {100 * clean:.1f}")
    for item in args.measured:
        look, _, fractions = item.partition("=")
        final, best = (float(f) for f in fractions.split(","))
        points.append((look, visibility(args.visibility, look), final, best))
        print(f"{look}: photo protection {final:.2f} / {best:.2f} of clean (measured elsewhere)")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for look, v, final, best in points:
            ax.plot([v["100"][0], v["100"][1]], [final, final], "-", color="0.6", lw=1)
            ax.plot(v["100"][1], final, "o", color="tab:blue")
            ax.plot(v["100"][0], final, "|", color="tab:blue", ms=10)
            ax.plot(v["100"][1], best, "^", color="tab:orange", ms=5)
            ax.annotate(look, (v["100"][1], final), textcoords="offset points", xytext=(5, 5), fontsize=8)
        for x, words in ((80, "worst-photo bar 80"), (85, "median bar 85")):
            ax.axvline(x, color="tab:green", ls="--", lw=1)
            ax.text(x + 0.3, 0.05, words, color="tab:green", fontsize=7, rotation=90, va="bottom")
        ax.set_xlabel("SSIMULACRA2 at 100% on the real-photo set (dot: median, bar: worst photo)")
        ax.set_ylabel("pretrained victim, fraction of clean accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("Looks: invisibility against protection (lower is better protection)", fontsize=9)
        ax.plot([], [], "o", color="tab:blue", label="final epoch")
        ax.plot([], [], "^", color="tab:orange", label="best epoch")
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot -> {args.plot}")


if __name__ == "__main__":
    main()
