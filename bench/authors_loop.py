"""BAIT's outer epoch: the authors' public code against the toolkit's `paper` parameterization.

    python bench/authors_loop.py --authors CHECKOUT --authors-python PYTHON [--rounds 5]

CHECKOUT is a clone of https://github.com/zhli-cs/BAIT (the authors' code; nothing of it is in
this repository) and PYTHON an interpreter that has what its perturbation.py imports (torch,
torchvision, higher, mlconfig 0.1.8, scikit-learn, pandas, tqdm). Both sides get the same
class-balanced CIFAR-10 images (`--images`, seed 0), the same generator architecture (the
AdvGAN-style network, 40.9M parameters), an ImageNet-architecture ResNet-18 surrogate with
random weights, the same batch, and one outer epoch: the look-ahead step, one sweep of the images
updating the generator towards the hard-negative targets, one real surrogate step. Runs
alternate (authors, toolkit, authors, ...), each in a fresh process; the table gives each run's
seconds of that loop and the medians' ratio.

The authors' script is run as published, with three shims so that a CUDA-only script runs on a
CPU: `.cuda()` is the identity, torchvision's ImageNet ResNet-18 gets random weights instead of
a download, and the CIFAR-10 md5 check accepts the subset folder this script writes. The
batch defaults to 500 because their loader drops the last partial batch: with 1,000 images and
their default 512 they would sweep 512 images and the toolkit all of them.

`--profile` adds one run of each under cProfile and prints where the loop's time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def profiled(fn, generator_forward) -> tuple[object, dict]:
    """fn() under cProfile, and the cumulative seconds of the generator's forward and of backward."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    result = prof.runcall(fn)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    code = generator_forward.__code__
    out = {"generator_forward_s": 0.0, "backward_s": 0.0}
    for (file, line, name), (_, calls, _, cumulative, _) in stats.items():
        if file == code.co_filename and line == code.co_firstlineno:
            out["generator_forward_s"], out["generator_forwards"] = cumulative, calls
        if name == "run_backward" or (name == "backward" and file.endswith("torch/_tensor.py")):
            out["backward_s"] = max(out["backward_s"], cumulative)
    return result, out


def child_authors(checkout: str, work: str, batch: int, profile: bool) -> dict:
    """One outer epoch of the authors' perturbation.py, reading the subset in `work` and writing its
    experiment folder there; nothing is written into the checkout (no bytecode caches either).
    Only torch and torchvision are imported here."""
    sys.dont_write_bytecode = True
    import torch
    import torchvision
    import torchvision.datasets.cifar as cifar

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    resnet18 = torchvision.models.resnet18
    torchvision.models.resnet18 = lambda *a, weights=None, **k: resnet18(weights=None)
    cifar.check_integrity = lambda *a, **k: True
    torchvision.datasets.CIFAR10._check_integrity = lambda self: True  # type: ignore[method-assign]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    sys.argv = ["perturbation.py", "--config_path", "configs/cifar10", "--version", "resnet18"]
    sys.argv += ["--train_data_type", "CIFAR10", "--test_data_type", "CIFAR10", "--seed", "0"]
    sys.argv += ["--train_data_path", work, "--test_data_path", work, "--exp_name", work + "/"]
    sys.argv += ["--use_pretrained_surrogate", "--pretrained_type", "imagenet", "--epoch", "1"]
    sys.argv += ["--train_batch_size", str(batch)]
    import perturbation  # type: ignore[import-not-found]
    from models.GAN import Generator  # type: ignore[import-not-found]

    loop = perturbation.universal_perturbation
    measured: dict = {}

    def timed(*a, **k):
        t = time.perf_counter()
        if profile:
            result, measured["profile"] = profiled(lambda: loop(*a, **k), Generator.forward)
        else:
            result = loop(*a, **k)
        measured["loop_s"] = time.perf_counter() - t
        return result

    perturbation.universal_perturbation = timed
    torch.manual_seed(0)
    perturbation.main()
    return {"generator_params": sum(p.numel() for p in Generator(None).parameters()), **measured}


def child_toolkit(subset: str, batch: int, profile: bool) -> dict:
    """One outer epoch of the toolkit's BAIT `paper` parameterization; the final pass that turns the
    generator into the class-wise delta (once per fit) is timed apart."""
    import torch

    from unlearnable.attacks.bait import BAIT
    from unlearnable.attacks.generator import PerturbationGenerator
    from unlearnable.data.dataset import ImageDataset

    s = torch.load(subset, weights_only=True)
    ds = ImageDataset(images=s["images"], labels=s["labels"], classes=s["classes"])
    marks: dict = {}

    class Marked(BAIT):  # the loop starts once the models are built (as in the authors' timing)
        def rounds(self, state):
            marks["loop"] = time.perf_counter()
            return super().rounds(state)

        def finish(self, state):
            marks["final"] = time.perf_counter()
            result = super().finish(state)
            marks["end"] = time.perf_counter()
            return result

    attack = Marked(preset="paper", surrogate_init="scratch", stages=[1, 0, 0], batch_size=batch, progress=False)
    out: dict = {}
    if profile:
        _, out["profile"] = profiled(lambda: attack.fit(ds), PerturbationGenerator.forward)
    else:
        attack.fit(ds)
    out.update(loop_s=marks["final"] - marks["loop"], final_pass_s=marks["end"] - marks["final"])
    return {"generator_params": sum(p.numel() for p in PerturbationGenerator().parameters()), **out}


def write_subset(folder: Path, images: int) -> None:
    """The same images for both: a torchvision-style cifar-10-batches-py folder and a tensor file."""
    import torch

    from unlearnable.data import load_dataset
    from unlearnable.data.dataset import balanced_subset

    train = load_dataset("cifar10", "train")
    sub = balanced_subset(train, images // 10, seed=0)
    x, y = sub.images.numpy(), [int(v) for v in sub.labels]
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):  # all images in the first batch file, the other four empty
        part = slice(None) if i == 1 else slice(0)
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": x[part].reshape(-1, 3072), "labels": y[part]}, f)
    with open(d / "test_batch", "wb") as f:  # their script builds a test loader; the loop never reads it
        pickle.dump({"data": x[:100].reshape(-1, 3072), "labels": y[:100]}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(train.classes)}, f)
    torch.save({"images": sub.images, "labels": sub.labels, "classes": list(train.classes)}, folder / "subset.pt")


def run_child(python: str, args: list[str], log: Path) -> dict:
    with open(log, "a") as f:
        p = subprocess.run([python, str(HERE), *args], stdout=subprocess.PIPE, stderr=f, text=True)
    if p.returncode != 0:
        sys.exit(f"authors_loop: {' '.join(args[:2])} failed (exit {p.returncode}); see {log}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", help="a clone of github.com/zhli-cs/BAIT")
    ap.add_argument("--authors-python", help="an interpreter with the authors' dependencies")
    ap.add_argument("--images", type=int, default=1000, help="CIFAR-10 training images, a multiple of 10")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="one more run of each under cProfile")
    ap.add_argument("--child", choices=["authors", "toolkit"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "authors":
        print(json.dumps(child_authors(args.authors, args.work, args.batch, args.profile)))
        return
    if args.child == "toolkit":
        print(json.dumps(child_toolkit(str(Path(args.work) / "subset.pt"), args.batch, args.profile)))
        return
    if not args.authors or not (Path(args.authors) / "perturbation.py").is_file():
        sys.exit("authors_loop: --authors must be a clone of github.com/zhli-cs/BAIT (it has perturbation.py)")
    if not args.authors_python or not Path(args.authors_python).is_file():
        sys.exit("authors_loop: --authors-python must be the interpreter that has the authors' dependencies")
    if args.images % 10 or args.images < 10 or args.batch < 1 or args.rounds < 1:
        sys.exit("authors_loop: --images must be a positive multiple of 10, --batch and --rounds at least 1")
    checkout = str(Path(args.authors).resolve())
    with tempfile.TemporaryDirectory(prefix="authors-loop-") as tmp:
        work = Path(tmp)
        write_subset(work, args.images)
        log = work / "children.log"
        common = ["--work", str(work), "--batch", str(args.batch)]
        sides = {
            "authors": (args.authors_python, ["--child", "authors", "--authors", checkout, *common]),
            "toolkit": (sys.executable, ["--child", "toolkit", *common]),
        }
        runs: dict[str, list[dict]] = {"authors": [], "toolkit": []}
        for r in range(1, args.rounds + 1):
            for who, (python, child) in sides.items():
                rec = run_child(python, child, log)
                runs[who].append(rec)
                print(f"round {r} of {args.rounds}: {who} {rec['loop_s']:.1f} s", flush=True)
        profiles = {}
        if args.profile:
            for who, (python, child) in sides.items():
                profiles[who] = run_child(python, [*child, "--profile"], log)
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    print(f"\n{os.cpu_count()} cores, OMP_NUM_THREADS={threads}; {args.images:,} CIFAR-10 images, batch {args.batch},")
    print("one outer epoch; seconds of the loop (models built, until the epoch ends), runs interleaved\n")
    a, t = ([r["loop_s"] for r in runs[w]] for w in ("authors", "toolkit"))
    print("| | " + " | ".join(f"run {i}" for i in range(1, args.rounds + 1)) + " | median |")
    print("|---|" + "---|" * (args.rounds + 1))
    for who, xs in (("authors' code", a), ("toolkit `paper`", t)):
        print(f"| {who} | " + " | ".join(f"{x:.1f}" for x in xs) + f" | {statistics.median(xs):.1f} |")
    final = statistics.median(r["final_pass_s"] for r in runs["toolkit"])
    ratio = statistics.median(a) / statistics.median(t)
    per_round = sorted(x / y for x, y in zip(a, t))
    print(f"\nratio authors / toolkit: {ratio:.2f} (per round {per_round[0]:.2f} to {per_round[-1]:.2f})")
    print(f"the toolkit's final pass (generator -> class-wise delta, once per fit, not in the loop): {final:.1f} s")
    params = [runs[w][0]["generator_params"] for w in ("authors", "toolkit")]
    print(f"generator parameters: authors {params[0]:,}, toolkit {params[1]:,}")
    for who, rec in profiles.items():
        p = rec["profile"]
        print(
            f"profile, {who}: loop {rec['loop_s']:.1f} s; generator forward {p['generator_forward_s']:.1f} s over "
            f"{p.get('generator_forwards', 0)} calls; backward {p['backward_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
