"""Bad input, untouched inputs, safe loading and `unlearnable verify` (see docs/trust.md)."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import sets, tree_hash
from PIL import Image

from unlearnable.cli import main
from unlearnable.data import DataError, ImageDataset, load_dataset
from unlearnable.export import export_protected
from unlearnable.perturbation import Perturbation

FAST_EVAL = ["--init", "scratch", "--epochs", "1", "--batch-size", "16", "--quiet", "--device", "cpu"]


@pytest.fixture()
def folder(tmp_path, make_image_folder):
    """train/ and test/ with 2 classes of 16x16 PNGs, one named with spaces and non-ASCII letters."""
    return make_image_folder(tmp_path / "in put", ["chat noir", "größe"], {"train": 8, "test": 4}, "é {i}.png")


def test_no_command_changes_its_input(folder, tmp_path):
    before = tree_hash(folder)
    out = tmp_path / "prot"
    assert main(["protect", "--data", str(folder), "--method", "random", "--out", str(out), "--quiet"]) == 0
    assert tree_hash(folder) == before
    prot_hash = tree_hash(out)
    assert main(["evaluate", "--train", str(out), "--data", str(folder), "--out", str(tmp_path / "e"), *FAST_EVAL]) == 0
    assert main(["verify", str(out)]) == 0
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        json.dumps(
            {
                "datasets": [{"name": "d", "source": str(folder)}],
                "methods": {"random": {}},
                "victims": [{"name": "s", "init": "scratch", "epochs": 1, "batch_size": 16}],
            }
        )
    )
    assert main(["bench", str(cfg), "--out", str(tmp_path / "bench"), "--quiet", "--device", "cpu"]) == 0
    assert tree_hash(folder) == before and tree_hash(out) == prot_hash


def test_verify_passes_and_catches_tampering(folder, tmp_path, capsys):
    out = tmp_path / "prot"
    assert main(["protect", "--data", str(folder), "--method", "random", "--out", str(out), "--quiet"]) == 0
    assert main(["verify", str(out)]) == 0
    report = capsys.readouterr().out
    for check in ("files", "perturbation", "input", "budget", "exact"):
        assert f"{check}" in report
    assert "FAILED" not in report and "verified" in report
    png = sorted(p for p in out.rglob("*.png") if p.parent != out)[3]
    arr = np.asarray(Image.open(png)).copy()
    arr[0, 0] = (arr[0, 0].astype(int) + 40) % 256  # outside any 8/255 budget
    Image.fromarray(arr).save(png)
    assert main(["verify", str(out)]) == 1
    report = capsys.readouterr().out
    assert "files         FAILED" in report and "budget        FAILED" in report and "exact         FAILED" in report
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "train" / "chat noir" / "new.png")
    assert main(["verify", str(out)]) == 1
    assert "input         FAILED" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "nothing")]) == 2


def test_symlinks_inside_are_followed_outside_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(outside)
    inside_target = next((folder / "train" / "chat noir").iterdir())
    (folder / "train" / "größe" / "link.png").symlink_to(inside_target)
    assert len(load_dataset(folder, "train", cache=False)) == 17
    (folder / "train" / "größe" / "out.png").symlink_to(outside)
    with pytest.raises(DataError, match="outside"):
        load_dataset(folder, "train", cache=False)
    (folder / "train" / "größe" / "out.png").unlink()
    (folder / "train" / "größe" / "loop").symlink_to(folder / "train", target_is_directory=True)
    with pytest.raises(DataError, match="loop"):
        load_dataset(folder, "train", cache=False)


def test_decompression_bomb_guard(folder, monkeypatch):
    monkeypatch.setenv("UNLEARNABLE_MAX_PIXELS", "100")
    with pytest.raises(DataError, match=r"16 x 16 pixels.*UNLEARNABLE_MAX_PIXELS"):
        load_dataset(folder, "train", cache=False)


def test_class_names_that_would_escape_the_output_are_refused(tmp_path):
    images = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    for bad in ("..", ".", "a/b", "/abs"):
        ds = ImageDataset(images, torch.tensor([0, 1]), [bad, "ok"])
        p = Perturbation(torch.zeros(2, 3, 4, 4), 8 / 255)
        with pytest.raises(ValueError, match="cannot be a folder name"):
            export_protected(tmp_path / "o", ds, ds, p, {})
        assert not (tmp_path / "o").exists() and not list(tmp_path.parent.glob("*escape*"))


def test_single_class_is_refused_where_it_cannot_work(folder, tmp_path, capsys):
    import shutil

    for split in ("train", "test"):
        shutil.rmtree(folder / split / "größe")
    bait = ["protect", "--data", str(folder), "--method", "bait", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*bait, "--background", "none"]) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    assert main(bait) == 2  # one subject: protected among CIFAR-10, which is not on this computer
    err = capsys.readouterr().err
    assert err.startswith("error: --background cifar10:") and "--download" in err, err
    assert main(["evaluate", "--train", str(folder), "--data", str(folder), *FAST_EVAL]) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    # methods that do not compare classes work with one
    assert main(["protect", "--data", str(folder), "--method", "random", "--out", str(tmp_path / "r"), "--quiet"]) == 0


def test_options_out_of_range_fail_before_work(folder, tmp_path, capsys):
    for argv, message in [
        (["protect", "--data", str(folder), "--out", str(tmp_path / "o"), "--eps", "0"], "--eps"),
        (["protect", "--data", str(folder), "--out", str(tmp_path / "o"), "--method", "ops", "--eps", "0.5"], "L0"),
        (["protect", "--data", str(folder), "--out", str(tmp_path / "o"), "--train-per-class", "100"], "100"),
        (["evaluate", "--train", str(folder), "--data", str(folder), "--epochs", "0"], "--epochs"),
        (["evaluate", "--train", str(folder), "--data", str(folder), "--victim", "resnet1000"], "resnet1000"),
        (["evaluate", "--train", str(folder), "--data", str(folder), "--defense", "magic"], "unknown defense"),
    ]:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        assert rc == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "o").exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickles_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"model": Payload()}))
    from unlearnable.models import create_model
    from unlearnable.training import TrainConfig, train_classifier

    ds = ImageDataset(torch.zeros((8, 3, 8, 8), dtype=torch.uint8), torch.arange(8) % 2, ["a", "b"])
    from unlearnable.training import CheckpointError

    with pytest.raises(CheckpointError, match="evil.pt cannot be read.*delete it"):  # loaded with weights_only=True
        train_classifier(
            create_model("small_cnn", 2),
            ds,
            TrainConfig(epochs=1, batch_size=4),
            device=torch.device("cpu"),
            progress=False,
            checkpoint=bad,
        )
    with pytest.raises(ValueError, match="not a perturbation file"):
        Perturbation.load(bad)
    from unlearnable.models.weights import WeightsError, load_state_dict_file

    with pytest.raises((WeightsError, pickle.UnpicklingError)):
        load_state_dict_file(bad)
    assert not (tmp_path / "pwned").exists()


def run_killed_then_resumed(argv, ckpt: Path, env, cwd):
    """Start the command, SIGKILL it as soon as its first checkpoint exists, then run it again."""
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "unlearnable", *argv]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed and ckpt.exists(), "the run ended before it could be killed; make it longer"
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True, timeout=300)
    assert not ckpt.exists()


def test_sigkill_then_resume_is_bit_identical(folder, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def uninterrupted_and_killed(argv: list[str], name: str) -> None:
        """`name`1 from one uninterrupted run, `name`2 from a run killed after its first checkpoint and resumed."""
        cmd = [sys.executable, "-m", "unlearnable", *argv, "--quiet", "--device", "cpu"]
        subprocess.run(
            [*cmd, "--out", str(tmp_path / f"{name}1")], env=env, check=True, capture_output=True, timeout=300
        )
        run_killed_then_resumed(
            [*argv, "--quiet", "--device", "cpu", "--out", str(tmp_path / f"{name}2")],
            tmp_path / f".{name}2.checkpoint.pt",
            env,
            tmp_path,
        )

    def same_perturbation(name: str) -> bool:
        a, b = (Perturbation.load(tmp_path / f"{name}{k}" / "perturbation.safetensors") for k in (1, 2))
        return torch.equal(a.delta, b.delta) and a.meta["history"] == b.meta["history"]

    bait = sets(surrogate="small_cnn", surrogate_init="scratch", stages="[12,12,12]", batch_size=8)
    uninterrupted_and_killed(["protect", "--data", str(folder), "--method", "bait", *bait], "p")
    assert same_perturbation("p")
    em = sets(surrogate="small_cnn", max_rounds=8, batch_size=8, stop_acc=1.0)
    uninterrupted_and_killed(["protect", "--data", str(folder), "--method", "em", *em], "m")
    assert same_perturbation("m")
    victim = ["--init", "scratch", "--epochs", "40", "--batch-size", "4"]
    uninterrupted_and_killed(["evaluate", "--train", str(tmp_path / "p1"), "--data", str(folder), *victim], "e")

    def history(p):
        rec = json.loads((tmp_path / p / "record.json").read_text())
        return [{k: v for k, v in h.items() if k != "seconds"} for h in rec["history"]]

    assert history("e1") == history("e2") and len(history("e1")) == 40


def test_tar_members_with_dotdot_or_absolute_paths_are_skipped(tmp_path, monkeypatch):
    import io
    import tarfile

    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "data.tar"
    with tarfile.open(path, "w") as tf:
        for name in ("a/0.png", "b/0.png", "../escape/0.png", "a/../../up.png"):
            buf = io.BytesIO()
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
            info = tarfile.TarInfo(name)
            info.size = buf.tell()
            buf.seek(0)
            tf.addfile(info, buf)
    ds = load_dataset(path, "train", cache=False)
    assert ds.classes == ["a", "b"] and len(ds) == 2
    assert not (tmp_path.parent / "escape").exists()


def test_disk_full_and_permission_errors_end_clearly_with_nothing_half_written(folder, tmp_path, monkeypatch, capsys):
    import errno

    from unlearnable import io as unlearnable_io

    out = tmp_path / "runs" / "prot"
    real_save, calls = Image.Image.save, {"n": 0}

    def full_disk(self, fp, *a, **k):  # the disk fills up while the PNGs are written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(fp))
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    assert main(["protect", "--data", str(folder), "--method", "random", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "free some space" in err and "Nothing half-written" in err
    assert not out.exists() and not [p.name for p in out.parent.iterdir()]  # no partial folder either
    monkeypatch.setattr(Image.Image, "save", real_save)

    def no_permission(*a, dir=None, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(unlearnable_io.tempfile, "mkdtemp", no_permission)  # found before any work
    assert main(["protect", "--data", str(folder), "--method", "random", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Permission denied" in err and str(out.parent) in err and "fix its permissions" in err
    monkeypatch.undo()

    # evaluate: the record cannot be written; the finished training stays in its checkpoint, and
    # the same command, run again once there is space, writes the record without training again
    rec = tmp_path / "runs" / "eval"
    cmd = [
        "evaluate",
        "--train",
        str(folder),
        "--data",
        str(folder),
        "--init",
        "scratch",
        "--victim",
        "small_cnn",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        str(rec),
    ]
    real_write = Path.write_text

    def full_disk_text(self, *a, **k):
        if self.name == "record.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full_disk_text)
    assert main(cmd) == 1 and not rec.exists()
    assert (rec.parent / ".eval.checkpoint.pt").exists()
    monkeypatch.undo()
    import unlearnable.training as training

    monkeypatch.setattr(training, "set_train_mode", None)  # any further training step would fail
    assert main(cmd) == 0 and len(json.loads((rec / "record.json").read_text())["history"]) == 2
