"""The demo: BAIT vs EM vs clean on a CPU-size CIFAR-10 subset, three victims, one table.

1. load CIFAR-10 and take a class-balanced training subset; the test set stays whole;
2. protect the subset with EM and with BAIT (CPU presets) and export each as a PNG folder;
3. train three victims on the clean subset and on each exported folder (read back from its PNGs),
   test on the clean test set: from scratch, and ImageNet-pretrained with a fast fine-tune and a
   gentle one (a fifth of the learning rate, closer to the BAIT paper's lr 0.001 recipe, under
   which a pretrained model learns EM data);
4. print a Markdown table and write it with the records and plots under --out.
Finished steps are kept, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from .report import markdown_table, pct, plot_curves

METHODS = ("clean", "em", "bait")
# (record key, init, overrides of the cpu victim preset)
VICTIMS: tuple[tuple[str, str, dict], ...] = (
    ("scratch", "scratch", {}),
    ("imagenet", "imagenet", {}),
    ("imagenet-gentle", "imagenet", {"lr": 0.005}),
)


def victim_label(rec: dict) -> str:
    return f"{rec['victim']} ({rec['init']}, lr {rec['config']['lr']:g})"


def run_demo(args) -> dict:
    from .outputs import check_output, claim, input_paths

    out = check_output(args.out, input_paths(args.data, args.download), args.force, "demo", resume=True)
    run = {"command": "demo", "data": args.data, "train_per_class": args.train_per_class, "seed": args.seed}
    with claim(out, {**run, "test_per_class": args.test_per_class}, "unlearnable demo"):
        return _demo(args, out)


def earlier_settings(out: Path) -> dict:
    """The settings an existing demo folder was made with: its demo.json's, or for a demo written
    before demo.json recorded them, the subset and seed its protected folders' manifests record."""
    from .io import read_json

    if (out / "demo.json").is_file() and "settings" in (marker := read_json(out / "demo.json")):
        return dict(marker["settings"])
    for manifest in sorted((out / "protected").glob("*/manifest.json")):
        m = read_json(manifest)
        return {"train_per_class": m.get("train_per_class"), "seed": m.get("seed")}
    return {}


def _demo(args, out: Path) -> dict:
    from . import evaluate
    from .data import balanced_subset, load_dataset
    from .io import atomic_write_text, read_json, set_aside
    from .outputs import marker
    from .protect import protect

    settings = {
        "data": str(args.data),
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class,
        "seed": args.seed,
    }
    if out.exists() and args.force:  # check_output made sure it holds only an earlier demo
        shutil.rmtree(set_aside(out))
    elif out.exists():  # a demo resumes only the demo that was started there: its protections and records are reused
        made = earlier_settings(out)
        differ = [f"{k}: {made[k]!r} -> {v!r}" for k, v in settings.items() if k in made and made[k] != v]
        if differ:
            raise ValueError(
                f"{out} holds a demo made with other settings ({'; '.join(differ)}); resuming would mix "
                "its protections and records with new ones. Pass the same options, another --out, or "
                "--force to start over"
            )
    (out / "records").mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "demo.json",
        json.dumps({**marker("demo"), "settings": settings, "versions": evaluate.versions()}, indent=2),
    )
    progress = not args.quiet
    t_start = time.perf_counter()
    timings = read_json(out / "timings.json") if (out / "timings.json").exists() else {}
    full = load_dataset(args.data, "train", download=args.download)
    train = balanced_subset(full, args.train_per_class, seed=args.seed)
    test = load_dataset(args.data, "test", download=args.download)
    if args.test_per_class:
        test = balanced_subset(test, args.test_per_class, seed=args.seed)
    print(f"demo: {len(train)} training images ({args.train_per_class}/class), {len(test)} clean test images")

    sources = {"clean": train}
    for method in METHODS[1:]:
        folder = out / "protected" / method
        if not (folder / "manifest.json").exists():
            print(f"demo: protecting with {method} (cpu preset)")
            manifest = protect(
                args.data,
                folder,
                method=method,
                preset="cpu",
                seed=args.seed,
                train_per_class=args.train_per_class,
                device=args.device,
                progress=progress,
                download=args.download,
                command=f"unlearnable demo (protect {method})",
            )
            timings[f"protect {method}"] = manifest["seconds"]
            atomic_write_text(out / "timings.json", json.dumps(timings, indent=2))
        sources[method] = load_dataset(folder, "train", cache=False)  # evaluate what was exported

    records = {}
    for key, init, overrides in VICTIMS:
        for method in METHODS:
            path = out / "records" / f"{method}-{key}.json"
            if path.exists():
                records[method, key] = read_json(path, fix="delete it to train that victim again")
                continue
            print(f"demo: victim {key} on {method} data")
            rec = evaluate.run(
                sources[method],
                test,
                init=init,
                preset="cpu",
                seed=args.seed,
                device=args.device,
                progress=progress,
                checkpoint=out / "records" / f".{method}-{key}.checkpoint.pt",
                **overrides,
            )
            rec["train_data"] = method
            atomic_write_text(path, json.dumps(rec, indent=2))
            (out / "records" / f".{method}-{key}.checkpoint.pt").unlink(missing_ok=True)
            timings[f"evaluate {method} {key}"] = rec["seconds"]
            atomic_write_text(out / "timings.json", json.dumps(timings, indent=2))
            records[method, key] = rec
        plot_curves(
            {m: records[m, key] for m in METHODS},
            out / f"curves-{key}.png",
            title=f"{victim_label(records['clean', key])} on clean / EM / BAIT data",
        )

    keys = [key for key, _, _ in VICTIMS]
    header = ["training data"] + [f"{victim_label(records['clean', k])} final / best" for k in keys]
    rows = [
        [m] + [f"{pct(records[m, k]['final_test_acc'])} / {pct(records[m, k]['best_test_acc'])}" for k in keys]
        for m in METHODS
    ]
    table = markdown_table(header, rows)
    total = sum(timings.values())
    note = (
        f"\nClean CIFAR-10 test accuracy (%, {len(test)} images) of victims trained on {len(train)} images; "
        f"lower = better protection.\nCompute time: {total / 60:.1f} min "
        f"(this invocation {(time.perf_counter() - t_start) / 60:.1f} min).\n"
    )
    atomic_write_text(out / "table.md", table + note)
    print()
    print(table + note)
    sys.stdout.flush()
    return {"records": records, "table": table, "timings": timings}
