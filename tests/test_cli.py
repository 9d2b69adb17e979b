"""End to end through the command line: protect -> exported PNG folder -> evaluate."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unlearnable.cli import main
from unlearnable.data import load_dataset

TINY_BAIT = [
    "--set",
    "surrogate=small_cnn",
    "--set",
    "surrogate_init=scratch",
    "--set",
    "stages=[1,1,1]",
    "--set",
    "batch_size=16",
]


@pytest.fixture()
def image_folder(tmp_path, make_image_folder):
    """A small ImageFolder with train/ and test/ (3 classes, 16x16 PNGs), and an isolated cache."""
    return make_image_folder(tmp_path / "images", ["ant", "bee", "cow"], {"train": 16, "test": 6}, "img {i}.png")


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "method,extra",
    [("bait", TINY_BAIT), ("random", []), ("em", ["--set", "surrogate=small_cnn", "--set", "max_rounds=1"])],
)
def test_protect_exports_within_budget(image_folder, tmp_path, method, extra):
    before = tree_hash(image_folder)
    out = tmp_path / f"protected-{method}"
    rc = main(
        ["protect", "--data", str(image_folder), "--out", str(out), "--method", method, "--quiet", "--device", "cpu"]
        + extra
    )
    assert rc == 0
    assert tree_hash(image_folder) == before  # the input is never touched
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["seed"] == 0
    assert manifest["max_abs_change_0_255"] <= 8 and manifest["input_checksums"]
    assert (out / "perturbation.safetensors").exists() and (out / "preview.png").exists()
    # budget on the real exported files, re-read from disk and matched to their sources by name
    clean = load_dataset(image_folder, "train", cache=False)
    worst = 0
    for rel in clean.files:
        src = np.asarray(Image.open(image_folder / "train" / rel)).astype(int)
        png = out / Path(rel).with_suffix(".png")  # where it lay in the input (its train/)
        prot = np.asarray(Image.open(png)).astype(int)
        worst = max(worst, np.abs(prot - src).max())
    assert 0 < worst <= 8
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written left behind


def test_protect_refuses_existing_output_and_output_inside_input(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["protect", "--data", str(image_folder), "--method", "random", "--quiet"]
    assert main(args + ["--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(args + ["--out", str(image_folder / "inside")]) == 2
    assert "inside the input" in capsys.readouterr().err
    assert not (image_folder / "inside").exists()
    assert main(args + ["--out", str(out), "--force"]) == 2  # --force replaces only this tool's own output
    assert "--force replaces only an earlier output" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    assert main(args + ["--out", str(mine)]) == 0
    assert main(args + ["--out", str(mine), "--force", "--seed", "1"]) == 0
    assert json.loads((mine / "manifest.json").read_text())["seed"] == 1


def test_plan_says_what_would_be_done_and_writes_nothing(image_folder, tmp_path, capsys):
    before = tree_hash(tmp_path)
    assert main(["protect", "--data", str(image_folder / "train"), "--plan", *TINY_BAIT]) == 0
    line = capsys.readouterr().out.strip()
    assert "48 photos" in line and "3 classes by folders (ant 16, bee 16, cow 16)" in line and "peak memory" in line
    assert tree_hash(tmp_path) == before
    assert main(["protect", "--data", str(image_folder / "train"), "--method", "random"]) == 2  # no --out, no --plan
    assert "--out" in capsys.readouterr().err
    assert main(["protect", "--data", str(image_folder / "train"), "--plan", "--set", "stages=[1]"]) == 2
    assert "stages" in capsys.readouterr().err  # the method's options are checked as a run checks them


def test_bad_options_fail_before_work(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["protect", "--data", str(image_folder), "--out", str(tmp_path / "o"), "--eps", "-1"])
    assert "--eps" in capsys.readouterr().err
    assert main(["protect", "--data", str(image_folder), "--out", str(tmp_path / "o"), "--eps", "2"]) == 2
    assert "eps must be in (0, 1]" in capsys.readouterr().err  # 2 is over the method's Linf range
    assert main(["protect", "--data", str(image_folder), "--out", str(tmp_path / "o"), "--method", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["protect", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_protect_then_evaluate(image_folder, tmp_path):
    prot = tmp_path / "prot"
    assert main(["protect", "--data", str(image_folder), "--out", str(prot), "--method", "random", "--quiet"]) == 0
    res = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--train",
            str(prot),
            "--data",
            str(image_folder),
            "--init",
            "scratch",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--out",
            str(res),
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    rec = json.loads((res / "record.json").read_text())
    assert len(rec["history"]) == 2 and rec["n_train"] == 48 and rec["n_test"] == 18
    assert rec["best_test_acc"] == max(h["test_acc"] for h in rec["history"])
    assert rec["final_test_acc"] == rec["history"][-1]["test_acc"]
    assert (res / "curves.png").stat().st_size > 1000
    assert (
        main(
            [
                "evaluate",
                "--train",
                str(prot),
                "--data",
                str(image_folder),
                "--init",
                "scratch",
                "--epochs",
                "1",
                "--out",
                str(res),
                "--quiet",
            ]
        )
        == 2
    )  # refuses to overwrite results


def test_methods_and_models_list(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "bait" in out and "em" in out and "random" in out
    assert main(["models"]) == 0
    assert "efficientnet_lite0" in capsys.readouterr().out
