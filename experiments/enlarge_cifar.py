"""Write a CIFAR-10 subset enlarged to SIZE px as a folder of photos (OUT/train/<class>/, OUT/test/<class>/),
the "originals" of the full-resolution measurements in docs/photos.md.

    python experiments/enlarge_cifar.py OUT --size 128 --train-per-class 500 --test-per-class 200
"""

import argparse
from pathlib import Path

from PIL import Image

from unlearnable.data import balanced_subset, load_dataset

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--size", type=int, default=128)
p.add_argument("--train-per-class", type=int, default=500)
p.add_argument("--test-per-class", type=int, default=200)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
for split, per in (("train", a.train_per_class), ("test", a.test_per_class)):
    ds = balanced_subset(load_dataset("cifar10", split), per, seed=a.seed)
    for i in range(len(ds)):
        d = Path(a.out) / split / ds.classes[int(ds.labels[i])]
        d.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(ds.images[i].permute(1, 2, 0).numpy())
        img.resize((a.size, a.size), Image.Resampling.BICUBIC).save(d / f"{i:05d}.png")
    print(split, len(ds), "images at", a.size, "px ->", Path(a.out) / split)
