"""The rules every command keeps with people's data (docs/trust.md), one test per rule."""

import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import sets, tiny_cifar_tarball, tree_hash
from PIL import Image

from unlearnable.attacks import create_attack
from unlearnable.cli import main
from unlearnable.data import ImageDataset, load_dataset

RANDOM = ["--method", "random", "--quiet", "--device", "cpu"]
EM_TINY = [
    "--method",
    "em",
    "--quiet",
    "--device",
    "cpu",
    *sets(surrogate="small_cnn", max_rounds=4, batch_size=16, train_steps=2, stop_acc=1.0),
]
FAST_EVAL = ["--init", "scratch", "--epochs", "1", "--batch-size", "16", "--quiet", "--device", "cpu"]


def png(path: Path, seed: int, size=(16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture()
def world(tmp_path, make_image_folder, monkeypatch):
    """p/photos (train/ and test/), a data folder d/ that UNLEARNABLE_DATA names (holding a tiny
    cifar10-jpg.tar.gz), and a working directory cwd/ with a file of its own."""
    photos = make_image_folder(tmp_path / "p" / "photos", ["cat", "dog"], {"train": 8, "test": 4})
    data = tmp_path / "d"
    tiny_cifar_tarball(data / "cifar10-jpg.tar.gz")
    monkeypatch.setenv("UNLEARNABLE_DATA", str(data))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "notes.txt").write_text("mine")
    monkeypatch.chdir(cwd)
    return {"photos": photos, "data": data, "cwd": cwd, "root": tmp_path}


def snapshot(w) -> dict:
    return {k: tree_hash(w[k]) for k in ("photos", "data", "cwd")} | {"p": sorted(os.listdir(w["photos"].parent))}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- rule 1


def test_rule1_no_output_is_inside_contains_or_is_an_input_for_any_command(world, capsys):
    photos, data = world["photos"], world["data"]
    before = snapshot(world)
    outs = lambda inp: [inp, inp / "train", inp / "sub" / "deeper", inp.parent, ".", "", world["root"]]  # noqa: E731
    for force in ([], ["--force"]):
        for source, inp in ((str(photos), photos), ("cifar10", data)):
            for out in outs(inp):
                assert main(["protect", "--data", source, *RANDOM, "--out", str(out), *force]) == 2, (source, out)
                one_line_error(capsys)
        for train, test in ((str(photos), "cifar10"), ("cifar10", str(photos))):
            for inp in (photos, data):
                for out in outs(inp):
                    argv = ["evaluate", "--train", train, "--data", test, *FAST_EVAL, "--out", str(out), *force]
                    assert main(argv) == 2, (train, test, out)
                    one_line_error(capsys)
    cfg = world["root"] / "b.yaml"
    for source, inp in ((str(photos), photos), ("cifar10", data)):
        cfg.write_text(
            yaml.safe_dump(
                {
                    "datasets": [{"name": "d", "source": source}],
                    "methods": {"random": {}},
                    "victims": [{"name": "s", "init": "scratch", "epochs": 1}],
                }
            )
        )
        for out in outs(inp):
            assert main(["bench", str(cfg), "--out", str(out), "--quiet", "--device", "cpu"]) == 2, (source, out)
            one_line_error(capsys)
    for out in (photos, data, photos.parent, "."):
        assert main(["demo", "--data", str(photos), "--out", str(out), "--quiet", "--force"]) == 2
        one_line_error(capsys)
    assert snapshot(world) == before  # every input byte-identical, nothing added or removed


def test_rule1_force_replaces_only_an_earlier_output_of_the_same_command(world, capsys):
    photos, root = world["photos"], world["root"]
    args = ["protect", "--data", str(photos), *RANDOM, "--force", "--out"]
    foreign = root / "holiday"
    png(foreign / "beach.png", 1)
    (root / "fake").mkdir()
    (root / "fake" / "manifest.json").write_text(json.dumps({"method": "mine", "files": {}}))
    mine = root / "prot"
    assert main(["protect", "--data", str(photos), *RANDOM, "--out", str(mine)]) == 0
    evaluated = root / "eval"
    assert main(["evaluate", "--train", str(mine), "--data", str(photos), *FAST_EVAL, "--out", str(evaluated)]) == 0
    (root / "link").symlink_to(foreign, target_is_directory=True)  # judged by what it points to
    before = {p: tree_hash(p) for p in (foreign, root / "fake", mine, evaluated)}
    for out in (foreign, root / "fake", evaluated, root / "link", root / "b.yaml"):
        (root / "b.yaml").write_text("x")
        assert main([*args, str(out)]) == 2, out
        assert "--force replaces only an earlier output" in one_line_error(capsys)
    eval_args = ["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL, "--force", "--out"]
    assert main([*eval_args, str(mine)]) == 2  # a protect folder is not an evaluate output
    one_line_error(capsys)
    assert main(["demo", "--data", str(photos), "--out", str(foreign), "--quiet", "--force"]) == 2
    one_line_error(capsys)
    assert main(["demo", "--data", str(photos), "--out", str(foreign), "--quiet"]) == 2  # not a demo to resume
    one_line_error(capsys)
    assert {p: tree_hash(p) for p in before} == before
    (mine / "cat" / "my-notes.txt").write_text("keep me")  # one foreign file is enough to refuse
    assert main([*args, str(mine)]) == 2
    assert "did not write" in one_line_error(capsys)
    (mine / "cat" / "my-notes.txt").unlink()
    # the one atomic mechanism checks again when it replaces: a folder that appeared meanwhile is kept
    from unlearnable.export import export_protected
    from unlearnable.perturbation import Perturbation

    ds = load_dataset(photos, "train")
    p = Perturbation.load(mine / "perturbation.safetensors")
    with pytest.raises(FileExistsError, match="nothing was replaced"):
        export_protected(foreign, ds, p.apply(ds), p, {}, replace=True)
    assert tree_hash(foreign) == before[foreign]
    assert main([*args, str(mine), "--seed", "3"]) == 0  # its own earlier output is replaced
    assert json.loads((mine / "manifest.json").read_text())["seed"] == 3
    assert main([*eval_args, str(evaluated)]) == 0


@pytest.fixture()
def bind_mount():
    """mount --bind SRC DST (undone afterwards), or a skip where this process may not mount."""
    import shutil
    import subprocess

    made = []

    def bind(src: Path, dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        if not shutil.which("mount") or subprocess.run(["mount", "--bind", src, dst], capture_output=True).returncode:
            pytest.skip("a bind mount needs root and CAP_SYS_ADMIN")
        made.append(dst)
        return dst

    yield bind
    for dst in reversed(made):
        subprocess.run(["umount", dst], check=False)


def test_rule1_an_output_is_never_an_input_under_another_name(world, capsys, bind_mount):
    """A second path to the same folder (a bind mount) is the same folder: an --out that is,
    contains or lies inside an input through it is refused like the plain path."""
    photos, root = world["photos"], world["root"]
    alias = bind_mount(photos, root / "alias")
    around = bind_mount(photos.parent, root / "around")  # p/ under another name
    before = snapshot(world)
    protect = ["protect", "--data", str(photos), *RANDOM]
    for out, force, expect in (
        (alias, [], "is the input"),
        (alias, ["--force"], "is the input"),
        (alias / "train" / "protected", [], "inside the input"),
        (alias / "new", [], "inside the input"),
        (around, ["--force"], "contains the input"),
    ):
        assert main([*protect, "--out", str(out), *force]) == 2, out
        assert expect in one_line_error(capsys), out
    evaluate = ["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL]
    assert main([*evaluate, "--out", str(alias / "record")]) == 2
    assert "inside the input" in one_line_error(capsys)
    assert snapshot(world) == before and not (photos / "new").exists()


def test_rule1_bench_writes_only_inside_its_out(world, capsys):
    root = world["root"]
    cfg = root / "b.yaml"
    for bad in ("../x", "..", "a/b", ".hidden", ""):
        cfg.write_text(
            yaml.safe_dump(
                {
                    "datasets": [{"name": bad, "source": str(world["photos"])}],
                    "methods": {"random": {}},
                    "victims": [{"name": "s", "init": "scratch"}],
                }
            )
        )
        assert main(["bench", str(cfg), "--out", str(root / "runs" / "b"), "--quiet"]) == 2, bad
        assert "cannot name a folder" in one_line_error(capsys)
    assert not (root / "runs").exists() and not (root / "x").exists()
    (root / "busy").mkdir()
    png(root / "busy" / "a.png", 0)
    cfg.write_text(
        yaml.safe_dump(
            {
                "datasets": [{"name": "d", "source": str(world["photos"])}],
                "methods": {"random": {}},
                "victims": [{"name": "s", "init": "scratch"}],
            }
        )
    )
    assert main(["bench", str(cfg), "--out", str(root / "busy"), "--quiet"]) == 2  # not a bench folder to resume
    assert "not an earlier `unlearnable bench` output" in one_line_error(capsys)


def test_rule9_no_run_destroys_what_another_run_left(world, tmp_path, monkeypatch, capsys):
    """A checkpoint, a partial folder or a set-aside output beside --out belongs to the run that
    left it: any other command, method or setting is refused naming it, with and without --force;
    `unlearnable clean` lists them and deletes them only when asked, and nothing else."""
    from unlearnable import export, io, training

    photos, root = world["photos"], world["root"]
    real_save = training.Checkpoint.save
    out, ckpt = root / "prot", root / ".prot.checkpoint.pt"
    em = ["protect", "--data", str(photos), *EM_TINY, "--out", str(out)]
    stop_after_saves(monkeypatch, 1)
    assert main(em) == 130 and ckpt.exists()
    ev, ev_ckpt = root / "ev", root / ".ev.checkpoint.pt"
    evaluate = ["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL, "--out", str(ev)]
    stop_after_saves(monkeypatch, 1)
    assert main(evaluate) == 130 and ev_ckpt.exists()
    monkeypatch.setattr(training.Checkpoint, "save", real_save)
    capsys.readouterr()
    kept = {p: p.read_bytes() for p in (ckpt, ev_ckpt)}
    protect = ["protect", "--data", str(photos), "--quiet", "--device", "cpu"]
    others = [
        [*protect, "--method", m, "--out", str(target), *force]
        for m in ("random", "lsp", "ar")
        for target in (out, ev)
        for force in ([], ["--force"])
    ]
    others += [
        [*em, "--seed", "1"],  # the same method with another setting
        [*em[:-2], "--set", "max_rounds=3", "--out", str(out)],
        ["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL, "--out", str(out)],
        [*evaluate, "--epochs", "2"],
        ["check", str(root / "r0"), "--out", str(ev), "--quiet", "--init", "scratch"],
    ]
    assert main([*protect, "--method", "random", "--out", str(root / "r0")]) == 0
    for argv in others:
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert "belongs to another run" in err and "unlearnable clean" in err, (argv, err)
        assert {p: p.read_bytes() for p in kept} == kept and not out.exists() and not ev.exists()
    # a run killed while its output was being written leaves a partial folder: it is that run's
    lsp, part = root / "lsp", None
    lsp_cmd = [*protect, "--method", "lsp", "--image-size", "16", "--out", str(lsp)]

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_new", killed)
    monkeypatch.setattr(io.shutil, "rmtree", lambda *a, **k: None)  # as a SIGKILL: no cleanup ran
    assert main(lsp_cmd) == 130
    monkeypatch.undo()
    (part,) = [p for p in root.iterdir() if p.name.startswith(".lsp.partial-")]
    capsys.readouterr()
    for argv in ([*protect, "--method", "random", "--out", str(lsp)], [*lsp_cmd, "--seed", "2"]):
        assert main(argv) == 2
        assert str(part) in one_line_error(capsys) and part.is_dir()
    assert main(lsp_cmd) == 0 and not part.exists()  # its own run finishes and removes it
    assert not [p.name for p in root.iterdir() if p.name.startswith(".lsp.")]
    # leftovers with no record of their run (an older version's) are no one's to take over
    stray = root / ".lsp.old-x1"
    stray.mkdir()
    (stray / "lsp").mkdir()
    (root / ".lsp.notes").write_text("not a leftover name")
    assert main([*lsp_cmd, "--force"]) == 2
    assert "no record" in one_line_error(capsys) and stray.is_dir()
    # clean: lists, deletes only with --yes, only leftover names, never the output, never a live run's
    before = tree_hash(lsp)
    assert main(["clean", str(out)]) == 0
    listed = capsys.readouterr().out
    assert str(ckpt) in listed and "--yes" in listed and ckpt.exists()
    from unlearnable.outputs import run_lock

    with run_lock(ev.resolve()):
        assert main(["clean", str(ev), "--yes"]) == 2
        assert "another unlearnable run is writing" in one_line_error(capsys) and ev_ckpt.exists()
    for target in (out, ev, lsp):
        assert main(["clean", str(target), "--yes"]) == 0
    assert not ckpt.exists() and not ev_ckpt.exists() and not stray.exists()
    assert (root / ".lsp.notes").read_text() == "not a leftover name" and tree_hash(lsp) == before
    assert not [p for p in root.iterdir() if p.name.endswith(".lock")]
    assert main(["clean", str(out)]) == 0 and "nothing to clean" in capsys.readouterr().out
    assert main([*protect, "--method", "random", "--out", str(out)]) == 0  # the way is free again
    assert main(evaluate) == 0 and (ev / "record.json").is_file()


# --------------------------------------------------------------------------- rule 2


def stop_after_saves(monkeypatch, n: int) -> None:
    """The process dies (KeyboardInterrupt) right after the n-th checkpoint is on disk."""
    from unlearnable import training

    real, calls = training.Checkpoint.save, {"n": 0}

    def save(self, state):
        real(self, state)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Checkpoint, "save", save)


def test_rule2_a_checkpoint_resumes_only_the_run_that_wrote_it(world, tmp_path, monkeypatch, capsys, make_image_folder):
    from unlearnable import training

    other = make_image_folder(tmp_path / "other", ["cat", "dog"], {"train": 8, "test": 4}, size=16, name="o{i}.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(other / "train" / "cat" / "o0.png")
    out = tmp_path / "prot"
    ckpt = tmp_path / ".prot.checkpoint.pt"
    cmd = ["protect", "--data", str(world["photos"]), *EM_TINY, "--out", str(out)]
    real_save = training.Checkpoint.save
    stop_after_saves(monkeypatch, 2)
    assert main(cmd) == 130 and ckpt.exists() and not out.exists()
    assert "run the same command again" in capsys.readouterr().err
    monkeypatch.setattr(training.Checkpoint, "save", real_save)
    kept = ckpt.read_bytes()
    for changed, what in (
        (["--seed", "1"], "settings.seed"),
        (["--data", str(other)], "data"),
        (["--set", "step_size=0.01"], "settings.step_size"),
    ):
        argv = cmd[:1] + ["--data", changed[1]] + cmd[3:] if changed[0] == "--data" else cmd + changed
        assert main(argv) == 2
        err = one_line_error(capsys)
        assert "belongs to another run" in err and what in err and str(ckpt) in err
        assert ckpt.read_bytes() == kept and not out.exists()
    assert main(cmd) == 0  # the run that wrote it resumes and finishes
    assert not ckpt.exists() and main(["verify", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["data"] == str(world["photos"].resolve())


def test_rule2_the_checkpoint_is_removed_only_after_the_output_is_in_place(world, tmp_path, monkeypatch, capsys):
    from unlearnable import export
    from unlearnable.attacks import em as em_module

    out, ckpt = tmp_path / "prot", tmp_path / ".prot.checkpoint.pt"
    cmd = ["protect", "--data", str(world["photos"]), *EM_TINY, "--out", str(out)]

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "write_new", full_disk)
    assert main(cmd) == 1 and not out.exists() and ckpt.exists()  # the fit is kept
    assert "No space left" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(em_module, "sgd_step", None)  # fitting again would fail: the checkpoint has it all
    assert main(cmd) == 0 and out.exists() and not ckpt.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".prot")]  # no lock, no temporary left


def test_rule2_two_runs_never_share_an_output_or_a_temporary_file(world, tmp_path, capsys):
    from unlearnable.io import atomic_file
    from unlearnable.outputs import run_lock

    out = tmp_path / "prot"
    with run_lock(out.resolve()):  # another run is writing this output right now
        assert main(["protect", "--data", str(world["photos"]), *RANDOM, "--out", str(out)]) == 2
        assert "another unlearnable run is writing" in one_line_error(capsys)
    assert main(["protect", "--data", str(world["photos"]), *RANDOM, "--out", str(out)]) == 0
    with atomic_file(tmp_path / "x.json") as a, atomic_file(tmp_path / "x.json") as b:
        assert a != b and a.parent == b.parent == tmp_path


def test_rule2_truncated_or_foreign_checkpoints_are_refused_naming_the_file(world, tmp_path, monkeypatch, capsys):
    from unlearnable import training

    out, ckpt = tmp_path / "prot", tmp_path / ".prot.checkpoint.pt"
    cmd = ["protect", "--data", str(world["photos"]), *EM_TINY, "--out", str(out)]
    ckpt.write_bytes(b"\x80\x02truncated")  # no run recorded it: nobody may take it over
    assert main(cmd) == 2
    err = one_line_error(capsys)
    assert str(ckpt) in err and "no record" in err and f"unlearnable clean {out}" in err
    ckpt.unlink()
    real_save = training.Checkpoint.save
    stop_after_saves(monkeypatch, 1)  # the run is recorded as the checkpoint's owner
    assert main(cmd) == 130 and "run the same command again" in capsys.readouterr().err
    monkeypatch.setattr(training.Checkpoint, "save", real_save)
    for content in (b"\x80\x02truncated", b""):  # its checkpoint damaged: the same run refuses to read it
        ckpt.write_bytes(content)
        assert main(cmd) == 2
        err = one_line_error(capsys)
        assert str(ckpt) in err and "delete it" in err
    torch.save({"model": {}, "round": 3}, ckpt)  # a torch file of something else
    assert main(cmd) == 2
    assert str(ckpt) in one_line_error(capsys)
    torch.save({"torch_rng": torch.get_rng_state(), "round": 3}, ckpt)  # an older version's, with no run recorded
    assert main(cmd) == 2
    assert "older version" in one_line_error(capsys)


# --------------------------------------------------------------------------- rule 3


def small_set(n_per_class=24, size=16) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2 * n_per_class, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(2 * n_per_class) % 2, ["a", "b"])


TINY = {"surrogate": "small_cnn", "surrogate_init": "scratch"}
LONG_METHODS = {
    "em": ("em", dict(surrogate="small_cnn", batch_size=16, max_rounds=4, train_steps=2, stop_acc=1.0)),
    "em-samplewise": (
        "em",
        dict(
            surrogate="small_cnn",
            kind="samplewise",
            batch_size=16,
            max_rounds=3,
            train_steps=2,
            attack_steps=2,
            stop_acc=1.0,
        ),
    ),
    "tap": ("tap", dict(surrogate="small_cnn", surrogate_epochs=2, surrogate_batch_size=16, steps=2, batch_size=8)),
    "rem": ("rem", dict(surrogate="small_cnn", train_steps=25, batch_size=16, steps=1, eot=1, adv_steps=1)),
    "bait-direct": ("bait", dict(TINY, stages=[2, 2, 2], batch_size=16)),
    "gue": ("gue", dict(epochs=3, batch_size=16, inner_steps=2, unet_width=4)),
    "tue": ("tue", dict(TINY, epochs=3, batch_size=16, steps=2, train_steps=2)),
    "bait-generator": (
        "bait",
        dict(TINY, stages=[1, 1, 1], batch_size=16, parameterization="generator", generator_width=0.125),
    ),
    "bait-hardened": (  # every hardening option at once: EOT, a grey share, random phases, an ensemble
        "bait",
        dict(
            TINY,
            stages=[2, 2, 2],
            batch_size=16,
            eot=["grayscale", "jpeg", "resize", "blur", "jitter"],
            luma=0.5,
            random_phase=True,
            surrogates=["small_cnn"],
        ),
    ),
}


@pytest.mark.parametrize("stop", [1, 2])
@pytest.mark.parametrize("name", sorted(LONG_METHODS))
def test_rule3_resume_is_bit_identical_for_every_method_that_checkpoints(name, stop, tmp_path, monkeypatch):
    from unlearnable import training

    method, opts = LONG_METHODS[name]
    ds = small_set()
    full = create_attack(method, device="cpu", progress=False, **opts).fit(ds)
    ckpt = tmp_path / "c.pt"
    real = training.Checkpoint.save
    stop_after_saves(monkeypatch, stop)
    with pytest.raises(KeyboardInterrupt):
        create_attack(method, device="cpu", progress=False, checkpoint=ckpt, **opts).fit(ds)
    monkeypatch.setattr(training.Checkpoint, "save", real)
    torch.manual_seed(1234)  # the resumed process starts with other random state
    resumed = create_attack(method, device="cpu", progress=False, checkpoint=ckpt, **opts).fit(ds)
    assert torch.equal(full.delta, resumed.delta), name
    assert json.dumps(full.meta, sort_keys=True, default=str) == json.dumps(resumed.meta, sort_keys=True, default=str)


def test_rule3_evaluate_and_bench_resume_bit_identically(world, tmp_path, monkeypatch):
    from unlearnable import bench, training
    from unlearnable.perturbation import Perturbation

    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "datasets": [{"name": "d", "source": str(world["photos"])}],
                "methods": {
                    "clean": {},
                    "em": {"surrogate": "small_cnn", "max_rounds": 3, "batch_size": 16, "train_steps": 2},
                },
                "victims": [{"name": "s", "init": "scratch", "epochs": 3, "batch_size": 4}],
            }
        )
    )
    bench.run_bench(cfg, tmp_path / "full", device="cpu", progress=False)
    real = training.Checkpoint.save
    for stop in (2, 5):  # inside the first cell's training; inside the EM protection
        stop_after_saves(monkeypatch, stop)
        with pytest.raises(KeyboardInterrupt):
            bench.run_bench(cfg, tmp_path / "killed", device="cpu", progress=False)
        monkeypatch.setattr(training.Checkpoint, "save", real)
    bench.run_bench(cfg, tmp_path / "killed", device="cpu", progress=False)

    def runs(folder):
        recs = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
        return {r["cell"]: [{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]] for r in recs}

    assert runs(tmp_path / "full") == runs(tmp_path / "killed")
    a, b = (
        Perturbation.load(tmp_path / f / "protected" / "d" / "em-seed0" / "perturbation.safetensors")
        for f in ("full", "killed")
    )
    assert torch.equal(a.delta, b.delta) and a.meta == b.meta
    assert not list((tmp_path / "killed").rglob("*.checkpoint.pt")) and not list((tmp_path / "killed").rglob("*.lock"))


# --------------------------------------------------------------------------- rule 4


def test_rule4_every_input_image_gives_exactly_one_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "in"
    names = ["cat/x/a.png", "cat/y/a.png", "cat/b.jpg", "cat/b.png", "cat/B.png", "dog/a.png", "dog/deep/er/c.bmp"]
    for i, n in enumerate(names):
        png(src / n, i)
    out = tmp_path / "out"
    assert main(["protect", "--data", str(src), *RANDOM, "--out", str(out)]) == 2  # nested: which are classes?
    assert "--labels top (here 'cat')" in one_line_error(capsys) and not out.exists()
    assert main(["protect", "--data", str(src), *RANDOM, "--out", str(out), "--labels", "top"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.parent != out)
    assert len(written) == len(names) == manifest["images"]
    assert sorted(manifest["sources"].values()) == sorted(names)  # every input named once
    assert manifest["sources"]["cat/x/a.png"] == "cat/x/a.png" and "cat/y/a.png" in manifest["sources"]
    assert manifest["sources"]["cat/b.jpg.png"] == "cat/b.jpg"  # kept apart from cat/b.png
    assert manifest["sources"]["dog/deep/er/c.png"] == "dog/deep/er/c.bmp"
    assert main(["verify", str(out)]) == 0

    cased = tmp_path / "cased"  # one folder on a case-insensitive disk
    for n in ("Cat/a.png", "cat/b.png"):
        png(cased / n, 0)
    assert main(["protect", "--data", str(cased), *RANDOM, "--out", str(tmp_path / "o3")]) == 2
    assert "differ only in case" in one_line_error(capsys) and not (tmp_path / "o3").exists()

    mixed = tmp_path / "mixed"  # a class called "train" beside other classes
    for n in ("train/a.png", "cat/a.png", "dog/a.png"):
        png(mixed / n, 0)
    assert main(["protect", "--data", str(mixed), *RANDOM, "--out", str(tmp_path / "o2")]) == 2
    assert "both split folders" in one_line_error(capsys) and not (tmp_path / "o2").exists()


def test_rule4_names_that_would_meet_are_kept_apart(tmp_path):
    from unlearnable.export import output_names

    images = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 0])
    twice = ImageDataset(images, labels, ["c"], ["c/a.png", "c/a.png"])  # an archive may name two images alike
    assert output_names(twice) == ["c/a.png", "c/a.00001.png"]
    assert len(set(output_names(ImageDataset(images, labels, ["c"], ["c/a.b.png", "c/a.b"])))) == 2
    assert output_names(ImageDataset(images, labels, ["c"])) == ["c/00000.png", "c/00001.png"]


# --------------------------------------------------------------------------- rule 5


@pytest.fixture()
def protected(world, tmp_path):
    out = tmp_path / "prot"
    assert main(["protect", "--data", str(world["photos"]), *RANDOM, "--out", str(out)]) == 0
    return out


def edit_manifest(folder: Path, change) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    change(m)  # in place
    (folder / "manifest.json").write_text(json.dumps(m))


def verify_report(folder, capsys, *extra):
    rc = main(["verify", str(folder), *extra])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out


def test_rule5_verify_fails_on_every_inconsistency_it_can_detect(protected, tmp_path, capsys, world):
    import shutil

    from unlearnable.io import file_sha256
    from unlearnable.perturbation import Perturbation

    assert verify_report(protected, capsys)[0] == 0

    def case(name, tamper, expect):
        folder = tmp_path / name
        shutil.copytree(protected, folder)
        tamper(folder)
        rc, report = verify_report(folder, capsys)
        assert rc == 1 and "verified" not in report.splitlines()[-1].replace("NOT VERIFIED", ""), (name, report)
        assert expect in report, (name, report)

    case("no-files", lambda f: edit_manifest(f, lambda m: m.pop("files")), "manifest      FAILED")
    case("data-null", lambda f: edit_manifest(f, lambda m: m.update(data=None)), "names no input")
    case("extra-jpg", lambda f: png(f / "cat" / "extra.jpg", 9), "files         FAILED")
    case("extra-top", lambda f: (f / "notes.txt").write_text("x"), "not in the manifest")
    case("missing-png", lambda f: next(p for p in f.rglob("*.png") if p.parent != f).unlink(), "missing or changed")
    case("no-perturbation", lambda f: (f / "perturbation.safetensors").unlink(), "perturbation  FAILED")
    case("manifest-list", lambda f: (f / "manifest.json").write_text("[1, 2]"), "manifest      FAILED")
    case("manifest-junk", lambda f: (f / "manifest.json").write_text("{not json"), "not valid JSON")
    case("files-list", lambda f: edit_manifest(f, lambda m: m.update(files=["train/a.png"])), "manifest      FAILED")
    case("eps-differs", lambda f: edit_manifest(f, lambda m: m.update(eps=4 / 255)), "disagree on eps")

    def bigger_budget(f):  # a 32/255 folder dressed as 8/255: images, perturbation and hashes redone
        p = Perturbation.load(f / "perturbation.safetensors")
        clean = load_dataset(world["photos"], "train")
        big = Perturbation(p.delta.sign() * 32 / 255, 32 / 255, p.kind, p.method, p.meta)
        big.save(f / "perturbation.safetensors")
        imgs = big.apply(clean).images.permute(0, 2, 3, 1).numpy()
        m = json.loads((f / "manifest.json").read_text())
        for i, n in enumerate(m["files"]):
            Image.fromarray(imgs[i]).save(f / n)
            m["files"][n] = file_sha256(f / n)
        m["perturbation_sha256"] = file_sha256(f / "perturbation.safetensors")
        (f / "manifest.json").write_text(json.dumps(m))

    case("32-as-8", bigger_budget, "budget        FAILED")

    def emptied(f):  # the perturbation zeroed, the clean images in its place, every hash redone
        p = Perturbation.load(f / "perturbation.safetensors")
        Perturbation(p.delta * 0, p.eps, p.kind, p.method, p.meta).save(f / "perturbation.safetensors")
        clean = load_dataset(world["photos"], "train").images.permute(0, 2, 3, 1).numpy()
        m = json.loads((f / "manifest.json").read_text())
        for i, n in enumerate(m["files"]):
            Image.fromarray(clean[i]).save(f / n)
            m["files"][n] = file_sha256(f / n)
        m.update(perturbation_sha256=file_sha256(f / "perturbation.safetensors"), max_abs_change_0_255=0)
        (f / "manifest.json").write_text(json.dumps(m))

    case("emptied", emptied, "an empty protection")
    case("method-differs", lambda f: edit_manifest(f, lambda m: m.update(method="bait")), "disagree on method")
    case(
        "option-differs",
        lambda f: edit_manifest(f, lambda m: m["settings"].update(seed=5)),
        "disagree on settings.seed",
    )
    case("no-settings", lambda f: edit_manifest(f, lambda m: m.pop("settings")), "no 'settings'")
    case(
        "largest-differs",
        lambda f: edit_manifest(f, lambda m: m.update(max_abs_change_0_255=m["max_abs_change_0_255"] - 1)),
        "the manifest records",
    )
    case(
        "source-dropped",
        lambda f: edit_manifest(f, lambda m: m["sources"].pop(next(iter(m["sources"])))),
        "list different images",
    )
    moved = tmp_path / "moved-input"
    world["photos"].rename(moved)
    rc, report = verify_report(protected, capsys)
    assert rc == 1 and "NOT VERIFIED" in report and "skipped" in report
    assert verify_report(protected, capsys, "--data", str(moved))[0] == 0


def test_rule5_every_photo_is_accounted_for_by_one_check(world, tmp_path, capsys):
    """A photo folder: a listed file that no check redraws (its photo_files entry dropped, the
    original in its place with its hash redone) is not verified, nor a file listed twice over."""
    import shutil

    from unlearnable.io import file_sha256

    photos = world["photos"] / "train"
    out = tmp_path / "ph"
    assert main(["protect", "--data", str(photos), *RANDOM, "--out", str(out)]) == 0
    assert verify_report(out, capsys)[0] == 0

    def swapped(f):
        m = json.loads((f / "manifest.json").read_text())
        name = next(iter(m["photo_files"]))
        source = m["photo_files"].pop(name)["source"]
        shutil.copyfile(photos / source, f / name)  # the unprotected original, byte for byte
        m["files"][name] = file_sha256(f / name)
        (f / "manifest.json").write_text(json.dumps(m))

    for name, tamper in (
        ("entry-dropped", swapped),
        ("photo-files-gone", lambda f: edit_manifest(f, lambda m: m.pop("photo_files"))),
    ):
        folder = tmp_path / name
        shutil.copytree(out, folder)
        tamper(folder)
        rc, report = verify_report(folder, capsys)
        assert rc == 1 and "manifest      FAILED" in report, (name, report)


def test_rule5_verify_passes_on_folders_made_by_bench_and_demo(world, tmp_path, monkeypatch, capsys):
    from unlearnable import bench, evaluate
    from unlearnable.attacks import bait, em

    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "datasets": [{"name": "d", "source": "cifar10", "train_per_class": 6}],
                "methods": {"random": {}, "em": {"surrogate": "small_cnn", "max_rounds": 2, "batch_size": 8}},
                "victims": [{"name": "s", "init": "scratch", "epochs": 1, "batch_size": 4}],
            }
        )
    )
    bench.run_bench(cfg, tmp_path / "bench", device="cpu", progress=False)
    for m in ("random-seed0", "em-seed0"):
        assert verify_report(tmp_path / "bench" / "protected" / "d" / m, capsys)[0] == 0, m
    # the demo with tiny presets: every method and victim as in the real one, a few steps each
    monkeypatch.setitem(
        em.KIND_DEFAULTS,
        ("cpu", "classwise"),
        {"attack_steps": 1, "attack_fraction": 0.5, "augment": True, "max_rounds": 2},
    )
    monkeypatch.setitem(
        bait.BAIT.PRESETS,
        "cpu",
        bait.BAITOptions(
            surrogate="small_cnn",
            surrogate_init="scratch",
            parameterization="direct",
            direct_size=8,
            stages=(1, 1, 1),
            batch_size=8,
            direct_lr=1.0,
        ),
    )
    for key in (("cpu", "scratch"), ("cpu", "imagenet")):
        monkeypatch.setitem(
            evaluate.VICTIM_PRESETS,
            key,
            {**evaluate.VICTIM_PRESETS[key], "epochs": 1, "batch_size": 8, "input_size": None},
        )
    demo = ["demo", "--out", str(tmp_path / "demo"), "--train-per-class", "6", "--quiet", "--device", "cpu"]
    from unlearnable import training

    real = training.Checkpoint.save
    stop_after_saves(monkeypatch, 4)  # killed inside its BAIT protection
    assert main(demo) == 130
    assert (tmp_path / "demo" / "protected" / ".bait.checkpoint.pt").exists()
    monkeypatch.setattr(training.Checkpoint, "save", real)
    assert main(demo) == 0  # the same command resumes it
    for m in ("em", "bait"):
        assert verify_report(tmp_path / "demo" / "protected" / m, capsys)[0] == 0, m
    changed = [*demo[:3], "--train-per-class", "5", *demo[5:]]  # a demo resumes only the demo started there
    assert main(changed) == 2
    assert "made with other settings" in one_line_error(capsys)
    assert main([*demo, "--force"]) == 0  # its own earlier output


# --------------------------------------------------------------------------- rule 6


def test_rule6_an_empty_or_ineffective_protection_is_not_a_success(world, tmp_path, capsys):
    from unlearnable.export import export_protected
    from unlearnable.perturbation import Perturbation

    photos = str(world["photos"])
    for argv, message in (
        (["--eps", "0.003"], "below one 8-bit level"),
        (["--method", "ar", "--eps", "0.002"], "below one 8-bit level"),
        (["--method", "em", "--set", "max_rounds=0"], "max_rounds must be greater than 0"),
        (["--method", "tap", "--set", "steps=0"], "steps must be greater than 0"),
        (["--method", "bait", "--set", "direct_lr=0"], "direct_lr must be greater than 0"),
    ):
        assert main(["protect", "--data", photos, "--quiet", "--out", str(tmp_path / "o"), *argv]) == 2, argv
        assert message in one_line_error(capsys)
    assert not (tmp_path / "o").exists()
    ds = load_dataset(world["photos"], "train")
    with pytest.raises(ValueError, match="changed no pixel"):
        export_protected(tmp_path / "o", ds, ds, Perturbation(torch.zeros(2, 3, 16, 16), 8 / 255), {})
    assert not (tmp_path / "o").exists()
    weak = [
        "protect",
        "--data",
        photos,
        "--method",
        "bait",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "w"),
        "--set",
        "surrogate=small_cnn",
        "--set",
        "surrogate_init=scratch",
        "--set",
        "stages=[1,0,0]",
        "--set",
        "batch_size=16",
        "--set",
        "direct_lr=0.15",
    ]
    assert main(weak) == 0
    assert "this protection is weak" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["warnings"] and manifest["max_abs_change_0_255"] < 2


# --------------------------------------------------------------------------- rule 7


def test_rule7_every_error_is_one_line_naming_the_option_or_file(world, tmp_path, monkeypatch, capsys):
    photos = str(world["photos"])
    prot = ["protect", "--data", photos, "--quiet", "--out", str(tmp_path / "o")]
    cases = [
        ([*prot, "--device", "bogus"], "--device 'bogus'"),
        ([*prot, "--method", "em", "--set", "max_rounds=abc"], "max_rounds must be a whole number"),
        ([*prot, "--method", "bait", "--set", "stages=5"], "stages"),
        ([*prot, "--method", "em", "--set", "kind=both"], "kind must be one of"),
        ([*prot, "--out", ""], "--out is empty"),
        (["evaluate", "--train", photos, "--data", photos, "--device", "bogus"], "--device"),
        (["evaluate", "--train", photos, "--data", photos, "--victim", "nope"], "unknown model"),
    ]
    if not torch.cuda.is_available():
        cases.append(([*prot, "--device", "cuda"], "--device cuda"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in one_line_error(capsys), argv
    assert not (tmp_path / "o").exists()

    # a full disk while the perturbation is written
    import safetensors.torch

    def full(*a, **k):
        raise safetensors.SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr("unlearnable.perturbation.save_file", full)
    assert main([*prot, "--method", "random"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "No space left on device" in err and "perturbation.safetensors" in err
    monkeypatch.undo()

    # a full disk while a checkpoint is written (torch reports it as a RuntimeError)
    def no_space(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1234 vs 0")

    monkeypatch.setattr(torch, "save", no_space)
    assert main([*prot[:-2], "--out", str(tmp_path / "ck"), *EM_TINY[:-2]]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot write the checkpoint" in err and ".ck.checkpoint.pt" in err
    monkeypatch.undo()

    # bench: a malformed results file, and options checked before any protection
    cfg = tmp_path / "b.yaml"
    good = {
        "datasets": [{"name": "d", "source": photos}],
        "methods": {"random": {}},
        "victims": [{"name": "s", "init": "scratch", "epochs": 1, "batch_size": 8}],
    }
    for victim, message in (
        ({"name": "s", "init": "scratch", "epochs": "abc"}, "epochs must be a whole number"),
        ({"name": "s", "init": "scratch", "lr": [1]}, "lr must be"),
        ({"name": "s", "init": "scratch", "victim": "resnet1000"}, "unknown model"),
        ({"name": "s", "init": "sideways"}, "victim 's': option init must be one of scratch, imagenet"),
    ):
        cfg.write_text(yaml.safe_dump({**good, "victims": [victim]}))
        assert main(["bench", str(cfg), "--out", str(tmp_path / "bench"), "--quiet"]) == 2
        assert message in one_line_error(capsys)
        assert not (tmp_path / "bench").exists()  # nothing protected first
    for change, message in (
        ({"methods": {"em": {"eps": "abc"}}}, "eps must be a number"),
        ({"methods": {"em": {"max_rounds": 0}}}, "max_rounds must be greater than 0"),
        ({"datasets": [{"name": "d", "source": photos, "train_per_class": "abc"}]}, "train_per_class"),
        ({"datasets": [{"name": "d", "source": photos, "train_size": 3}]}, "unknown key"),
        ({"datasets": [{"name": "d", "source": str(tmp_path / "nowhere")}]}, "does not exist"),
    ):
        cfg.write_text(yaml.safe_dump({**good, **change}))
        assert main(["bench", str(cfg), "--out", str(tmp_path / "bench"), "--quiet"]) == 2, change
        assert message in one_line_error(capsys), change
        assert not (tmp_path / "bench").exists()
    cfg.write_text(yaml.safe_dump(good))
    assert main(["bench", str(cfg), "--out", str(tmp_path / "bench"), "--quiet", "--device", "cpu"]) == 0
    capsys.readouterr()
    results = tmp_path / "bench" / "results.jsonl"
    results.write_text('{"cell": 3}\n' + results.read_text())
    assert main(["bench", str(cfg), "--out", str(tmp_path / "bench"), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "results.jsonl line 1" in err and "delete that line" in err


# --------------------------------------------------------------------------- rule 8


def test_rule8_photos_keep_their_orientation(tmp_path, monkeypatch):
    from unlearnable.data.sources import decode_image

    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    arr = np.zeros((8, 16, 3), np.uint8)  # stored landscape, 16 wide and 8 high
    arr[:, :8] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": the camera was held upright
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    upright = decode_image(buf.getvalue(), "portrait.jpg")
    assert upright.shape == (16, 8, 3)  # portrait, as it is meant to be seen
    assert upright[:8].mean() > 200 and upright[8:].mean() < 50  # the white half is now on top
    for k in range(2):
        (tmp_path / "in" / f"c{k}").mkdir(parents=True)
        (tmp_path / "in" / f"c{k}" / "p.jpg").write_bytes(buf.getvalue())
    assert load_dataset(tmp_path / "in", "train").images.shape == (2, 3, 16, 8)


XMP_SIDEWAYS = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmp:CreatorTool="camera" tiff:Orientation="6"/><rdf:Description><tiff:Orientation>6</tiff:Orientation>'
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "same"])
def test_rule8_photos_are_upright_everywhere_and_single_images(tmp_path, capsys, fmt):
    """Stored sideways with the orientation in EXIF, in XMP or both: the output is upright and
    carries no orientation anywhere, so every reader (Pillow, the tool's own) sees it upright.
    An animation or a multi-page file is refused by name, before any work."""
    from unlearnable.data.sources import decode_image, exif_of
    from unlearnable.photos import open_upright

    root = tmp_path / "in"
    arr = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # 40 wide, 24 high as stored
    made = {}
    for k, (tags, xmp) in enumerate(((True, False), (False, True), (True, True))):
        img = Image.fromarray(arr)
        extra = {"xmp": XMP_SIDEWAYS} if xmp else {}
        if tags:
            exif = img.getexif()
            exif[0x0112] = 6
            exif[0x010F] = "maker"
            extra["exif"] = exif.tobytes()
        (root / "c").mkdir(parents=True, exist_ok=True)
        img.save(root / "c" / f"p{k}.jpg", quality=95, **extra)
        made[f"c/p{k}"] = open_upright(root / "c" / f"p{k}.jpg", "p")[0].shape
    Image.fromarray(arr).save(root / "c" / "q.png")
    (root / "d").mkdir()
    Image.fromarray(arr).save(root / "d" / "r.png")
    assert all(shape == (40, 24, 3) for shape in made.values())  # every one is meant to be seen portrait
    out = tmp_path / "out"
    assert main(["protect", "--data", str(root), *RANDOM, "--format", fmt, "--out", str(out)]) == 0
    capsys.readouterr()
    for stem in made:
        (written,) = [p for p in out.rglob(f"{Path(stem).name}.*")]
        data = written.read_bytes()
        with Image.open(written) as img:
            orientation = (exif_of(img) or {}).get(0x0112)
            xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
            assert orientation in (None, 1) and b"Orientation" not in (
                xmp if isinstance(xmp, bytes) else xmp.encode()
            ), (stem, orientation, xmp)
        assert decode_image(data, written.name).shape == (40, 24, 3), stem  # upright, read by the tool
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    frames = [Image.fromarray(arr), Image.fromarray(255 - arr)]
    frames[0].save(root / "d" / "pages.tiff", save_all=True, append_images=frames[1:])
    for extra, target in (([], "o2"), (["--image-size", "16"], "o3")):  # a folder of photos, a set
        assert main(["protect", "--data", str(root), *RANDOM, *extra, "--out", str(tmp_path / target)]) == 2
        err = one_line_error(capsys)
        assert "pages.tiff holds 2 frames" in err, err
    (root / "d" / "pages.tiff").unlink()
    frames[0].save(root / "d" / "moving.gif", save_all=True, append_images=frames[1:])
    assert main(["protect", "--data", str(root), *RANDOM, "--image-size", "16", "--out", str(tmp_path / "o3")]) == 2
    assert "moving.gif holds 2 frames" in one_line_error(capsys)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


# --------------------------------------------------------------------------- rule 11


@pytest.fixture()
def no_hang():
    """Fail (instead of waiting forever) when a command reads something that never ends."""
    import signal

    def stuck(*_):
        raise TimeoutError("the command waited on an input instead of refusing it")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_rule11_inputs_that_are_not_regular_files_are_refused_never_waited_on(world, tmp_path, capsys, no_hang):
    photos = world["photos"]
    fifo = photos / "train" / "cat" / "x.png"
    os.mkfifo(fifo)
    broken = tmp_path / "flat"
    png(broken / "cat" / "a.png", 1)
    png(broken / "dog" / "b.png", 2)
    (broken / "dog" / "gone.png").symlink_to(broken / "dog" / "nothing.png")
    os.mkfifo(tmp_path / "pipe.tar.gz")
    os.mkfifo(tmp_path / "labels.csv")
    before = snapshot(world)
    cases = [
        (["protect", "--data", str(photos / "train"), *RANDOM, "--out", str(tmp_path / "o1")], "x.png is a named pipe"),
        (
            ["protect", "--data", str(photos), *RANDOM, "--image-size", "16", "--out", str(tmp_path / "o2")],
            "named pipe",
        ),
        (["protect", "--data", str(broken), *RANDOM, "--out", str(tmp_path / "o3")], "broken symbolic link"),
        (["protect", "--data", str(tmp_path / "pipe.tar.gz"), *RANDOM, "--out", str(tmp_path / "o4")], "named pipe"),
        (
            ["protect", "--data", str(broken / "cat"), *RANDOM, "--labels", str(tmp_path / "labels.csv")]
            + ["--out", str(tmp_path / "o5")],
            "labels.csv is a named pipe",
        ),
        (["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL], "named pipe"),
    ]
    for argv, expect in cases:
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert expect in err and "only regular files are read" in err, err
    assert snapshot(world) == before and not list(tmp_path.glob("o*"))
    from unlearnable.protect import photo_plan

    with pytest.raises(ValueError, match="named pipe"):  # what the page's plan calls
        photo_plan(photos / "train")


# --------------------------------------------------------------------------- rule 12


def test_rule12_sizes_names_and_options_are_checked_before_any_work(world, tmp_path, monkeypatch, capsys):
    """A size this computer cannot hold, a seed no generator takes, a run's own option given as a
    method option, an output name the disk refuses: one line, before the fit (which would fail)."""
    from unlearnable import protect as protect_module
    from unlearnable.attacks import em as em_module

    monkeypatch.setattr(em_module, "sgd_step", None)  # any fit that starts fails loudly
    monkeypatch.setattr(protect_module, "fit", None)
    photos, out = world["photos"], tmp_path / "o"
    prot = ["protect", "--data", str(photos / "train"), *EM_TINY, "--out", str(out)]
    cases = [
        ([*prot, "--image-size", "100000"], "--image-size 100000 needs at least"),
        ([*prot, "--working-size", "100000"], "--working-size 100000 needs at least"),
        (["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL, "--input-size", "100000"], "GB"),
        ([*prot, "--set", "eps=0.1"], "set it with --eps"),
        ([*prot, "--set", "seed=3"], "--seed"),
        ([*prot, "--set", "checkpoint=x.pt"], "not a method option"),
        ([*prot, "--set", "progress=false"], "--quiet"),
        ([*prot, "--set", "step_size=.inf"], "finite"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert message in err, (argv, err)
    for seed in (str(2**70), "-1"):
        with pytest.raises(SystemExit) as e:
            main([*prot, "--seed", seed])
        assert e.value.code == 2 and "2**63" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--train", str(photos), "--data", str(photos), *FAST_EVAL, "--lr", "inf"])
    assert "finite" in capsys.readouterr().err
    long = tmp_path / "long"
    png(long / "cat" / ("a" * 248 + ".jpg"), 1)  # beside a.png it is written a...a.jpg.png: 256 bytes
    png(long / "cat" / ("a" * 248 + ".png"), 2)
    png(long / "dog" / "b.png", 3)
    for extra in ([], ["--image-size", "16"]):
        assert main(["protect", "--data", str(long), *EM_TINY, *extra, "--out", str(out)]) == 2
        err = one_line_error(capsys)
        assert "over the 255" in err and "a" * 30 in err, err
    assert not out.exists() and not (tmp_path / ".o.checkpoint.pt").exists()
    monkeypatch.undo()
    three = tmp_path / "three"  # x.png, x.jpg and x.jpg.png in one class: three outputs
    for i, name in enumerate(("x.png", "x.jpg", "x.jpg.png")):
        png(three / "cat" / name, i)
    png(three / "dog" / "y.png", 9)
    for fmt in ("png", "same"):
        target = tmp_path / f"three-{fmt}"
        assert main(["protect", "--data", str(three), *RANDOM, "--format", fmt, "--out", str(target)]) == 0
        m = json.loads((target / "manifest.json").read_text())
        assert sorted(m["sources"].values()) == ["cat/x.jpg", "cat/x.jpg.png", "cat/x.png", "dog/y.png"]
        assert len({n.casefold() for n in m["files"]}) == 4 and main(["verify", str(target)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "config, message",
    [
        ("- datasets: []", "is a mapping"),
        ("name: /abs/path\n{rest}", "cannot name a folder"),
        ("name: ../../x\n{rest}", "cannot name a folder"),
        ("{rest}\nextra: 1", "unknown key(s) ['extra']"),
        ("{rest}\nseeds: [1180591620717411303424]", "2**63"),
        ("datasets: [a]\nmethods: {{random: {{}}}}\nvictims: [{{name: s, init: scratch}}]", "is a mapping"),
        ("datasets: {{a: 1}}\nmethods: {{random: {{}}}}\nvictims: [{{name: s, init: scratch}}]", "must be a list"),
        ("{data}\nmethods: {{random: 3}}\nvictims: [{{name: s, init: scratch}}]", "options must be a mapping"),
        ("{data}\nmethods: {{random: {{}}}}\nvictims: [{{name: s, init: scratch, lr: .inf}}]", "finite"),
    ],
)
def test_rule12_bench_configs_are_checked_entry_by_entry(world, tmp_path, capsys, config, message):
    data = f"datasets: [{{name: d, source: {world['photos']}}}]"
    rest = f"{data}\nmethods: {{random: {{}}}}\nvictims: [{{name: s, init: scratch}}]"
    cfg = tmp_path / "b.yaml"
    cfg.write_text(config.format(rest=rest, data=data))
    assert main(["bench", str(cfg), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert message in err and str(cfg) in err, err
    assert not (world["cwd"] / "runs").exists() and not (tmp_path / "x").exists()


def test_rule12_the_smaller_ones_each_one_line_before_any_work(world, tmp_path, monkeypatch, capsys, make_image_folder):
    import warnings

    photos, root = world["photos"], world["root"]
    prot = ["protect", "--data", str(photos / "train"), *RANDOM]
    (root / "afile").write_text("x")
    cases = [
        ([*prot, "--labels", "clusters:²", "--out", str(root / "o")], "clusters:K needs a whole number"),
        ([*prot, "--out", str(root / "afile" / "sub")], "is a file, not a folder"),
        ([*prot, "--out", "/proc/unlearnable-x"], "no folder can be made in /proc"),
        (
            ["evaluate", "--train", str(root / "r"), "--data", str(photos), *FAST_EVAL, "--protected-classes", ",,"],
            "names no class",
        ),
    ]
    assert main([*RANDOM[:0], "protect", "--data", str(photos), *RANDOM, "--out", str(root / "r")]) == 0
    capsys.readouterr()
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert message in err, (argv, err)
    # an empty class folder: refused on the photo path as on the set path
    (photos / "train" / "bird").mkdir()
    for extra in ([], ["--image-size", "16"]):
        assert main([*prot, *extra, "--out", str(root / "o")]) == 2
        assert "bird holds no" in one_line_error(capsys)
    (photos / "train" / "bird").rmdir()
    # a damaged EXIF block: read as none, no raw warning from the image library
    damaged = root / "damaged"
    for c in ("cat", "dog"):
        (damaged / c).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 90 if c == "cat" else 160, np.uint8)).save(
            damaged / c / "a.jpg",
            exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["protect", "--data", str(damaged), *RANDOM, "--out", str(root / "d-out")]) == 0
    assert "Corrupt" not in capsys.readouterr().err
    # verify reads only: not even the decoded-dataset cache is written
    cache = Path(os.environ["UNLEARNABLE_CACHE"])
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    assert main(["verify", str(root / "r")]) == 0
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
    # check with --data that is the training originals: said, not called held out
    ph = root / "ph"
    assert main(["protect", "--data", str(photos / "train"), *RANDOM, "--out", str(ph)]) == 0
    capsys.readouterr()
    shutil.copytree(photos / "train", root / "same" / "test")  # its test split: the very originals
    assert (
        main(
            [
                "check",
                str(ph),
                "--data",
                str(root / "same"),
                "--quiet",
                "--init",
                "scratch",
                "--epochs",
                "1",
                "--out",
                str(root / "c"),
            ]
        )
        == 0
    )
    report = json.loads((root / "c" / "report.json").read_text())
    assert any("not held out" in n for n in report["notes"]), report["notes"]
