"""Cost as the work grows: wall time and peak memory of `protect` (fit, then apply + export),
`verify` and `evaluate` at several CIFAR-10 training-set sizes, one process per step.

    python experiments/scaling.py --out runs/scaling                            # 1k, 5k, 20k, 50k; bait, em
    python experiments/scaling.py --out runs/scaling --sizes 1000,5000 --methods bait

Each step runs the toolkit's own command (`unlearnable protect | verify | evaluate`) as a child
process, so its peak resident memory is its own (os.wait4); the fit's share of `protect` is the
manifest's `seconds`. `evaluate` trains the demo's pretrained victim (EfficientNet-Lite0,
ImageNet, 64 px, the `cpu` recipe) on the first method's protected set. Finished steps are kept
in OUT/steps.jsonl and skipped when the script is run again with the same --data, --set and
--epochs (kept in OUT/settings.json; other values stop it before any work). Prints one table
with two fits to each step, the growth exponent (time ~ n^b, least squares on the logs) and a
fixed cost plus a cost per image (time = a + c n), and writes OUT/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from unlearnable.io import atomic_write_text


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """(seconds, peak resident MB) of one child process; its output to `log`; stops on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"scaling: {' '.join(cmd)} failed; see {log}")
    return seconds, usage.ru_maxrss / 1024


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """(intercept, slope) of the least-squares line through the points; None with fewer than two sizes."""
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def fit_exponent(points: list[tuple[int, float]]) -> float | None:
    """b in time ~ n^b: the slope on the logs."""
    line = least_squares([math.log(n) for n, _ in points], [math.log(t) for _, t in points])
    return None if line is None else line[1]


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(fixed seconds, seconds per 1,000 images): time = a + c n. The log-log slope alone reads a
    fixed start-up cost as slow growth; this separates the two."""
    return least_squares([n / 1000 for n, _ in points], [t for _, t in points])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1000,5000,20000,50000", help="training images (multiples of 10)")
    ap.add_argument("--methods", default="bait,em")
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--set", action="append", default=[], help="an option of every method (smoke tests of one)")
    ap.add_argument("--epochs", type=int, default=None, help="victim epochs (default: the recipe's)")
    ap.add_argument("--no-evaluate", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(n % 10 for n in sizes):
        sys.exit("scaling: --sizes must be multiples of 10 (a class-balanced CIFAR-10 subset)")
    methods = args.methods.split(",")
    out = Path(args.out)
    steps_path = out / "steps.jsonl"
    if out.exists() and any(out.iterdir()) and not steps_path.exists():  # resumes only a folder of its own
        sys.exit(f"scaling: --out {out} holds files of something else; name a new folder")
    # Steps are keyed by (step, method, size): a folder resumed with other options would mix runs made two ways.
    settings, settings_path = {"data": args.data, "set": args.set, "epochs": args.epochs}, out / "settings.json"
    if steps_path.exists():
        old = json.loads(settings_path.read_text()) if settings_path.exists() else None
        if old != settings:
            was = "options not recorded" if old is None else ", ".join(f"--{k} {v}" for k, v in old.items())
            sys.exit(f"scaling: --out {out} holds steps made with other options ({was}); name a new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings_path, json.dumps(settings) + "\n")
    done = {}
    if steps_path.exists():
        for line in steps_path.read_text().splitlines():
            rec = json.loads(line)
            done[rec["step"], rec["method"], rec["n"]] = rec
    cli = [sys.executable, "-m", "unlearnable"]
    sets = [x for s in args.set for x in ("--set", s)]

    def step(name: str, method: str, n: int, cmd: list[str], extra=None) -> dict:
        if (name, method, n) in done:
            return done[name, method, n]
        seconds, mb = run(cmd, out / f"{name}-{method}-{n}.log")
        rec = {"step": name, "method": method, "n": n, "seconds": round(seconds, 1), "peak_mb": round(mb)}
        rec.update(extra() if extra else {})
        with open(steps_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
        done[name, method, n] = rec
        return rec

    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    for n in sizes:
        for method in methods:
            folder = out / f"{method}-{n}"
            manifest = folder / "manifest.json"
            step(
                "protect",
                method,
                n,
                [*cli, "protect", "--data", args.data, "--train-per-class", str(n // 10), "--method", method]
                + sets
                + ["--out", str(folder), "--force", "--quiet"],
                lambda manifest=manifest: {"fit_seconds": json.loads(manifest.read_text())["seconds"]},
            )
            step("verify", method, n, [*cli, "verify", str(folder)])
        if not args.no_evaluate:
            cmd = [*cli, "evaluate", "--train", str(out / f"{methods[0]}-{n}"), "--data", args.data]
            cmd += ["--init", "imagenet", "--out", str(out / f"eval-{n}"), "--force", "--quiet"]
            cmd += ["--epochs", str(args.epochs)] if args.epochs else []
            record = out / f"eval-{n}" / "record.json"

            def about_eval(record=record) -> dict:
                rec = json.loads(record.read_text())
                return {
                    "epochs": rec["config"]["epochs"],
                    "final_test_acc": rec["final_test_acc"],
                    "best_test_acc": rec["best_test_acc"],
                }

            step("evaluate", methods[0], n, cmd, about_eval)

    series: dict[tuple[str, str], list[tuple[int, float]]] = {}  # (method, what) -> [(n, seconds)]
    peaks: dict[tuple[str, str], dict[int, int]] = {}  # (method, what) -> {n: peak MB}, whole commands only
    order = ["protect", "verify", "evaluate"]
    for (name, method, n), rec in sorted(done.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]), kv[0][2])):
        if n not in sizes or method not in methods:
            continue
        label = f"evaluate ({rec['epochs']} epochs)" if name == "evaluate" else name
        parts = [(label, rec["seconds"])]
        if name == "protect":
            rest = rec["seconds"] - rec["fit_seconds"]
            parts = [("fit", rec["fit_seconds"]), ("load + apply + export", rest), *parts]
        for what, s in parts:
            series.setdefault((method, what), []).append((n, max(s, 1e-3)))
        peaks.setdefault((method, label), {})[n] = rec["peak_mb"]
    print(f"\n{os.cpu_count()} cores, OMP_NUM_THREADS={threads}; seconds (peak resident MB of the process)\n")
    print("| method | step | " + " | ".join(f"{n:,}" for n in sizes) + " | b (time ~ n^b) | a + c n: a s, c s/1k |")
    print("|---|---|" + "---|" * len(sizes) + "---|---|")
    for (method, what), pts in series.items():
        by_n, mbs = dict(pts), peaks.get((method, what), {})
        cells = [
            "-" if n not in by_n else f"{by_n[n]:,.0f}" + (f" ({mbs[n]:,} MB)" if mbs.get(n) else "") for n in sizes
        ]
        b, line = fit_exponent(pts), fit_line(pts)
        ac = "-" if line is None else f"{line[0]:,.0f} + {line[1]:,.1f}"
        print(f"| {method} | {what} | " + " | ".join(cells) + f" | {'-' if b is None else f'{b:.2f}'} | {ac} |")
    # what the victim learned: a check that the timed runs did the real work
    evals = [rec for (name, method, n), rec in done.items() if name == "evaluate" and n in sizes and method in methods]
    for rec in sorted(evals, key=lambda r: (r["method"], r["n"])):
        final, best = 100 * rec["final_test_acc"], 100 * rec["best_test_acc"]
        about = f"{rec['method']}-{rec['n']} ({rec['epochs']} epochs)"
        print(f"evaluate on {about}: final test {final:.1f}%, best {best:.1f}%")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_mb) = plt.subplots(1, 2, figsize=(11, 5.4), dpi=110)
    styles = {m: ("-", "--", ":", "-.")[i % 4] for i, m in enumerate(methods)}
    colors = {key: f"C{i % 10}" for i, key in enumerate(series)}  # one colour per series in both panels
    for (method, what), pts in series.items():
        b = fit_exponent(pts)
        label = f"{method}: {what}" + (f" (b={b:.2f})" if b is not None else "")
        style = {"marker": "o", "linestyle": styles.get(method, "-"), "color": colors[method, what]}
        ax.plot(*zip(*pts), label=label, **style)
        if (method, what) in peaks:
            ax_mb.plot(*zip(*sorted(peaks[method, what].items())), **style)
    n0 = min(sizes)
    at_n0 = sorted(s for pts in series.values() for n, s in pts if n == n0)
    if at_n0:  # a guide of slope 1 (time proportional to n) through the median time at the smallest size
        t0 = at_n0[len(at_n0) // 2]
        ax.plot([n0, max(sizes)], [t0, t0 * max(sizes) / n0], color="grey", alpha=0.4, linewidth=3, label="~ n")
    for a, ylabel, title in (
        (ax, "wall time (s)", f"time ({os.cpu_count()} cores, {threads} threads; log-log)"),
        (ax_mb, "peak resident memory (MB)", "peak memory of each command"),
    ):
        a.set_xscale("log")
        a.set_xlabel("CIFAR-10 training images")
        a.set_ylabel(ylabel)
        a.set_title(title)
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax_mb.set_ylim(bottom=0)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(out / "scaling.png")
    print(f"\nplot: {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
