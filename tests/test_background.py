"""One subject (or several) protected among a background of public labelled images."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import sets, tiny_cifar_tarball, tree_hash
from PIL import Image

from unlearnable import background as bg
from unlearnable.cli import main
from unlearnable.data import ImageDataset
from unlearnable.perturbation import Perturbation

SHORT_BAIT = sets(stages="[1,1,1]", images_per_epoch=32, batch_size=16)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture()
def portraits(tmp_path, monkeypatch):
    """portraits/ (six JPEGs of one person, flat, of camera-like shapes) and a data folder holding
    a tiny CIFAR-10 (2 classes of 8 training images, one called cat), named by UNLEARNABLE_DATA."""
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "portraits"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(120, 90), (90, 120), (100, 100), (150, 100), (80, 100), (96, 72)]):
        y, x = np.mgrid[0:h, 0:w]
        face = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1) + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(face.clip(0, 255).astype(np.uint8)).save(root / f"IMG_{i:04d}.jpg", quality=92)
    data = tmp_path / "d"
    tiny_cifar_tarball(data / "cifar10-jpg.tar.gz")
    monkeypatch.setenv("UNLEARNABLE_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    return root


def test_one_subject_is_protected_among_the_default_background_and_only_its_photos_written(portraits, capsys):
    before = tree_hash(portraits)
    out = portraits.parent / "out"
    args = ["protect", "--data", str(portraits), "--labels", "one", "--background-per-class", "4", "--look", "strong"]
    assert main([*args, "--plan", *SHORT_BAIT]) == 0
    plan = capsys.readouterr().out
    assert "6 photos" in plan and "of one subject (portraits 6)" in plan
    assert "among 8 public images of 2 other classes (background cifar10, not written)" in plan
    assert main([*args, "--out", str(out), "--quiet", *SHORT_BAIT]) == 0
    assert tree_hash(portraits) == before
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    photos = sorted(p.name.replace(".jpg", ".png") for p in portraits.iterdir())
    own = {"manifest.json", "perturbation.safetensors", "preview.png"}
    assert [w for w in written if w not in own] == photos  # where they lay in the input, and nothing else
    m = json.loads((out / "manifest.json").read_text())
    assert m["background"] == {"source": "cifar10", "per_class": 4, "classes": 2, "images": 8}
    assert m["classes"] == ["portraits"] and m["images"] == 6
    p = Perturbation.load(out / "perturbation.safetensors")
    assert p.kind == "classwise" and len(p) == 1 and p.meta["background"] == m["background"]
    assert float(p.delta.abs().max()) > 0
    for name in photos:
        a = np.asarray(Image.open(out / name)).astype(int)
        b = np.asarray(Image.open(portraits / name.replace(".png", ".jpg")).convert("RGB")).astype(int)
        assert a.shape == b.shape and 0 < np.abs(a - b).max() <= 8
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert "verified" in capsys.readouterr().out


def test_a_one_folder_collection_takes_the_background_by_default_and_none_refuses_it(portraits, capsys):
    nested = portraits.parent / "anna"
    (nested / "anna").mkdir(parents=True)
    for f in portraits.iterdir():
        (nested / "anna" / f.name).write_bytes(f.read_bytes())
    args = ["protect", "--data", str(nested), "--plan", *SHORT_BAIT]
    assert main([*args, "--background-per-class", "4"]) == 0
    assert "of one subject (anna 6)" in capsys.readouterr().out
    assert main([*args, "--background", "none"]) == 2
    err = one_line_error(capsys)
    assert "needs at least 2 classes" in err and "(anna)" in err and "leave out --background none" in err


def test_several_subjects_among_a_named_background_keep_one_class_each(portraits, make_image_folder, capsys):
    two = portraits.parent / "two"
    for k, name in enumerate(sorted(portraits.iterdir())):
        (two / ("anna" if k % 2 else "ben")).mkdir(parents=True, exist_ok=True)
        (two / ("anna" if k % 2 else "ben") / name.name).write_bytes(name.read_bytes())
    public = make_image_folder(portraits.parent / "public", ["cat", "anna", "car"], {"train": 3}, size=24)
    out = portraits.parent / "out2"
    args = ["--background", str(public), "--background-per-class", "3", "--look", "strong", *SHORT_BAIT]
    assert main(["protect", "--data", str(two), "--out", str(out), "--quiet", *args]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["classes"] == ["anna", "ben"] and m["background"]["classes"] == 3 and m["background"]["images"] == 9
    assert len(Perturbation.load(out / "perturbation.safetensors")) == 2
    assert sorted(p.parent.name for p in out.rglob("*.png") if p.parent != out) == ["anna"] * 3 + ["ben"] * 3
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--background-per-class", "9"], "--background-per-class 9 but class"),
        (["--background", "no-such-folder"], "--background no-such-folder"),
        (["--background", ""], "--background names a dataset"),
        (["--background", "none", "--background-per-class", "3"], "--background-per-class needs a background"),
    ],
)
def test_background_mistakes_are_one_line_before_any_work(portraits, capsys, extra, words):
    out = portraits.parent / "never"
    assert main(["protect", "--data", str(portraits), "--labels", "one", "--out", str(out), *extra, *SHORT_BAIT]) == 2
    assert words in one_line_error(capsys)
    assert not out.exists()


def test_a_benchmark_set_takes_no_background(portraits, capsys):
    args = ["protect", "--data", "cifar10", "--image-size", "16", "--background", "cifar10", "--out", "x"]
    assert main([*args, "--method", "random"]) == 2
    assert "--background is for a folder of photos" in one_line_error(capsys)


def test_the_owners_part_is_the_rows_after_the_background():
    owner = ImageDataset(
        torch.full((3, 3, 8, 8), 7, dtype=torch.uint8),
        torch.tensor([0, 1, 1]),
        ["cat", "me"],
        ["a.jpg", "b.jpg", "c.jpg"],
        torch.rand(3, 1, 8, 8),
    )
    back = ImageDataset(torch.zeros((4, 3, 8, 8), dtype=torch.uint8), torch.tensor([0, 0, 1, 1]), ["b:cat", "b:dog"])
    both = bg.among(owner, back)
    assert both.classes == ["b:cat", "b:dog", "cat", "me"]  # an owner's "cat" is not the background's
    assert both.labels.tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert torch.equal(both.images[4:], owner.images) and torch.equal(both.budget[4:], owner.budget)
    assert torch.equal(both.budget[:4], torch.ones(4, 1, 8, 8))
    rows = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).view(4, 3, 8, 8) / 1e5
    part = bg.owners_part(Perturbation(rows, 8 / 255, "classwise"), 2, 4, background={"source": "x"})
    assert torch.equal(part.delta, rows[2:]) and part.meta["background"] == {"source": "x"}
    rows = torch.rand(7, 3, 8, 8) * 0.01
    part = bg.owners_part(Perturbation(rows, 8 / 255, "samplewise"), 2, 4)
    assert torch.equal(part.delta, rows[4:])
    part.check_fits(owner)
