"""`unlearnable check`: every photo held out once, nothing of a held-out photo in its own test
model's training, and an answer in words with the interval its counts allow."""

import hashlib
import json

import numpy as np
import pytest
import torch
from cli_helpers import sets, tiny_cifar_tarball
from PIL import Image

from unlearnable import background as bg
from unlearnable import evaluate
from unlearnable.check import answer, rounds, wilson
from unlearnable.cli import main

SHORT_BAIT = sets(stages="[1,1,1]", images_per_epoch=32, batch_size=16)


def digests(images: torch.Tensor) -> list[str]:
    return [hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in images]


@pytest.mark.parametrize("sizes, k", [([10], 5), ([2, 3, 7], 4), ([2, 2], 5), ([6, 5], 2)])
def test_rounds_hold_every_photo_out_once_and_leave_every_class_to_learn_from(sizes, k):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])[torch.randperm(sum(sizes))]
    fold = rounds(labels, k, seed=3)
    assert fold.shape == labels.shape and fold.min() >= 0 and fold.max() < k  # one round each
    counts = torch.bincount(fold, minlength=k)
    assert int(counts.max() - counts[counts > 0].min()) <= 1  # rounds of (nearly) one size
    for r in range(k):
        left = labels[fold != r]
        assert all((left == c).any() for c in range(len(sizes)))  # every class still has a photo to learn from
    assert torch.equal(fold, rounds(labels, k, seed=3))  # seeded
    assert not torch.equal(
        rounds(torch.zeros(40, dtype=torch.int64), 5, 0), rounds(torch.zeros(40, dtype=torch.int64), 5, 1)
    )
    with pytest.raises(ValueError, match="at least 2 per"):
        rounds(torch.tensor([0, 0, 1]), 2, 0)
    with pytest.raises(ValueError, match="--folds must be a whole number >= 2"):
        rounds(labels, 1, 0)


def test_wilson_intervals_and_the_answer_in_words():
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)  # never width zero at 0 hits
    lo, hi = wilson(2, 20)
    assert (lo, hi) == (pytest.approx(0.0279, abs=1e-4), pytest.approx(0.3010, abs=1e-4))
    assert wilson(20, 20)[1] == 1 and wilson(20, 20)[0] == pytest.approx(0.8389, abs=1e-4)
    yes = answer(2, 18, 20, "new photos of your subject")
    assert yes["verdict"] == "protected"
    assert yes["line"] == (
        "Protected: a model trained on your published photos recognised 2 of 20 new photos of your subject (10%; 95% "
        "interval 3-30%); trained on your originals, 18 of 20 (90%; 95% interval 70-97%)."
    )
    partly = answer(7, 18, 20, "new photos")
    assert partly["verdict"] == "not protected" and "more than a fifth as many" in partly["line"]
    same = answer(15, 18, 20, "new photos")
    assert same["verdict"] == "not protected" and "within what the counts can tell" in same["line"]
    # a fifth of what the originals give, but too few photos for the intervals to part
    assert answer(0, 4, 4, "new photos")["verdict"] == "protected"
    assert answer(1, 3, 4, "new photos")["verdict"] == "not protected"
    low = answer(0, 4, 10, "new photos")
    assert low["verdict"] == "cannot tell" and low["line"].startswith("Cannot tell: ")


@pytest.fixture()
def subject(tmp_path, monkeypatch):
    """One subject's ten photos (flat folder) protected with bait among a tiny CIFAR-10 background."""
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "me"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        w, h = [(120, 90), (90, 120), (100, 100)][i % 3]
        y, x = np.mgrid[0:h, 0:w]
        face = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1) + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(face.clip(0, 255).astype(np.uint8)).save(root / f"IMG_{i:04d}.jpg", quality=92)
    tiny_cifar_tarball(tmp_path / "d" / "cifar10-jpg.tar.gz")
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "d"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = ["protect", "--data", str(root), "--labels", "one", "--background-per-class", "4", "--look", "strong"]
    assert main([*args, "--out", str(out), "--quiet", *SHORT_BAIT]) == 0
    return out


def test_the_check_holds_out_every_photo_once_and_never_trains_on_it(subject, monkeypatch, capsys):
    calls, stop = [], [4]
    real = evaluate.run

    def spy(train, test, **kw):
        if len(calls) + 1 == stop[0]:
            stop[0] = 0
            raise KeyboardInterrupt  # Ctrl-C while the fourth test model trains
        rec = real(train, test, **kw)
        calls.append((train, test))
        return rec

    monkeypatch.setattr(evaluate, "run", spy)
    rep = subject.parent / "report"
    capsys.readouterr()
    argv = ["check", str(subject), "--out", str(rep), "--init", "scratch", "--epochs", "1", "--folds", "3"]
    assert main([*argv, "--quiet"]) != 0 and not rep.exists()
    assert main([*argv, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert len(calls) == 2 * 3  # originals and published, three rounds: the resume redid no finished model
    assert not list(rep.parent.glob(".report.*"))  # its checkpoint and lock gone with the report in place
    m = json.loads((subject / "manifest.json").read_text())
    owner_files = sorted(e["source"] for e in m["photo_files"].values())
    fitted = bg.load(bg.Background("cifar10", 4), 32, int(m.get("seed", 0)))
    for row in range(2):
        held = []
        for train, test in calls[3 * row : 3 * row + 3]:
            n_owner = int((test.labels >= train.classes.index("me")).sum())
            held_files = test.files[-n_owner:]
            held += held_files
            assert not set(held_files) & set(train.files)  # no held-out photo among its model's training photos
            assert not set(digests(test.images[-n_owner:])) & set(digests(train.images))  # nor its pixels
            assert train.classes == ["background:cat", "background:dog", "me"] and train.classes == test.classes
            back = train.images[train.labels < 2]
            assert len(back) == 8 and not set(digests(back)) & set(digests(fitted.images))  # other people's photos
        assert sorted(held) == owner_files  # every photo held out exactly once
    report = json.loads((rep / "report.json").read_text())
    assert report["rounds"] == 3 and report["n_test"] == 10 and report["background"]["source"] == "cifar10"
    assert sorted(p["photo"] for p in report["photos"]) == owner_files
    assert {p["round"] for p in report["photos"]} == {1, 2, 3}
    hits = report["rows"]["protected"]["scratch"]["hits"]
    assert hits == sum(p["seen_as"]["protected"]["scratch"] == "me" for p in report["photos"])
    md = (rep / "report.md").read_text()
    first = md.splitlines()[2]
    assert first == f"**{report['answer']['line']}**" and printed.splitlines()[2] == first
    assert report["answer"]["verdict"] in ("protected", "not protected", "cannot tell")
    assert f"{hits} of 10 new photos of your subject" in first
    assert "epoch 1/1" not in printed  # epoch logs only with --verbose
