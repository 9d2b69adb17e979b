"""Does the victim's crop/flip wash out a protection? Train the from-scratch CPU victim on a
protected folder with and without its standard augmentation and print both results.
    python experiments/augmentation-evidence.py clean runs/baselines/random runs/baselines/lsp
("clean" is the 500-per-class clean subset the protections were made from.)
"""

import sys

from unlearnable import evaluate
from unlearnable.data import balanced_subset, load_dataset

test = load_dataset("cifar10", "test")
for folder in sys.argv[1:]:
    if folder == "clean":
        train = balanced_subset(load_dataset("cifar10", "train"), 500, seed=0)
    else:
        train = load_dataset(folder, "train", cache=False)
    for augment in (True, False):
        r = evaluate.run(train, test, init="scratch", preset="cpu", seed=0, progress=False, augment=augment)
        print(
            f"{folder}: small_cnn scratch, augment={augment}: final {100 * r['final_test_acc']:.1f}%, "
            f"best {100 * r['best_test_acc']:.1f}%, train {100 * r['final_train_acc']:.1f}%",
            flush=True,
        )
