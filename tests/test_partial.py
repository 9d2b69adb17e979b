"""Partial protection (a part of the images or of the classes) and RandomResizedCrop victims."""

import json

import pytest
import torch

from unlearnable.bench import run_bench
from unlearnable.data import ImageDataset
from unlearnable.data.augment import random_resized_crop
from unlearnable.evaluate import class_split_accuracy, partly_protected


def sets(n=40, k=4):
    labels = torch.arange(n) % k
    clean = ImageDataset(torch.zeros((n, 3, 4, 4), dtype=torch.uint8), labels, [f"c{i}" for i in range(k)])
    return clean.with_images(torch.full((n, 3, 4, 4), 9, dtype=torch.uint8)), clean


def test_fraction_takes_that_part_of_every_class_and_classes_limit_it():
    protected, clean = sets()
    mixed, mask = partly_protected(protected, clean, fraction=0.3, seed=1)
    assert torch.equal(torch.bincount(clean.labels[mask], minlength=4), torch.full((4,), 3))  # 30% of 10 per class
    assert torch.equal(mixed.images[mask], protected.images[mask]) and torch.equal(
        mixed.images[~mask], clean.images[~mask]
    )
    again, mask2 = partly_protected(protected, clean, fraction=0.3, seed=1)
    assert torch.equal(mask, mask2)
    _, only = partly_protected(protected, clean, classes=["c1", "c3"])
    assert torch.equal(only, torch.isin(clean.labels, torch.tensor([1, 3])))
    with pytest.raises(ValueError, match="no class 'dog'"):
        partly_protected(protected, clean, classes=["dog"])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        partly_protected(protected, clean, fraction=1.5)
    record = {"history": [{"test_class_acc": [0.1, 0.2, 0.3, 0.4]}]}
    split = class_split_accuracy(record, clean.classes, ["c1", "c3"])
    assert split == pytest.approx({"protected_classes_acc": 0.3, "other_classes_acc": 0.2})


def test_random_resized_crop_is_seeded_and_full_crops_are_identity():
    x = torch.rand(6, 3, 16, 16)
    a = random_resized_crop(x, torch.Generator().manual_seed(0))
    b = random_resized_crop(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)


def test_bench_rows_protected_in_part_share_the_whole_protection(tmp_path, make_image_folder):
    source = make_image_folder(
        tmp_path / "data", {"a": (200, 0, 0), "b": (0, 200, 0), "c": (0, 0, 200)}, {"train": 8, "test": 4}, size=16
    )
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(
        f"name: part\ndatasets:\n  - {{name: d, source: {source}}}\nmethods:\n  random: {{}}\n"
        "  random-half: {method: random, protected_fraction: 0.5}\n"
        "  random-a: {method: random, protected_classes: [a]}\n"
        "victims:\n  - {name: s, init: scratch, epochs: 1, batch_size: 8}\n"
    )
    run_bench(cfg, tmp_path / "out", progress=False)
    assert [p.name for p in (tmp_path / "out/protected/d").iterdir() if not p.name.startswith(".")] == ["random-seed0"]
    recs = {
        json.loads(line)["method"]: json.loads(line)
        for line in (tmp_path / "out/results.jsonl").read_text().splitlines()
    }
    assert recs["random-half"]["protected_fraction"] == 0.5
    assert recs["random-a"]["protected_classes"] == ["a"] and "protected_classes_acc" in recs["random-a"]
