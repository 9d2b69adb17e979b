"""Regression tests for bugs users reported in the public code of the baselines (see docs)."""

import argparse

import torch
import torch.nn as nn

from unlearnable.attacks.common import perturbed_batch
from unlearnable.cli import build_parser
from unlearnable.data import ImageDataset
from unlearnable.data.augment import crop_flip
from unlearnable.training import TrainConfig, train_classifier


def test_noise_is_added_before_augmentation():
    """One public entry point added the noise after augmentation, another before it."""
    g = torch.Generator().manual_seed(0)
    x, d = torch.rand(8, 3, 16, 16, generator=g), (torch.rand(8, 3, 16, 16, generator=g) - 0.5) * 0.06
    got = perturbed_batch(x, d, True, torch.Generator().manual_seed(1))
    assert torch.equal(got, crop_flip((x + d).clamp(0, 1), 2, torch.Generator().manual_seed(1)))
    after = crop_flip(x, 2, torch.Generator().manual_seed(1)) + d
    assert not torch.allclose(got, after.clamp(0, 1))


class LabelSpy(nn.Module):
    """Records the labels of the batches it sees (through the inputs, which encode them)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append(x[:, 0, 8, 8].round().long().tolist())
        return self.lin(x[:, :1, 8, 8])


def test_training_batches_are_shuffled():
    """Unshuffled, class-sorted training loaders: every batch a single class."""
    labels = torch.arange(64) // 32  # sorted by class
    images = (labels.view(-1, 1, 1, 1) * 255).expand(64, 3, 16, 16).to(torch.uint8).contiguous()
    spy = LabelSpy()
    train_classifier(
        spy,
        ImageDataset(images, labels, ["a", "b"]),
        TrainConfig(epochs=1, batch_size=16, augment=False),
        device=torch.device("cpu"),
        progress=False,
    )
    assert all(0 in batch and 1 in batch for batch in spy.seen)


def test_no_boolean_flags_parsed_with_type_bool():
    """`type=bool` reads the string "False" as True; flags must be store_true/store_false."""
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    for name, sub in subs.choices.items():
        for action in sub._actions:
            assert action.type is not bool, f"{name} {action.option_strings} uses type=bool"
