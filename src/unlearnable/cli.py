"""Command line: unlearnable protect | evaluate | verify | check | bench | demo | app | methods | defenses | models."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import yaml


def parse_eps(text: str) -> float:
    """'8/255' or '0.0314' -> float on the [0, 1] image scale (checked against the method's norm later)."""
    try:
        value = float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"--eps must be a number or a fraction like 8/255, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--eps must be positive (e.g. 8/255), got {text!r}")
    return value


def parse_sets(pairs: list[str]) -> dict:
    """--set key=value pairs; values parsed as YAML scalars/lists (10, 0.1, true, [10,10,10])."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def seed_int(text: str) -> int:
    from .options import check_seed

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**63 - 1, got {text!r}") from None


def positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="cifar10",
        help="dataset source: a name (cifar10, cifar100, cifar100-coarse, svhn, svhn-extra, fashion-mnist; "
        "searched in $UNLEARNABLE_DATA, ./data, ~/.cache/unlearnable/data), an ImageFolder "
        "directory or tarball, or a folder of a dataset's official files",
    )
    p.add_argument("--download", action="store_true", help="download a named dataset's official files if not found")
    p.add_argument("--image-size", type=positive_int, default=None, help="resize every image to SIZE x SIZE")
    p.add_argument("--train-per-class", type=positive_int, default=None, help="class-balanced training subset")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for subsets, initialization and training")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_protect(args) -> int:
    from .distributed import is_main
    from .protect import photo_plan, protect

    run = dict(  # what the plan and the run are both made of
        method=args.method,
        preset=args.preset,
        eps=args.eps,
        options=parse_sets(args.set),
        seed=args.seed,
        labels=args.labels,
        working_size=args.working_size,
        device=args.device,
        look=args.look,
        background=args.background,
        background_per_class=args.background_per_class,
    )
    if args.plan:
        plan = photo_plan(args.data, **run, download=args.download, strip_metadata=args.strip_metadata, fmt=args.format)
        notes = [f"note: {n}" for n in plan["notes"]]
        print("\n".join([plan["text"], *(plan["grouping"] or {}).get("words", []), *notes]))
        return 0
    if args.out is None:
        raise ValueError("protect needs --out FOLDER, where the protected copies are written (or --plan to only plan)")
    manifest = protect(
        args.data,
        args.out,
        **run,
        image_size=args.image_size,
        train_per_class=args.train_per_class,
        force=args.force,
        progress=not args.quiet,
        download=args.download,
        command=command_line(),
        fmt=args.format,
        quality=args.quality,
        strip_metadata=args.strip_metadata,
    )
    if is_main():
        print(
            f"protected {manifest['images']} images with {args.method} in {manifest['seconds']:.0f} s "
            f"(largest change {manifest['max_abs_change_0_255']}/255) -> {Path(args.out).resolve()}"
        )
        if manifest.get("photos"):
            print(PUBLISH)
    return 0


def cmd_apply(args) -> int:
    from .apply import apply

    manifest = apply(
        args.protected,
        args.out,
        data=args.data,
        labels=args.labels,
        originals=args.originals,
        fmt=args.format,
        quality=args.quality,
        strip_metadata=True if args.strip_metadata else None,
        force=args.force,
        progress=not args.quiet,
        command=command_line(),
    )
    print(
        f"wrote {manifest['images']} photos with the protection of {Path(args.protected).resolve()} in "
        f"{manifest['export_seconds']:.0f} s, nothing learned again (largest change "
        f"{manifest['max_abs_change_0_255']}/255) -> {Path(args.out).resolve()}"
    )
    print(PUBLISH)
    return 0


PUBLISH = (
    "publish the photos; keep perturbation.safetensors, manifest.json and preview.png to yourself "
    "(with the perturbation the change can be taken off again)"
)


def add_format_args(p, default: str | None) -> None:
    """--format, --quality and --strip-metadata: how protected photos are written (protect, apply)."""
    from .photos import FORMATS

    p.add_argument(
        "--format",
        default=default,
        choices=FORMATS,
        help="png (lossless), webp (lossless, smaller), jpeg (with --quality, default 95) or same (each photo in "
        "its own format; a JPEG keeps its own quality); default: " + (default or "the protected folder's"),
    )
    p.add_argument("--quality", type=positive_int, default=None, help="JPEG quality 1-100 for --format jpeg")
    p.add_argument(
        "--strip-metadata",
        action="store_true",
        help="drop EXIF, ICC profile and XMP (default: kept, without the EXIF orientation and thumbnail)",
    )


def command_line() -> str:
    return "unlearnable " + " ".join(sys.argv[1:])


def cmd_evaluate(args) -> int:
    from . import evaluate
    from .data import balanced_subset, load_dataset
    from .defenses import create_defense
    from .distributed import is_main, parse_device
    from .io import atomic_dir
    from .outputs import check_output, claim, input_paths, marker
    from .plan import check_size
    from .protect import clean_input, is_photo_folder, load_training_set
    from .report import pct, plot_curves

    inputs = input_paths(args.train, args.download) + input_paths(args.data, args.download)
    out = check_output(args.out, inputs, args.force, "evaluate") if args.out is not None else None
    # every option is checked before any data is read
    device = parse_device(args.device)
    defense = create_defense(args.defense, **parse_sets(args.defense_set))
    victim = {
        "victim": args.victim,
        "init": args.init,
        "protocol": args.protocol,
        "preset": args.preset,
        "dataset": args.data,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
    }
    _, _, preset_size, config = evaluate.check_victim(**victim, defense=defense)
    for option, size in (("--input-size", args.input_size), ("--image-size", args.image_size)):
        if size is not None:
            check_size(option, size, 1 if option == "--input-size" else args.train_per_class or 1, config.batch_size)
    ckpt = out.with_name(f".{out.name}.checkpoint.pt") if out else None
    if args.protected_classes is not None and not [c for c in args.protected_classes.split(",") if c.strip()]:
        raise ValueError(f"--protected-classes {args.protected_classes!r} names no class; give names like cat,dog")
    if args.protected_fraction is not None or args.protected_classes:
        if not (Path(args.train) / "manifest.json").is_file():
            raise ValueError(
                "--protected-fraction and --protected-classes need --train to be a `protect` output folder"
            )
    partial = {}
    run = {  # what a resume must repeat (the checkpoint then checks the data's pixels too)
        "command": "evaluate",
        "train": [str(p) for p in inputs],
        **victim,
        "defense": defense.settings() if defense is not None else None,
        "seed": args.seed,
        "image_size": args.image_size,
        "input_size": args.input_size,
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class,
        "protected_fraction": args.protected_fraction,
        "protected_classes": args.protected_classes,
    }
    with claim(out, run, command_line()) if out and is_main() else nullcontext():
        if is_photo_folder(args.train, args.image_size) and is_photo_folder(args.data, args.image_size):
            # photos of any size: the trainer's resize + centre crop to the victim's input size (the
            # preset's: 64 px for the cpu preset's pretrained victim; --input-size for another)
            from .models import model_info
            from .photos import views

            name, _, preset_size, _ = evaluate.check_victim(**victim, defense=defense)
            size = args.input_size or preset_size or model_info(name)["natural_input_size"]
            train = views(args.train, "train", size, progress=not args.quiet)
            test = views(args.data, "test", size, progress=not args.quiet)
            if args.train_per_class:
                train = balanced_subset(train, args.train_per_class, seed=args.seed)
        else:
            train, _ = load_training_set(
                args.train,
                image_size=args.image_size,
                train_per_class=args.train_per_class,
                seed=args.seed,
                download=args.download,
            )
            test = load_dataset(args.data, "test", image_size=args.image_size, download=args.download)
        if args.protected_fraction is not None or args.protected_classes:
            classes = [c.strip() for c in (args.protected_classes or "").split(",") if c.strip()]
            train, mask = evaluate.partly_protected(
                train,
                clean_input(args.train, train),
                fraction=args.protected_fraction,
                classes=classes,
                seed=args.seed,
            )
            partial = {
                "protected_fraction": args.protected_fraction,
                "protected_classes": classes,
                "protected_images": int(mask.sum()),
            }
        if args.test_per_class:
            test = balanced_subset(test, args.test_per_class, seed=args.seed, option="--test-per-class")
        rec = evaluate.run(
            train,
            test,
            **victim,
            defense=defense,
            seed=args.seed,
            input_size=args.input_size,
            device=device,
            progress=not args.quiet,
            compile=args.compile or None,
            checkpoint=ckpt,
        )
        rec.update(partial)
        if partial.get("protected_classes"):
            rec.update(evaluate.class_split_accuracy(rec, train.classes, partial["protected_classes"]))
        rec.update(
            {
                **marker("evaluate"),
                "train_data": str(args.train),
                "test_data": str(args.data),
                "command": command_line(),
            }
        )
        if not is_main():
            return 0
        print(
            f"{rec['victim']} ({args.init}, {args.protocol}): final test {pct(rec['final_test_acc'])}%, "
            f"best {pct(rec['best_test_acc'])}%, train {pct(rec['final_train_acc'])}%, {rec['seconds']:.0f} s"
        )
        if out:
            with atomic_dir(out, replace=args.force, kind="evaluate") as tmp:
                (tmp / "record.json").write_text(json.dumps(rec, indent=2))
                plot_curves({rec["victim"]: rec}, tmp / "curves.png", title=f"trained on {Path(args.train).name}")
            if ckpt is not None:
                ckpt.unlink(missing_ok=True)  # only now: the record is in place
            print(f"record and plot -> {out}")
    return 0


def cmd_clean(args) -> int:
    from .outputs import clean

    found = clean(args.out, yes=args.yes)
    if not found:
        print(f"nothing to clean: no unfinished run left anything beside {args.out}")
        return 0
    for p, size in found:
        print(f"{'deleted' if args.yes else 'would delete'} {p} ({size / 1e6:.1f} MB)")
    if not args.yes:
        print("run again with --yes to delete them (the run that left them then starts over)")
    return 0


def cmd_check(args) -> int:
    from .check import PUBLISHING, render_report, run_check

    steps = () if args.steps is None else tuple(s for s in args.steps.split(",") if s)
    if args.steps == "all":
        steps = tuple(PUBLISHING)
    report = run_check(
        args.folder,
        args.out or Path(args.folder).with_name(Path(args.folder).name + "-check"),
        test=args.data,
        folds=args.folds,
        test_per_class=args.test_per_class,
        inits=tuple(args.init or ("scratch", "imagenet")),
        steps=steps,
        rrc=args.rrc,
        preset=args.preset,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        verbose=args.verbose,
        force=args.force,
        command=command_line(),
        **({"epochs": args.epochs} if args.epochs else {}),
    )
    print(render_report(report))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args)
    return 0


def cmd_methods(args) -> int:
    from .attacks import ATTACKS

    for name in sorted(ATTACKS):
        cls = ATTACKS[name]
        eps = f"{round(cls.default_eps * 255)}/255" if cls.norm == "linf" else f"{cls.default_eps:g}"
        print(f"{name:10s} {cls.summary}")
        print(f"    budget: {cls.norm} eps={eps}")
        for preset, opts in cls.PRESETS.items():
            print(f"    {preset}: " + ", ".join(f"{k}={v}" for k, v in asdict(opts).items()))
    stars = ", ".join(
        f"{n}*" for n in sorted(ATTACKS) if getattr(ATTACKS[n].Options(), "surrogate_init", None) == "scratch"
    )
    print(
        f"\nA trailing * ({stars}) runs a method with an ImageNet-pretrained surrogate "
        "(efficientnet_lite0 for --preset cpu, resnet18_imagenet for paper)."
    )
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    launcher = None
    if args.launcher != "inline":
        from .launch import Launcher

        extra = {}
        for opt in args.slurm_option:
            key, sep, value = opt.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--slurm-option {opt!r}: write KEY=VALUE, e.g. --slurm-option exclude=node12")
            extra[key.strip()] = value
        launcher = Launcher(
            cluster=args.launcher,
            partition=args.slurm_partition,
            time_min=args.slurm_time,
            gpus_per_cell=args.slurm_gpus_per_cell,
            tasks_per_cell=args.slurm_tasks_per_cell,
            cpus_per_cell=args.slurm_cpus_per_cell,
            mem_gb=args.slurm_mem_gb,
            account=args.slurm_account,
            qos=args.slurm_qos,
            constraint=args.slurm_constraint,
            max_parallel=args.slurm_max_parallel,
            extra=extra,
        )
    run_bench(
        args.config, args.out, device=args.device, progress=not args.quiet, download=args.download, launcher=launcher
    )
    return 0


def cmd_verify(args) -> int:
    from .verify import verify_folder

    results = verify_folder(args.folder, args.data)
    for check, status, detail in results:
        print(f"{check:13s} {status:8s} {detail}")
    failed = [c for c, s, _ in results if s == "FAILED"]
    skipped = [c for c, s, _ in results if s == "skipped"]
    if failed:
        print(f"{args.folder}: FAILED ({', '.join(failed)})")
    elif skipped:
        print(f"{args.folder}: NOT VERIFIED: could not check {', '.join(skipped)} (see above)")
    else:
        print(
            f"{args.folder}: verified (the files are what `unlearnable protect` made, within the budget; whether "
            "they protect is measured by `unlearnable check`)"
        )
    return 1 if failed or skipped else 0


def cmd_defenses(args) -> int:
    from .defenses import DEFENSES

    for name in sorted(DEFENSES):
        cls = DEFENSES[name]
        print(f"{name:13s} {cls.summary}")
        if defaults := asdict(cls.Options()):
            print("    options: " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    return 0


def cmd_app(args) -> int:
    try:
        from .app.server import serve
        from .app.uploads import Limits
    except ImportError as e:
        raise ValueError(
            f'the web page needs its extra packages ({e.name} is missing): pip install "unlearnable[app]"'
        ) from None
    limits = Limits(file_bytes=int(args.max_upload_mb * 2**20), files=args.max_files)
    try:
        serve(host=args.host, port=args.port, token=args.token, work=args.work, limits=limits)
    except KeyboardInterrupt:
        print("unlearnable app stopped; a running job resumes from its checkpoint at the next start", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from .models import list_models, model_info

    for name in list_models():
        info = model_info(name)
        print(f"{name:20s} {info.get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnable", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("protect", help="make a dataset unlearnable; writes a PNG ImageFolder + perturbation + manifest")
    add_data_args(p)
    p.add_argument(
        "--out", default=None, help="output folder (must not exist unless --force); required but with --plan"
    )
    p.add_argument("--method", default="bait", help="protection method (see `unlearnable methods`)")
    p.add_argument(
        "--preset", default="cpu", help="cpu | paper, or a preset of the method's own (bait: robust; see methods)"
    )
    p.add_argument(
        "--eps",
        type=parse_eps,
        default=None,
        help="budget in the method's norm (default: the method's own, 8/255 Linf for most; see `unlearnable methods`)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="method option, e.g. --set stages=[5,5,5]")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--look",
        default=None,
        metavar="LOOK",
        help="how the change sits on each image: invisible (the default for photos: smooth patterns, less change "
        "on flat areas), subtle, strong (the whole budget everywhere), none (a benchmark set's default: the "
        "paper's protocol), or KEY=VALUE pairs such as floor=1,smooth=yes; grey photos get a grey change in "
        "every look (docs/photos.md)",
    )
    p.add_argument(
        "--plan", action="store_true", help="a folder of photos: print what would be done (time, memory) and stop"
    )
    photos = p.add_argument_group(
        "photos",
        "a folder of photos (no --image-size) is protected at full resolution; see README, Protecting your photos",
    )
    photos.add_argument(
        "--labels",
        default="folders",
        help="which photos belong together: folders (one sub-folder per class, the default), top (the first "
        "folder level, any depth below), leaf (the folder holding each photo), one (every photo is of one "
        "subject: your face, your work), clusters or clusters:K (groups of similar photos, for a flat folder), or "
        "a CSV file of file,label rows",
    )
    photos.add_argument(
        "--background",
        default=None,
        metavar="SOURCE",
        help="public labelled images the photos are protected among, each subject one class among theirs, as in "
        "a scraped training set: a dataset name or folder (default: cifar10 when the photos are one subject; "
        "none: never); only your photos are written",
    )
    photos.add_argument(
        "--background-per-class",
        type=positive_int,
        default=None,
        help="images of each background class to fit among (default 100)",
    )
    photos.add_argument(
        "--working-size",
        type=positive_int,
        default=None,
        help="square size the method is fitted at (default: 64 "
        "for --preset cpu, 224 for paper, or the smallest photo's short side)",
    )
    add_format_args(photos, "png")
    p.set_defaults(func=cmd_protect)

    p = sub.add_parser(
        "apply",
        help="write a protected folder's protection again, without learning it again: in another format, or onto "
        "photos added since to a protected group",
    )
    p.add_argument("protected", help="a folder of photos written by `unlearnable protect`")
    p.add_argument("--out", required=True, help="the new output folder (must not exist unless --force)")
    p.add_argument(
        "--data",
        default=None,
        help="new photos to protect with it, in folders named after the protected groups (default: the protected "
        "photos' originals)",
    )
    p.add_argument(
        "--labels", default=None, help="with --data: how the new photos are grouped (default: as the protection was)"
    )
    p.add_argument("--originals", default=None, help="where the protected photos' originals are, if they moved")
    add_format_args(p, None)
    p.add_argument("--force", action="store_true", help="replace an earlier output of this tool at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("evaluate", help="train a victim on (protected) data, test on the clean test set")
    add_data_args(p)
    p.add_argument("--train", required=True, help="training data: a `protect` output folder or any dataset source")
    p.add_argument("--test-per-class", type=positive_int, default=None, help="class-balanced test subset")
    p.add_argument("--victim", default=None, help="model name (default: the preset's victim for --init)")
    p.add_argument("--init", default="imagenet", choices=["scratch", "imagenet"])
    p.add_argument("--protocol", default="finetune", choices=["finetune", "linear"])
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    p.add_argument("--input-size", type=positive_int, default=None, help="resize inputs inside the victim")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the victim (GPU runs; slow start-up)")
    p.add_argument(
        "--defense",
        default=None,
        help="what the trainer does against the protection (see `unlearnable defenses`), e.g. jpeg, pgd_at, projection",
    )
    p.add_argument(
        "--defense-set", action="append", metavar="KEY=VALUE", help="defense option, e.g. --defense-set quality=30"
    )
    p.add_argument(
        "--protected-fraction",
        type=float,
        default=None,
        help="train on this part of every class protected and the rest clean (e.g. 0.25); --train must be a "
        "protect output folder, whose clean input supplies the rest",
    )
    p.add_argument(
        "--protected-classes",
        default=None,
        help="comma-separated classes that are protected (the others clean); reports accuracy on both groups",
    )
    p.add_argument("--out", default=None, help="folder for record.json and curves.png")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="protect a CIFAR-10 subset with EM and BAIT, evaluate clean/EM/BAIT, print a table")
    p.add_argument("--data", default="cifar10")
    p.add_argument("--download", action="store_true")
    p.add_argument("--out", default="runs/demo", help="output folder (resumes an unfinished demo there)")
    p.add_argument("--train-per-class", type=positive_int, default=500)
    p.add_argument("--test-per-class", type=positive_int, default=None, help="default: the full test set")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--force", action="store_true", help="start over, discarding a previous demo in --out")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "check",
        help="am I protected? holds every photo out in turn, trains test models on the others (protected, and "
        "the originals for comparison) and answers in words how many new photos they recognised; writes report.md",
    )
    p.add_argument("folder", help="a folder written by `unlearnable protect`")
    p.add_argument("--out", default=None, help="report folder (default: FOLDER-check beside it)")
    p.add_argument(
        "--data",
        default=None,
        help="test photos (a folder with test/ or class folders) instead of holding out your own in turn",
    )
    p.add_argument(
        "--folds",
        type=positive_int,
        default=5,
        help="rounds: every photo is held out in one of them (default 5; each round trains one model per row)",
    )
    p.add_argument("--test-per-class", type=positive_int, default=None, help="class-balanced subset of --data")
    p.add_argument("--init", action="append", choices=["scratch", "imagenet"], help="test models (default both)")
    p.add_argument(
        "--steps",
        default=None,
        help="also test what publishing does, comma-separated: jpeg90,jpeg75,half,long1080 or all (default none; "
        "each adds a row of models)",
    )
    p.add_argument("--rrc", action="store_true", help="also test a trainer using RandomResizedCrop (two more rows)")
    p.add_argument("--epochs", type=positive_int, default=None, help="test-model epochs (default: the preset's)")
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="print every test model's epochs")
    p.add_argument("--force", action="store_true", help="replace an earlier report folder")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("methods", help="list protection methods and their preset defaults")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("models", help="list models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "bench",
        help="run a grid of methods x victims x defenses x seeds from a YAML config "
        "(resumable); writes results.jsonl, table.md, results.csv, plots",
    )
    p.add_argument("config", help="bench config, e.g. configs/cpu-mini.yaml")
    p.add_argument(
        "--out", default=None, help="results folder (default runs/bench/<config name>); an existing one is resumed"
    )
    p.add_argument("--device", default=None)
    p.add_argument("--download", action="store_true", help="download the official CIFAR-10 archive if not found")
    p.add_argument("--quiet", action="store_true")
    g = p.add_argument_group("cluster (docs/bench.md: On a SLURM cluster)")
    g.add_argument(
        "--launcher",
        choices=["inline", "slurm", "local"],
        default="inline",
        help="inline (default): every cell here, one after another; slurm: every protection and cell a "
        "SLURM job (submitit); local: the same jobs as processes of this machine",
    )
    g.add_argument("--slurm-partition", default=None)
    g.add_argument(
        "--slurm-time",
        type=int,
        default=240,
        help="minutes per job (default 240); a job stopped at its limit is requeued and resumes from its checkpoint",
    )
    g.add_argument(
        "--slurm-gpus-per-cell",
        type=int,
        default=0,
        help="GPUs per job (default 0); more than 1: one task per GPU, trained with DDP",
    )
    g.add_argument(
        "--slurm-tasks-per-cell",
        type=int,
        default=None,
        help="processes per job on CPU nodes (DDP with gloo; default 1, or one per GPU)",
    )
    g.add_argument("--slurm-cpus-per-cell", type=int, default=None, help="CPU cores per job")
    g.add_argument("--slurm-mem-gb", type=int, default=None)
    g.add_argument("--slurm-account", default=None)
    g.add_argument("--slurm-qos", default=None)
    g.add_argument("--slurm-constraint", default=None)
    g.add_argument("--slurm-max-parallel", type=int, default=64, help="jobs of an array running at once (default 64)")
    g.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm-option exclude=node12 (repeatable)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "verify", help="re-check a protected folder against its manifest (files, perturbation, input checksums, budget)"
    )
    p.add_argument("folder", help="a folder written by `unlearnable protect`")
    p.add_argument("--data", default=None, help="the clean input, if not where the manifest says")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("app", help="a web page on this computer: choose photos, protect them, check, download")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--token", default=None, help="access token, required with a --host other than 127.0.0.1")
    p.add_argument("--work", default=None, help="the app's own folder (default: ~/.cache/unlearnable/app)")
    p.add_argument("--max-upload-mb", type=float, default=200, help="largest photo accepted, in MB (default 200)")
    p.add_argument("--max-files", type=positive_int, default=2000, help="most photos in one upload (default 2000)")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser(
        "clean",
        help="list, then with --yes delete, what an unfinished run left beside an output folder (its "
        "checkpoint, a partial folder, its lock); the output itself and anything else are never touched",
    )
    p.add_argument("out", help="the --out of the unfinished run")
    p.add_argument("--yes", action="store_true", help="delete what is listed")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("defenses", help="list defenses with their options")
    p.set_defaults(func=cmd_defenses)
    return parser


def os_error_message(e: OSError) -> str:
    """What failed, where, and what to do; outputs are written atomically, so nothing half-written remains."""
    where = f" {e.filename}" if e.filename else ""
    hint = (
        {
            errno.ENOSPC: "free some space or choose another --out",
            errno.EDQUOT: "free some space or choose another --out",
            errno.EACCES: "choose a folder you may write to (--out) or fix its permissions",
            errno.EPERM: "choose a folder you may write to (--out) or fix its permissions",
            errno.EROFS: "choose a folder on a writable file system (--out)",
        }.get(e.errno, "check the path and the disk")
        if e.errno is not None
        else "check the path and the disk"
    )
    return (
        f"cannot read or write{where}: {e.strerror or e}. Nothing half-written was left (outputs are renamed "
        f"into place only when complete; a checkpoint keeps what finished): {hint}, then run the same command again."
    )


HEAVY = {cmd_protect, cmd_apply, cmd_check, cmd_evaluate, cmd_demo, cmd_bench}  # commands that train or fit


def main(argv: list[str] | None = None) -> int:
    from .distributed import init_from_env, share_cores, shutdown

    args = build_parser().parse_args(argv)
    try:
        init_from_env(getattr(args, "device", None))  # under torchrun: join the process group
        if args.func in HEAVY:
            share_cores()  # fewer threads when other programs keep cores busy
        with warnings.catch_warnings():
            # a damaged EXIF block and the like: the image library's notes to developers, not to the
            # person running a command (the image is read as well as it can be, or refused by name)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, no permission, read-only file system, ...
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a bad input: still one line, the traceback on request
        if os.environ.get("UNLEARNABLE_DEBUG"):
            raise
        where = "".join(traceback.format_tb(e.__traceback__, limit=-1)).strip().splitlines()[0].strip()
        print(
            f"error: unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} ({where}); nothing "
            "half-written was left. Please report it; UNLEARNABLE_DEBUG=1 shows the traceback",
            file=sys.stderr,
        )
        return 1
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
