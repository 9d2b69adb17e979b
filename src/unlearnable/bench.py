"""The benchmark harness: a grid of datasets x methods x victims x defenses x seeds, measured the
same way, resumable, with a table, a CSV and plots at the end.

A config (YAML) names the grid:

    name: cpu-mini
    preset: cpu                 # presets of the methods and victims
    seeds: [0]
    datasets:
      - {name: cifar10, source: cifar10, train_per_class: 500}
    methods:                    # row name -> options for create_attack
      clean: {}                 # no protection
      em: {}                    # the row name is the method (method* for a pretrained surrogate) ...
      em-sw: {method: em, kind: samplewise}   # ... unless `method` names it
      bait-robust: {method: bait, preset: robust}   # a row may take another preset of its method
      bait-invisible: {method: bait, look: invisible}   # ... or a look (look.py; default: none)
      bait: {}
      bait-25%: {method: bait, protected_fraction: 0.25}   # a quarter of every class protected
      bait-3cls: {method: bait, protected_classes: [airplane, automobile, bird]}
    victims:
      - {name: scratch, init: scratch}
      - {name: imagenet, init: imagenet}
      - {name: linear, init: imagenet, protocol: linear}   # also: victim, epochs, lr, ...
      - {name: gentle, init: imagenet, lr: 0.005, defenses: [none], seeds: [0, 1, 2]}
      - {name: paper-recipe, init: imagenet, preset: paper, victim: efficientnet_lite0, input_size: 64}
      - {name: gentle-seeds, init: imagenet, lr: 0.005, methods: [clean, bait], seeds: [0, 1, 2]}
    defenses:                   # column name -> options for create_defense, the same way
      none: {}
      jpeg: {quality: 10}
      projection-test: {defense: projection, project_test: true}

A victim trains on every method's rows, or only on those its `methods` names, under every
defense, or only under those its `defenses` names; with `seeds` it
trains once per victim seed (the protection stays the one of the cell's seed), and the table
gives the mean and spread over them. Each protected training set is made once per (dataset,
method, seed), exported as a PNG folder
and read back from it, then shared by every victim and defense. A row with `protected_fraction`
or `protected_classes` trains on a set protected only in part (the rest clean: an owner's photos
are a part of what a trainer collects), made from the protection of the same method and options;
its records hold the accuracy on the protected classes and on the others. Every finished cell appends
one JSON line to results.jsonl; a run that is killed and started again skips finished cells
and resumes the current one from its checkpoint. With a launcher (`bench --launcher slurm`,
unlearnable.launch) every protection and cell is a cluster job instead, with the same records.
"""

from __future__ import annotations

import csv
import io
import json
import math
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import yaml
from tqdm.auto import tqdm

from .options import check_options, option
from .report import markdown_table, plot_curves

TOP_KEYS = {"name", "datasets", "methods", "victims", "defenses", "seeds", "preset"}


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset of a bench config, checked like every option (options.check_options)."""

    name: str
    source: str
    train_per_class: int | dict[str, int] | None = option(None, positive=True)  # per class, "*" for the rest
    test_per_class: int | None = option(None, positive=True)
    image_size: int | None = option(None, positive=True)


@dataclass(frozen=True)
class VictimEntry:
    """A victim of a bench config: how it trains (the recipe's overrides) and which cells it asks for."""

    name: str
    init: Literal["scratch", "imagenet"]
    protocol: Literal["finetune", "linear"] = "finetune"
    preset: str | None = None
    victim: str | None = None
    input_size: int | None = option(None, positive=True)
    epochs: int | None = option(None, positive=True)
    lr: float | None = option(None, positive=True)
    batch_size: int | None = option(None, positive=True)
    defenses: list[str] | None = None  # the columns it trains in (default: every defense)
    seeds: list[int] | None = option(None, low=0)  # its own training seeds (cells per seed)
    methods: list[str] | None = None  # the rows it trains on (default: every method)


DATASET_KEYS = {f.name for f in fields(DatasetEntry)}
VICTIM_KEYS = {f.name for f in fields(VictimEntry)}
GRID_KEYS = ("defenses", "seeds", "methods")  # victim keys that shape the grid, not the victim's training


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    victim: str
    defense: str
    seed: int
    victim_seed: int | None = None  # the victim's own training seed, where its entry lists `seeds`

    @property
    def key(self) -> str:
        key = f"{self.dataset}/{self.method}/{self.victim}/{self.defense}/seed{self.seed}"
        return key if self.victim_seed is None else f"{key}/victim-seed{self.victim_seed}"

    @property
    def slug(self) -> str:
        return self.key.replace("/", "__").replace("*", "-star")


def load_config(path: str | Path) -> dict:
    """Read and check a bench config; errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bench config {path} not found")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise ValueError(
            f"{path}: a bench config is a mapping (name:, datasets:, methods:, victims:, ...), not a "
            f"{type(cfg).__name__}; see configs/cpu-mini.yaml"
        )
    unknown_top = sorted(map(str, set(cfg) - TOP_KEYS))
    if unknown_top:
        raise ValueError(f"{path}: unknown key(s) {unknown_top}; a bench config has {', '.join(sorted(TOP_KEYS))}")
    for key in ("datasets", "methods", "victims"):
        if not cfg.get(key):
            raise ValueError(f"{path}: '{key}' is missing or empty")
    for key in ("datasets", "victims"):
        if not isinstance(cfg[key], list):
            kind = type(cfg[key]).__name__
            raise ValueError(f"{path}: '{key}' must be a list of entries (- name: ...), got a {kind}")
        for entry in cfg[key]:
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: every entry of '{key}' is a mapping (name: ..., ...), got {entry!r}")
    for key in ("methods", "defenses"):
        entries = cfg.get(key)
        if isinstance(entries, dict):
            for name, opts in entries.items():
                if opts is not None and not isinstance(opts, dict):
                    raise ValueError(f"{path}: {key[:-1]} {name!r}: its options must be a mapping, got {opts!r}")
        elif entries is not None and not (isinstance(entries, list) and all(isinstance(n, str) for n in entries)):
            raise ValueError(f"{path}: '{key}' must be a mapping of names to options, or a list of names")
    cfg.setdefault("name", path.stem)
    _safe_name(cfg["name"], "the config's", path)
    cfg.setdefault("preset", "cpu")
    cfg.setdefault("seeds", [0])
    cfg["defenses"] = cfg.get("defenses") or {"none": {}}
    if isinstance(cfg["defenses"], list):
        cfg["defenses"] = {d: {} for d in cfg["defenses"]}
    if isinstance(cfg["methods"], list):
        cfg["methods"] = {m: {} for m in cfg["methods"]}
    names = set()
    for d in cfg["datasets"]:
        if not isinstance(d, dict) or "name" not in d or "source" not in d:
            raise ValueError(f"{path}: every dataset needs a name and a source, got {d}")
        unknown = set(d) - DATASET_KEYS
        if unknown:
            raise ValueError(
                f"{path}: dataset {d['name']!r} has unknown key(s) {sorted(unknown)}; known: {sorted(DATASET_KEYS)}"
            )
        check_options(DatasetEntry(**d), f"{path}: dataset {d['name']!r}")
        names.add(d["name"])
    if len(names) != len(cfg["datasets"]):
        raise ValueError(f"{path}: dataset names must be unique")
    for v in cfg["victims"]:
        if "name" not in v or "init" not in v:
            raise ValueError(f"{path}: every victim needs a name and an init (scratch | imagenet), got {v}")
        unknown = set(v) - VICTIM_KEYS
        if unknown:
            raise ValueError(
                f"{path}: victim {v['name']!r} has unknown key(s) {sorted(unknown)}; known: {sorted(VICTIM_KEYS)}"
            )
        check_options(VictimEntry(**v), f"{path}: victim {v['name']!r}")
    if len({v["name"] for v in cfg["victims"]}) != len(cfg["victims"]):
        raise ValueError(f"{path}: victim names must be unique")
    _check_names(cfg, path)
    return cfg


def _safe_name(name, what: str, path: Path) -> None:
    """Entry names become folder and file names under the results folder: nothing that leaves it."""
    if (
        not isinstance(name, str)
        or not name.strip()
        or name in (".", "..")
        or name.startswith(".")
        or any(ch in name for ch in "/\\\0:")
        or len(name) > 100
    ):
        raise ValueError(
            f"{path}: {what} name {name!r} cannot name a folder inside the results (use letters, digits, "
            "- _ + * and no path separators, not starting with a dot)"
        )


def _check_names(cfg: dict, path: Path) -> None:
    """Unknown methods, defenses, victims or options fail before any work starts."""
    from .attacks import create_attack
    from .defenses import create_defense
    from .evaluate import check_victim
    from .options import SEED_LIMIT, check_seed
    from .protect import look_options, resolve_look

    for key, what in (("datasets", "dataset"), ("victims", "victim")):
        for e in cfg[key]:
            _safe_name(e["name"], what, path)
    for key, what in (("methods", "method"), ("defenses", "defense")):
        for name in cfg[key]:
            _safe_name(name, what, path)
    if not isinstance(cfg["seeds"], list) or not cfg["seeds"]:
        raise ValueError(f"{path}: seeds must be a non-empty list of whole numbers, got {cfg['seeds']!r}")
    for s in cfg["seeds"]:
        check_seed(s, f"{path}: every seed")
    for v in cfg["victims"]:
        listed = v.get("defenses")
        if listed is not None and (not listed or any(d not in cfg["defenses"] for d in listed)):
            raise ValueError(
                f"{path}: victim {v['name']!r}: defenses must be a non-empty list of names from 'defenses' "
                f"({', '.join(cfg['defenses'])}), got {listed!r}"
            )
        rows = v.get("methods")
        if rows is not None and (not rows or any(m not in cfg["methods"] for m in rows)):
            raise ValueError(
                f"{path}: victim {v['name']!r}: methods must be a non-empty list of names from 'methods' "
                f"({', '.join(cfg['methods'])}), got {rows!r}"
            )
        seeds = v.get("seeds")
        if seeds is not None and (not seeds or max(seeds) >= SEED_LIMIT):  # their type is checked already
            raise ValueError(
                f"{path}: victim {v['name']!r}: seeds must be a non-empty list of whole numbers, got {seeds!r}"
            )
        skip = ("name", "init", "protocol", "preset", "victim", "input_size", *GRID_KEYS)
        opts = {k: val for k, val in v.items() if k not in skip}
        try:
            check_victim(
                victim=v.get("victim"),
                init=v["init"],
                protocol=v.get("protocol", "finetune"),
                preset=v.get("preset", cfg["preset"]),
                **opts,
            )
        except ValueError as e:
            raise ValueError(f"{path}: victim {v['name']!r}: {e}") from e

    for name, opts in cfg["methods"].items():
        if name != "clean":
            try:
                fraction = partial(opts).get("protected_fraction")
                if fraction is not None and (not isinstance(fraction, (int, float)) or not 0 < fraction <= 1):
                    raise ValueError(f"protected_fraction must be in (0, 1], got {fraction!r}")
                classes = partial(opts).get("protected_classes")
                if classes is not None and (
                    not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
                ):
                    raise ValueError(f"protected_classes must be a list of class names, got {classes!r}")
                method, opts = entry(name, opts, "method")
                opts.setdefault("preset", cfg["preset"])
                look = resolve_look(opts.pop("look", None), False)
                create_attack(method, device="cpu", progress=False, **look_options(method, look, opts))
            except ValueError as e:
                raise ValueError(f"{path}: method {name!r}: {e}") from e
    for name, opts in cfg["defenses"].items():
        try:
            defense, opts = entry(name, opts, "defense")
            create_defense(defense, **opts)
        except ValueError as e:
            raise ValueError(f"{path}: defense {name!r}: {e}") from e


def check_same_settings(old: dict, new: dict, out: Path) -> None:
    """A results folder resumed with changed settings would mix cells made two ways (and reuse
    protections made with the old options). Entries present in both configs must be equal;
    adding, removing or reordering entries (and seeds) is fine."""

    def by_name(cfg, key):  # datasets and victims are lists of named entries, methods and defenses maps
        entries = cfg.get(key) or {}
        if isinstance(entries, list):  # a victim's defenses and seeds add or remove cells, like entries
            return {e["name"]: {k: v for k, v in e.items() if k not in GRID_KEYS} for e in entries}
        return {name: opts or {} for name, opts in entries.items()}

    changed = []
    if old.get("preset", new["preset"]) != new["preset"]:
        changed.append(f"preset: {old['preset']!r} -> {new['preset']!r}")
    for key in ("datasets", "methods", "victims", "defenses"):
        a, b = by_name(old, key), by_name(new, key)
        changed += [f"{key}.{name}: {a[name]} -> {b[name]}" for name in b if name in a and a[name] != b[name]]
    if changed:
        raise ValueError(
            f"{out} holds results made with other settings ({'; '.join(changed)}); resuming would mix "
            "them with new ones. Use another --out, or move that folder away."
        )


PARTIAL_KEYS = ("protected_fraction", "protected_classes")


def entry(name: str, opts: dict | None, kind: str) -> tuple[str, dict]:
    """A methods or defenses entry -> (method or defense name, its options): the entry's name,
    unless `method:` / `defense:` in its options names it (several rows of one method). The
    partial-protection keys of a method row are not the method's options (see partial)."""
    opts = {k: v for k, v in (opts or {}).items() if kind != "method" or k not in PARTIAL_KEYS}
    return opts.pop(kind, name), opts


def partial(opts: dict | None) -> dict:
    """The partial-protection keys of a method row: protected_fraction, protected_classes."""
    return {k: v for k, v in (opts or {}).items() if k in PARTIAL_KEYS}


def protection_row(cfg: dict, row: str) -> str:
    """The row whose protected folder a row trains on: itself, or for a partly protected row the
    row of the same method and options protecting everything when there is one, else the first
    partly protected row of the same method and options (its folder protects every image; each
    row protects its part of it when its victims train), so one fit serves them all."""
    if not partial(cfg["methods"][row]):
        return row
    want = entry(row, cfg["methods"][row], "method")
    same = [o for o, opts in cfg["methods"].items() if o != "clean" and entry(o, opts, "method") == want]
    whole = [o for o in same if not partial(cfg["methods"][o])]
    return (whole or same)[0]


def columns(cfg: dict) -> list[tuple[str, str]]:
    """(victim, defense) pairs of the grid: each victim under every defense or the ones it lists."""
    return [(v["name"], f) for v in cfg["victims"] for f in cfg["defenses"] if f in v.get("defenses", [f])]


def cells(cfg: dict) -> list[Cell]:
    victims = {v["name"]: v for v in cfg["victims"]}
    return [
        Cell(d["name"], m, v, f, int(s), vs)
        for d in cfg["datasets"]
        for m in cfg["methods"]
        for s in cfg["seeds"]
        for v, f in columns(cfg)
        if m in victims[v].get("methods", [m])
        for vs in victims[v].get("seeds", [None])
    ]


def read_results(path: Path) -> dict[str, dict]:
    """Finished cells by key; a torn last line (a kill mid-write) is ignored, any other line that
    is not a cell record is an error naming the file and the line."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):  # the last line, torn by a kill while it was written
                continue
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("cell"), str) or "final_test_acc" not in rec:
            raise ValueError(
                f"{path} line {i} is not a cell record of this bench; delete that line (its cell is run "
                "again) or the whole file (every cell is run again)"
            )
        done[rec["cell"]] = rec
    return done


def run_bench(
    config: str | Path,
    out: str | Path | None = None,
    *,
    device=None,
    progress: bool = True,
    download: bool = False,
    launcher=None,
) -> dict:
    """Run the missing cells of a grid here, one after another, or as cluster jobs through a
    `unlearnable.launch.Launcher`; then write the reports."""
    from .data import resolve_source
    from .distributed import barrier, is_main
    from .outputs import check_output, claim, input_paths

    cfg = load_config(config)
    inputs = [p for d in cfg["datasets"] for p in input_paths(d["source"], download)]
    out = check_output(
        Path("runs") / "bench" / cfg["name"] if out is None else out, inputs, False, "bench", resume=True
    )
    for d in cfg["datasets"] if not download else ():  # every dataset is there before the first cell starts
        for split in ("train", "test"):
            try:
                resolve_source(d["source"], split=split)
            except ValueError as e:
                raise ValueError(f"{config}: dataset {d['name']!r}: {e}") from None
    barrier()  # under torchrun: every process has checked the folder before rank 0 writes into it
    main = is_main()  # under torchrun every process trains; rank 0 alone writes
    run = {"command": "bench", "name": cfg["name"]}  # two benches in one folder would run the same cells
    with claim(out, run, f"unlearnable bench {config}") if main else nullcontext():
        return _run_cells(cfg, config, out, main, device, progress and main, download, launcher)


def _run_cells(cfg: dict, config, out: Path, main: bool, device, progress: bool, download: bool, launcher=None) -> dict:
    from .distributed import barrier
    from .io import atomic_write_text

    if (out / "config.yaml").exists():
        try:
            old = yaml.safe_load((out / "config.yaml").read_text()) or {}
            if not isinstance(old, dict):
                raise ValueError("not a mapping")
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ValueError(
                f"{out / 'config.yaml'} cannot be read ({str(e).splitlines()[0]}); it records the settings "
                "of the results there: restore it, or use another --out"
            ) from None
        check_same_settings(old, cfg, out)
    if main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    done = read_results(out / "results.jsonl")
    grid = cells(cfg)
    todo = [c for c in grid if c.key not in done]
    if main:
        print(f"bench {cfg['name']}: {len(grid)} cells, {len(grid) - len(todo)} done, results in {out}")
    if launcher is not None:  # every cell a job (unlearnable.launch); this process collects the records
        launcher.run(Grid(cfg, out, device, False, download), todo, done)
    else:
        g = Grid(cfg, out, device, progress, download)
        bar = tqdm(
            total=len(grid),
            initial=len(grid) - len(todo),
            desc=f"bench {cfg['name']}",
            unit="cell",
            disable=not progress,
            position=0,
        )
        for cell in todo:
            bar.set_postfix_str(cell.key)
            rec = g.run(cell)
            if main:
                g.record(cell, rec)
            done[cell.key] = rec
            bar.update(1)
            barrier()
        bar.close()
    records = [done[c.key] for c in grid]
    if not main:
        return {"table": None, "records": records}
    return write_reports(cfg, records, out)


class Grid:
    """What the cells of one bench share: its config, its results folder, the loaded datasets and
    the protections, each made once per (dataset, method, seed). One process runs cells through
    it in turn; a cluster job runs one protection or one cell through its own."""

    def __init__(self, cfg: dict, out: Path, device, progress: bool, download: bool):
        self.cfg, self.out, self.device, self.progress, self.download = cfg, out, device, progress, download
        self.datasets = {d["name"]: d for d in cfg["datasets"]}
        self.victims = {v["name"]: v for v in cfg["victims"]}
        self.loaded: dict = {}

    def data(self, name: str, seed: int):
        from .data import balanced_subset, load_dataset

        if (name, seed) not in self.loaded:
            d, download = self.datasets[name], self.download
            train = load_dataset(d["source"], "train", image_size=d.get("image_size"), download=download)
            if d.get("train_per_class"):
                train = balanced_subset(train, d["train_per_class"], seed=seed)
            test = load_dataset(d["source"], "test", image_size=d.get("image_size"), download=download)
            if d.get("test_per_class"):
                test = balanced_subset(test, d["test_per_class"], seed=seed, option="test_per_class")
            self.loaded[name, seed] = (train, test)
        return self.loaded[name, seed]

    def protection_folder(self, dataset: str, row: str, seed: int) -> Path:
        return self.out / "protected" / dataset / f"{row.replace('*', '-star')}-seed{seed}"

    def protection(self, dataset: str, method: str, seed: int) -> Path | None:
        """The exported folder of a cell's protected training set (None for clean rows), made here
        when it is not there yet."""
        from .distributed import barrier
        from .protect import protect

        if method == "clean":
            return None
        row = protection_row(self.cfg, method)
        folder = self.protection_folder(dataset, row, seed)
        if not (folder / "manifest.json").exists():
            method, opts = entry(row, self.cfg["methods"][row], "method")
            d = self.datasets[dataset]
            protect(
                d["source"],
                folder,
                method=method,
                preset=opts.pop("preset", self.cfg["preset"]),
                eps=opts.pop("eps", None),
                look=opts.pop("look", None),
                options=opts,
                seed=seed,
                image_size=d.get("image_size"),
                train_per_class=d.get("train_per_class"),
                device=self.device,
                progress=self.progress,
                download=self.download,
                extra={"bench": self.cfg["name"], "dataset": d, "row": row},
                photos=False,
            )
        barrier()
        return folder

    def train_set(self, cell: Cell):
        """The training set a cell's victim sees: what was exported, read back, not what was made."""
        from . import evaluate
        from .data import load_dataset
        from .protect import clean_input

        folder = self.protection(cell.dataset, cell.method, cell.seed)
        if folder is None:
            return self.data(cell.dataset, cell.seed)[0]
        made = load_dataset(folder, "train", cache=False)
        part = partial(self.cfg["methods"][cell.method])
        if part:
            made, _ = evaluate.partly_protected(
                made,
                clean_input(folder, made),
                fraction=part.get("protected_fraction"),
                classes=part.get("protected_classes"),
                seed=cell.seed,
            )
        return made

    def checkpoint(self, cell: Cell) -> Path:
        return self.out / "checkpoints" / f"{cell.slug}.pt"

    def run(self, cell: Cell) -> dict:
        """Train the cell's victim (resuming its checkpoint) and return its record. The cell's
        checkpoint is locked while it trains: a job still running from a bench process that is
        gone, and a new run that submitted the cell again, cannot both write it."""
        from .distributed import is_main
        from .outputs import run_lock

        with run_lock(self.checkpoint(cell)) if is_main() else nullcontext():
            return self._run(cell)

    def _run(self, cell: Cell) -> dict:
        from . import evaluate
        from .defenses import create_defense

        train = self.train_set(cell)
        _, test = self.data(cell.dataset, cell.seed)
        v = {k: val for k, val in self.victims[cell.victim].items() if k not in GRID_KEYS}
        defense, defense_opts = entry(cell.defense, self.cfg["defenses"][cell.defense], "defense")
        rec = evaluate.run(
            train,
            test,
            victim=v.pop("victim", None),
            init=v.pop("init"),
            protocol=v.pop("protocol", "finetune"),
            preset=v.pop("preset", self.cfg["preset"]),
            seed=cell.seed if cell.victim_seed is None else cell.victim_seed,
            device=self.device,
            progress=self.progress,
            checkpoint=self.checkpoint(cell),
            defense=create_defense(defense, **defense_opts),
            dataset=self.datasets[cell.dataset]["source"],
            **{k: val for k, val in v.items() if k != "name"},
        )
        part = partial(self.cfg["methods"][cell.method])
        rec.update(part)
        rec.update(evaluate.class_split_accuracy(rec, train.classes, part.get("protected_classes")))
        rec.update(
            {
                "cell": cell.key,
                "dataset": cell.dataset,
                "method": cell.method,
                "victim_name": cell.victim,
                "defense_name": cell.defense,
                "seed": cell.seed,
                "victim_seed": cell.victim_seed,
            }
        )
        return rec

    def record(self, cell: Cell, rec: dict) -> None:
        """A finished cell: one line in results.jsonl (the one record of the results), its checkpoint gone."""
        with open(self.out / "results.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.checkpoint(cell).unlink(missing_ok=True)
        tqdm.write(f"{rec['cell']}: final {100 * rec['final_test_acc']:.1f}%, best {100 * rec['best_test_acc']:.1f}%")


def _mean_std(values: list[float]) -> str:
    m = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * m:.1f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def write_reports(cfg: dict, records: list[dict], out: Path) -> dict:
    """table.md (final and best, mean ± std over seeds), results.csv, curves and bar charts."""
    from .io import atomic_write_text

    grid_columns = columns(cfg)
    by: dict[tuple, list[dict]] = {}
    for r in records:
        by.setdefault((r["dataset"], r["method"], r["victim_name"], r["defense_name"]), []).append(r)
    parts = []
    for d in cfg["datasets"]:
        header = ["method"] + [f"{v}" + (f" + {f}" if f != "none" else "") + " final / best" for v, f in grid_columns]
        rows = []
        for m in cfg["methods"]:
            row = [m]
            for v, f in grid_columns:
                rs = by.get((d["name"], m, v, f), [])
                row.append(
                    f"{_mean_std([r['final_test_acc'] for r in rs])} / {_mean_std([r['best_test_acc'] for r in rs])}"
                    if rs
                    else "-"
                )
            rows.append(row)
        n_test = next((r["n_test"] for r in records if r["dataset"] == d["name"]), "?")
        parts.append(
            f"### {d['name']}\n\nClean test accuracy (%) on {n_test} test images; lower = better "
            f"protection; mean ± std over seeds {cfg['seeds']} (and victim seeds, where a victim lists them).\n\n"
            + markdown_table(header, rows)
        )
    table = "\n".join(parts)
    atomic_write_text(out / "table.md", table)
    buf = io.StringIO()
    fields = [
        "cell",
        "dataset",
        "method",
        "victim_name",
        "victim",
        "init",
        "protocol",
        "defense_name",
        "seed",
        "victim_seed",
        "final_test_acc",
        "best_test_acc",
        "final_train_acc",
        "seconds",
    ]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow(r)
    atomic_write_text(out / "results.csv", buf.getvalue())
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for (ds, m, v, f), rs in by.items():
        plot_curves(
            {
                f"seed {r['seed']}"
                + (f", victim seed {r['victim_seed']}" if r.get("victim_seed") is not None else ""): r
                for r in rs
            },
            plots / f"curves__{ds}__{m.replace('*', '-star')}__{v}__{f}.png",
            title=f"{ds}: {m}, victim {v}, defense {f}",
        )
    for d in cfg["datasets"]:
        bar_chart(cfg, by, d["name"], grid_columns, plots / f"bars__{d['name']}.png")
    print(table)
    return {"table": table, "records": records}


def bar_chart(cfg: dict, by: dict, dataset: str, columns: list, path: Path) -> None:
    """Final test accuracy per method (groups) and victim/defense (bars), mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(cfg["methods"])
    width = 0.8 / max(1, len(columns))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(methods) * max(1, len(columns)) ** 0.5), 4.0), dpi=110)
    for j, (v, f) in enumerate(columns):
        vals = []
        for m in methods:
            rs = by.get((dataset, m, v, f), [])
            vals.append(100 * sum(r["final_test_acc"] for r in rs) / len(rs) if rs else 0)
        ax.bar([i + j * width for i in range(len(methods))], vals, width, label=v + (f" + {f}" if f != "none" else ""))
    ax.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(methods))], methods, rotation=30)
    ax.set_ylabel("final clean test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{cfg['name']}: {dataset}")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    from .io import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
