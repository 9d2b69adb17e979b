"""TAP's released CIFAR-10 poison (Fowl et al., NeurIPS 2021) judged by the toolkit's from-scratch
victims: `small_cnn` and `resnet18_w16` (a quarter-width CIFAR ResNet-18), each trained on a
500-per-class subset of the poison and of the clean images, tested on the clean test set.

The poison is the one the ISS authors ship (liuzrcc/ImageShortcutSqueezing, data/TAP/<index>.png,
made with the TAP authors' code); labels are not shipped. Image i is matched to clean CIFAR-10
training image i when it lies within 8/255 of it in every pixel (the budget TAP was made with),
and otherwise to its nearest clean training image (squared L2): the released files do not follow
the order of the clean copy read here, and when that copy is itself lossy (a JPEG copy of
CIFAR-10 differs from the original pixels by about 6/255 on average) no image lies within 8/255.
The match is checked instead by being one to one (every clean image the source of exactly one
poison image) and by the distances printed; the poison subset then holds the same 500 photos per
class as the clean subset.

    python experiments/tap_released.py --poison PATH/TO/data/TAP          # a local copy
    python experiments/tap_released.py --download                         # fetched at run time

Prints one table (final / best clean test accuracy, %) and the matching statistics.
"""

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from unlearnable import evaluate  # noqa: E402
from unlearnable.data import ImageDataset, balanced_subset, load_dataset  # noqa: E402
from unlearnable.io import cache_root, download  # noqa: E402

COMMIT = "005d65381cfcf91647b85af20220eae756f06def"  # the repository's state this script was run against
ARCHIVE = f"https://codeload.github.com/liuzrcc/ImageShortcutSqueezing/zip/{COMMIT}"


def read_poison(args, n: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8: poison image i at row i."""
    if args.poison:
        folder = Path(args.poison)
        return np.stack([np.asarray(Image.open(folder / f"{i}.png").convert("RGB")) for i in range(n)])
    target = cache_root() / "downloads" / f"ImageShortcutSqueezing-{COMMIT[:12]}.zip"
    if not target.is_file():  # no checksum is published: the pixel check below verifies the content
        download(ARCHIVE, target, algorithm="sha256", expected=None)
    with zipfile.ZipFile(target) as zf:
        prefix = f"ImageShortcutSqueezing-{COMMIT}/data/TAP/"
        read = lambda i: np.asarray(Image.open(io.BytesIO(zf.read(f"{prefix}{i}.png"))).convert("RGB"))
        return np.stack([read(i) for i in range(n)])


def match(poison: torch.Tensor, clean: ImageDataset, eps: int) -> tuple[torch.Tensor, int]:
    """The clean training image each poison image was made from: its own index when within eps
    levels, else its nearest clean image (squared L2, in chunks); and how many needed the search."""
    diff = (poison.int() - clean.images.int()).abs().flatten(1).amax(1)
    source = torch.arange(len(poison))
    far = (diff > eps).nonzero().flatten()
    if len(far):
        c = clean.images.flatten(1).float()
        c_norm = (c**2).sum(1)
        for chunk in far.split(256):
            p = poison[chunk].flatten(1).float()
            source[chunk] = (c_norm[None] - 2 * p @ c.T).argmin(1)
    return source, len(far)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--poison", help="a folder holding the poison's <index>.png files")
    src.add_argument("--download", action="store_true", help=f"fetch the repository archive at {COMMIT[:12]}")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--victims", default="small_cnn,resnet18_w16")
    args = ap.parse_args()

    clean = load_dataset("cifar10", "train")
    test = load_dataset("cifar10", "test")
    t0 = time.perf_counter()
    poison = torch.from_numpy(read_poison(args, len(clean))).permute(0, 3, 1, 2).contiguous()
    source, searched = match(poison, clean, eps=8)
    labels = clean.labels[source]
    gap = (poison.int() - clean.images[source].int()).abs().flatten(1)
    linf, mean_abs = gap.amax(1), gap.float().mean(1)
    print(
        f"poison: {len(poison)} images read and matched in {time.perf_counter() - t0:.0f} s; "
        f"{len(poison) - searched} within 8/255 of the clean image of their own index, {searched} matched by "
        f"search; {len(set(source.tolist()))} distinct clean sources (of {len(clean)}); to the matched clean image: "
        f"mean |difference| {float(mean_abs.mean()):.1f} levels (largest {float(mean_abs.max()):.1f}), Linf median "
        f"{int(linf.median())}, max {int(linf.max())}",
        flush=True,
    )
    if len(set(source.tolist())) == len(poison):  # a permutation: put every poison image at its source's index
        aligned = torch.empty_like(poison)
        aligned[source] = poison
        poisoned = ImageDataset(aligned, clean.labels, clean.classes)  # the subsets below: the same photos
    else:
        poisoned = ImageDataset(poison, labels, clean.classes)
    subsets = {
        "clean": balanced_subset(clean, args.per_class, seed=args.seed),
        "TAP (released)": balanced_subset(poisoned, args.per_class, seed=args.seed),
    }
    rows = {}
    for victim in args.victims.split(","):
        for name, train in subsets.items():
            t = time.perf_counter()
            rec = evaluate.run(
                train,
                test,
                victim=victim,
                init="scratch",
                preset="cpu",
                seed=args.seed,
                dataset="cifar10",
                progress=False,
            )
            final, best = rec["final_test_acc"], rec["best_test_acc"]
            rows.setdefault(name, {})[victim] = (final, best, time.perf_counter() - t)
            print(f"{name} / {victim}: final {100 * final:.1f}%, best {100 * best:.1f}%", flush=True)
    victims = args.victims.split(",")
    print(f"\n{args.per_class} per class (seed {args.seed}), full clean test set; final / best %, seconds")
    print("| training data | " + " | ".join(f"{v} (scratch)" for v in victims) + " |")
    print("|---" * (len(victims) + 1) + "|")
    for name, cells in rows.items():
        cols = [f"{100 * a:.1f} / {100 * b:.1f} ({s:.0f} s)" for a, b, s in cells.values()]
        print(f"| {name} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
