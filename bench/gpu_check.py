"""One GPU check, one table: what a GPU does to the toolkit, in under 8 minutes on one modern card.

    bash bench/gpu-check.sh               # on the GPU machine (CIFAR-10 from UNLEARNABLE_DATA, or --download)
    bash bench/gpu-check.sh --dry         # tiny sizes on the CPU: checks this script (the test suite runs it)

Steps, each a separate process, each timed, each a row (a failed step is a FAILED row and the
others still run; the exit status says whether all passed):
1. the CUDA-only tests (`pytest -m cuda`);
2. victim training throughput against the bare model step, bf16 autocast and channels_last
   (the toolkit's CUDA path), torch.compile off and on;
3. one BAIT outer epoch and one EM round against their bare passes (bf16, channels_last;
   the attacks do not compile: their look-ahead is a torch.func call on the surrogate's weights);
4. BAIT with the authors' generator (the `paper` preset) on all 50,000 CIFAR-10 training images,
   an ImageNet EfficientNet-Lite0 surrogate (no ResNet-18 ImageNet weights install offline),
   3 outer epochs (one per stage of the curriculum), exported and verified like any protection;
5. a pretrained victim (EfficientNet-Lite0, ImageNet, 64 px, the `cpu` recipe) on the result,
   and on the clean set for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        ok, out = p.returncode == 0, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        ok, out = False, f"timed out after {timeout:.0f} s " + str(e.stdout or "")
    return ok, out, time.perf_counter() - t0


def last_error(out: str) -> str:
    lines = [x.strip() for x in out.splitlines() if x.strip()]
    return ("FAILED: " + lines[-1] if lines else "FAILED")[:200]


def tiny_folder(root: Path, per_class: int, size: int = 32) -> Path:
    """A 2-class image folder whose classes differ in colour: the dry mode's CIFAR-10."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", max(4, per_class // 4))):
        for c, colour in (("red", (150, 40, 40)), ("blue", (40, 40, 150))):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry", action="store_true", help="tiny sizes on the CPU, to check the script itself")
    ap.add_argument("--download", action="store_true", help="download CIFAR-10 if it is not found")
    ap.add_argument(
        "--work",
        default=None,
        help="a new or empty folder for the protected set and records (default: a temporary one)",
    )
    args = ap.parse_args()
    py = sys.executable
    dry = args.dry
    device = "cpu" if dry else "cuda"
    rows: list[tuple[str, str, float]] = []
    failed = 0

    def row(name: str, ok: bool, result: str, seconds: float) -> None:
        nonlocal failed
        failed += not ok
        rows.append((name, result if ok else last_error(result), seconds))
        print(f"[{len(rows)}] {name}: {rows[-1][1]} ({seconds:.0f} s)", flush=True)

    import torch

    if dry:
        card = f"CPU, {os.cpu_count()} cores (dry mode: tiny sizes, not a measurement)"
    elif not torch.cuda.is_available():
        print("gpu-check: this torch build sees no CUDA GPU; run it on a GPU machine, or pass --dry", file=sys.stderr)
        return 2
    else:
        p = torch.cuda.get_device_properties(0)
        card = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, torch {torch.__version__}"
    print(f"gpu-check: {card}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        if work.exists() and any(work.iterdir()):  # it writes and replaces inside: only a folder of its own
            print(f"gpu-check: --work {work} is not empty; name a new or empty folder", file=sys.stderr)
            return 2
        work.mkdir(parents=True, exist_ok=True)
        data = str(tiny_folder(work / "tiny", 16)) if dry else "cifar10"
        dl = ["--download"] if args.download else []

        # 1. the CUDA-only tests
        pytest = [py, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "tests"]
        ok, out, s = run(pytest, 300)
        counts = ", ".join(re.findall(r"\d+ (?:passed|failed|skipped|deselected|errors?)", out))
        row("CUDA-only tests", ok and (dry or "skipped" not in counts), counts or out, s)  # none skip on a GPU

        # 2. training throughput, compile off and on
        if dry:
            sizes = ["--init", "scratch", "--images", "256", "--repeat", "1"]
        else:
            sizes = ["--images", "16384", "--repeat", "3"]
        for compile_ in (False, True):
            name = f"victim training, compile {'on' if compile_ else 'off'}"
            if compile_ and dry:
                row(name, True, "not run in dry mode (inductor compiles for minutes on a CPU)", 0.0)
                continue
            flags = [*sizes, "--device", device] + (["--compile", "--init", "imagenet"] if compile_ else [])
            ok, out, s = run([py, "bench/train_throughput.py", *flags], 300)
            lines = [x for x in out.splitlines() if " img/s" in x]
            row(name, ok and bool(lines), "; ".join(lines) if lines else out, s)

        # 3. one BAIT outer epoch and one EM round
        ok, out, s = run([py, "bench/attack_epoch.py", "--images", "128" if dry else "5000", "--device", device], 300)
        lines = [x for x in out.splitlines() if "ratio" in x]
        row("attack epochs (bf16, channels_last on CUDA)", ok and len(lines) == 2, "; ".join(lines) or out, s)

        # 4. BAIT with the generator on the whole training set, then verified
        protected = work / "bait"
        stages = "[1,0,0]" if dry else "[1,1,1]"
        cmd = [py, "-m", "unlearnable", "protect", "--data", data, "--method", "bait", "--preset", "paper"]
        cmd += ["--set", "surrogate=efficientnet_lite0", "--set", f"stages={stages}", "--device", device]
        cmd += ["--out", str(protected), "--force", "--quiet", *dl]
        if dry:
            cmd += ["--set", "batch_size=16"]
        ok, out, s = run(cmd, 600)
        if ok:
            m = json.loads((protected / "manifest.json").read_text())
            n, epochs = len(m["files"]), sum(json.loads(stages))
            vok, vout, vs = run([py, "-m", "unlearnable", "verify", str(protected)], 300)
            ok = ok and vok
            out = (
                f"{n:,} images, {epochs} outer epoch(s): {s:.0f} s with export"
                f" (about {s / epochs:.0f} s per epoch; the paper's 90 epochs: about {90 * s / epochs / 60:.0f} min);"
                f" verify {'passed' if vok else 'FAILED'} in {vs:.0f} s"
            )
        row("BAIT `paper` (generator, Lite0 surrogate), whole training set", ok, out, s)

        # 5. a pretrained victim on the result and on the clean set
        accs = {}
        for what, train in (("clean", data), ("BAIT", str(protected))):
            if what == "BAIT" and not (protected / "manifest.json").exists():
                row(f"victim on {what}", False, "no protected set (step 4 failed)", 0.0)
                continue
            rec_dir = work / f"eval-{what.lower()}"
            cmd = [py, "-m", "unlearnable", "evaluate", "--train", train, "--data", data, "--init", "imagenet"]
            cmd += ["--device", device, "--out", str(rec_dir), "--force", "--quiet", *dl]
            cmd += ["--epochs", "1", "--batch-size", "16"] if dry else ["--epochs", "3"]
            ok, out, s = run(cmd, 600)
            if ok:
                r = json.loads((rec_dir / "record.json").read_text())
                accs[what] = r["final_test_acc"]
                out = (
                    f"final {100 * r['final_test_acc']:.1f}%, best {100 * r['best_test_acc']:.1f}% "
                    f"({r['n_train']:,} training images, {len(r['history'])} epoch(s), {r['victim']} "
                    f"{r['init']} at {r['input_size'] or 32} px)"
                )
            row(f"victim on {what}", ok, out, s)

    print(f"\n### gpu-check: {card}\n")
    print("| step | result | seconds |\n|---|---|---|")
    for name, result, seconds in rows:
        print(f"| {name} | {result.replace('|', '/')} | {seconds:.0f} |")
    print(f"\n{len(rows) - failed} of {len(rows)} steps passed; total {sum(r[2] for r in rows):.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
