"""torchrun with 2 CPU processes (gloo): evaluate matches one process, only rank 0 writes, and
checkpoints resume across world sizes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from unlearnable.data import load_dataset
from unlearnable.models import create_model
from unlearnable.training import TrainConfig, train_classifier


@pytest.fixture()
def learnable_folder(tmp_path, make_image_folder):
    """2 classes that differ in colour (learnable in an epoch or two), 48 + 12 images each."""
    return make_image_folder(tmp_path / "images", {"red": (90, 0, 0), "blue": (0, 0, 90)}, {"train": 48, "test": 12})


def torchrun(args, cwd, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARNABLE_CACHE": os.environ["UNLEARNABLE_CACHE"]}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


EVAL = ["--init", "scratch", "--epochs", "3", "--batch-size", "16", "--quiet", "--device", "cpu"]


def test_evaluate_under_torchrun_matches_one_process(learnable_folder, tmp_path):
    from unlearnable.cli import main

    one = tmp_path / "one"
    assert (
        main(["evaluate", "--train", str(learnable_folder), "--data", str(learnable_folder), "--out", str(one), *EVAL])
        == 0
    )
    two = tmp_path / "runs" / "two"
    r = torchrun(
        [
            "-m",
            "unlearnable",
            "evaluate",
            "--train",
            str(learnable_folder),
            "--data",
            str(learnable_folder),
            "--out",
            str(two),
            *EVAL,
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("final test") == 1  # rank 0 alone reports
    assert sorted(p.name for p in two.parent.iterdir()) == ["two"]  # rank 0 alone writes; no partial folders
    a, b = (json.loads((d / "record.json").read_text()) for d in (one, two))
    assert len(b["history"]) == 3 and b["n_train"] == a["n_train"] == 96 and b["n_test"] == 24
    assert abs(a["final_test_acc"] - b["final_test_acc"]) <= 0.25  # a different batch split, same task
    assert b["final_test_acc"] >= 0.75 and a["final_test_acc"] >= 0.75


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, torch
    from unlearnable.data import load_dataset
    from unlearnable.distributed import init_from_env, shutdown
    from unlearnable.models import create_model
    from unlearnable.training import TrainConfig, train_classifier
    init_from_env("cpu")
    torch.manual_seed(0)
    folder, ckpt, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ds = load_dataset(folder, "train")
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05)
    import unlearnable.training as t
    real_mode, starts = t.set_train_mode, {"n": 0}
    def set_train_mode(*a, **k):  # every process stops as epoch `epochs` + 1 begins, checkpoint written
        starts["n"] += 1
        if starts["n"] > epochs:
            if torch.distributed.is_initialized():
                torch.distributed.barrier()
            raise SystemExit(0)
        return real_mode(*a, **k)
    t.set_train_mode = set_train_mode
    try:
        train_classifier(create_model("small_cnn", 2), ds, cfg, seed=0, device=torch.device("cpu"), progress=False,
                         checkpoint=ckpt)
    finally:
        shutdown()
""")


def test_checkpoints_resume_across_world_sizes(learnable_folder, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    ds = load_dataset(learnable_folder, "train")
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05)
    # two processes stop after epoch 1; one process resumes and finishes
    ckpt = tmp_path / "a.pt"
    r = torchrun([str(script), str(learnable_folder), str(ckpt), "1"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    first = torch.load(ckpt, weights_only=True)["history"]
    res = train_classifier(
        create_model("small_cnn", 2), ds, cfg, seed=0, device=torch.device("cpu"), progress=False, checkpoint=ckpt
    )
    assert len(res["history"]) == 3 and res["history"][0] == first[0]
    # one process stops after epoch 1 (same script, no torchrun); two processes resume and finish
    ckpt = tmp_path / "b.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(script), str(learnable_folder), str(ckpt), "1"], check=True, env=env, timeout=120
    )
    first = torch.load(ckpt, weights_only=True)["history"]
    r = torchrun([str(script), str(learnable_folder), str(ckpt), "99"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    done = torch.load(ckpt, weights_only=True)
    assert done["epoch"] == 3 and done["history"][0] == first[0] and done["history"][2]["train_acc"] > 0.7


FIT_SCRIPT = textwrap.dedent("""
    import sys, torch
    from unlearnable.attacks import create_attack
    from unlearnable.data import load_dataset
    from unlearnable.distributed import init_from_env, rank_and_world, shutdown
    init_from_env("cpu")
    folder, out, stop = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ds = load_dataset(folder, "train")
    tiny = {"surrogate": "small_cnn", "surrogate_init": "scratch", "batch_size": 16}
    methods = {
        "bait": dict(tiny, stages=[2, 2, 2]),
        "bait-generator": dict(tiny, stages=[1, 1, 1], parameterization="generator", generator_width=0.125),
        "em": dict(surrogate="small_cnn", batch_size=16, max_rounds=2, train_steps=2),
        "em-sw": dict(surrogate="small_cnn", batch_size=16, max_rounds=2, train_steps=2, kind="samplewise",
                      attack_steps=2),
        "tap": dict(surrogate="small_cnn", surrogate_epochs=1, surrogate_batch_size=16, steps=2, batch_size=16),
        "rem": dict(surrogate="small_cnn", train_steps=2, batch_size=16, steps=1, eot=1, adv_steps=1),
    }
    def dies_in_round_stop(attack, state):  # every process stops in round `stop`: rounds before it saved
        if state.round == stop - 1:
            if torch.distributed.is_initialized():
                torch.distributed.barrier()
            raise SystemExit(0)
    if stop:  # the BAIT resume check
        methods = {"bait": methods["bait"]}
    rank, world = rank_and_world()
    try:
        for name, opts in methods.items():
            method = name.split("-")[0]
            attack = create_attack(method, device="cpu", progress=False, checkpoint=f"{out}-{name}.ckpt", **opts)
            if stop:
                attack.on_round.append(dies_in_round_stop)
            p = attack.fit(ds)
            torch.save(p.delta, f"{out}-{name}-rank{rank}of{world}.pt")
    finally:
        shutdown()
""")


def test_protect_under_torchrun_keeps_every_process_identical(learnable_folder, tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    r = torchrun([str(script), str(learnable_folder), str(tmp_path / "d"), "0"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("bait", "bait-generator", "em", "em-sw", "tap", "rem"):
        a, b = (torch.load(tmp_path / f"d-{name}-rank{k}of2.pt", weights_only=True) for k in (0, 1))
        assert torch.equal(a, b), name  # the perturbation is the same in every process
        assert a.abs().max() > 0 and a.abs().max() <= 8 / 255 + 1e-6
        assert a.shape[0] == (2 if name in ("bait", "bait-generator", "em") else 96)


def test_protect_checkpoints_resume_across_world_sizes(learnable_folder, tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 1 process stops in outer epoch 3 of 6; 2 processes resume and finish
    subprocess.run(
        [sys.executable, str(script), str(learnable_folder), str(tmp_path / "a"), "3"], check=True, env=env, timeout=120
    )
    assert torch.load(tmp_path / "a-bait.ckpt", weights_only=True)["round"] == 2
    r = torchrun([str(script), str(learnable_folder), str(tmp_path / "a"), "0"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = torch.load(tmp_path / "a-bait-rank0of2.pt", weights_only=True)
    assert resumed.abs().max() > 0
    assert torch.load(tmp_path / "a-bait.ckpt", weights_only=True)["round"] == 6  # finished; kept for the pipeline
    # 2 processes stop in outer epoch 3; 1 process resumes and finishes
    r = torchrun([str(script), str(learnable_folder), str(tmp_path / "b"), "3"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    state = torch.load(tmp_path / "b-bait.ckpt", weights_only=True)
    assert state["round"] == 2 and len(state["history"]) == 2
    subprocess.run(
        [sys.executable, str(script), str(learnable_folder), str(tmp_path / "b"), "0"], check=True, env=env, timeout=120
    )
    assert torch.load(tmp_path / "b-bait.ckpt", weights_only=True)["round"] == 6
    assert torch.load(tmp_path / "b-bait-rank0of1.pt", weights_only=True).abs().max() > 0


def test_protect_command_under_torchrun_writes_once(learnable_folder, tmp_path):
    out = tmp_path / "runs" / "prot"
    r = torchrun(
        [
            "-m",
            "unlearnable",
            "protect",
            "--data",
            str(learnable_folder),
            "--method",
            "em",
            "--set",
            "surrogate=small_cnn",
            "--set",
            "max_rounds=2",
            "--set",
            "batch_size=16",
            "--out",
            str(out),
            "--quiet",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("protected 96 images") == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["prot"]
    assert len([p for p in out.rglob("*.png") if p.name != "preview.png"]) == 96


def test_bench_under_torchrun_and_as_two_task_jobs(learnable_folder, tmp_path, monkeypatch):
    """Under torchrun every cell trains a DDP group; as jobs of 2 tasks each (the SLURM launcher's
    multi-process cells, run by submitit's local executor) the same group gives the same table."""
    import yaml

    from unlearnable import bench
    from unlearnable.launch import Launcher

    cfg = {
        "name": "tiny",
        "datasets": [{"name": "toy", "source": str(learnable_folder)}],
        "methods": {"clean": {}, "random": {}},
        "victims": [{"name": "scratch", "init": "scratch", "epochs": 2, "batch_size": 16}],
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    args = ["-m", "unlearnable", "bench", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "b"), "--quiet"]
    r = torchrun([*args, "--device", "cpu"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (tmp_path / "b" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["final_test_acc"] >= 0.75 for x in lines)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as torchrun() runs its processes
    launcher = Launcher(cluster="local", tasks_per_cell=2, poll_s=0.2)
    bench.run_bench(tmp_path / "tiny.yaml", tmp_path / "jobs", device="cpu", progress=False, launcher=launcher)
    assert (tmp_path / "jobs" / "table.md").read_text() == (tmp_path / "b" / "table.md").read_text()
    assert len(list((tmp_path / "jobs" / "jobs").glob("*/*_1_result.pkl"))) == 3  # a second task in each job


def test_a_run_takes_no_more_threads_than_the_cores_others_leave_free(monkeypatch):
    """Beside a program that keeps every core busy a run takes one thread, on idle cores what it was
    given; it never takes more than it was given, and OMP_NUM_THREADS or torchrun decide alone."""
    import unlearnable.distributed as d

    cores = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    try:
        torch.set_num_threads(max(2, cores))
        monkeypatch.setattr(d, "busy_cores", lambda seconds=0.25: float(cores))
        assert d.free_threads() == 1
        monkeypatch.setattr(d, "busy_cores", lambda seconds=0.25: 0.0)
        assert d.free_threads() == min(max(2, cores), cores)  # idle: all it was given, up to the cores
        monkeypatch.setattr(d, "busy_cores", lambda seconds=0.25: None)  # no /proc/stat: as given
        assert d.free_threads() == max(2, cores)
        monkeypatch.setattr(d, "busy_cores", lambda seconds=0.25: float(cores))
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert d.free_threads() == max(2, cores)
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert d.share_cores() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    busy = d.busy_cores(0.1)  # the real measure: a share of the cores, as a number of cores
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6
