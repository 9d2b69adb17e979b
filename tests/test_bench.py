"""The bench harness on a 2-cell grid: runs, reports, resumes after a kill, refuses bad configs."""

import json

import pytest
import yaml

from unlearnable import bench, evaluate
from unlearnable.cli import main


@pytest.fixture()
def config(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "images", ["ant", "bee"], {"train": 12, "test": 4})
    cfg = {
        "name": "tiny",
        "preset": "cpu",
        "seeds": [0],
        "datasets": [{"name": "toy", "source": str(root)}],
        "methods": {"clean": {}, "random-sw": {"method": "random", "kind": "samplewise"}},
        "victims": [{"name": "scratch", "init": "scratch", "epochs": 2, "batch_size": 8}],
        "defenses": {"none": {}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_bench_runs_and_reports(config, tmp_path):
    out = tmp_path / "out"
    assert main(["bench", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["cell"] for r in lines] == ["toy/clean/scratch/none/seed0", "toy/random-sw/scratch/none/seed0"]
    assert all(len(r["history"]) == 2 for r in lines)
    table = (out / "table.md").read_text()
    assert "| clean |" in table and "| random-sw |" in table
    assert (out / "results.csv").read_text().count("\n") == 3
    assert (out / "plots" / "bars__toy.png").exists()
    manifest = json.loads((out / "protected" / "toy" / "random-sw-seed0" / "manifest.json").read_text())
    assert manifest["settings"]["method"] == "random" and manifest["settings"]["kind"] == "samplewise"
    # a second run finds everything done and trains nothing
    assert main(["bench", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_bench_resumes_after_a_kill(config, tmp_path, monkeypatch, dies_on_call):
    full = tmp_path / "full"
    bench.run_bench(config, full, device="cpu", progress=False)
    killed = tmp_path / "killed"
    real = evaluate.run
    monkeypatch.setattr(evaluate, "run", dies_on_call(real, 2))  # dies in the second cell
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench(config, killed, device="cpu", progress=False)
    assert len((killed / "results.jsonl").read_text().splitlines()) == 1
    calls = []
    monkeypatch.setattr(evaluate, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    bench.run_bench(config, killed, device="cpu", progress=False)
    assert len(calls) == 1  # only the unfinished cell ran again
    assert (killed / "table.md").read_text() == (full / "table.md").read_text()


def test_a_second_bench_into_the_same_folder_is_refused(config, tmp_path):
    """Two benches writing one results folder would train the same cells twice and interleave
    their records: the second is refused while the first runs."""
    from unlearnable.outputs import run_lock

    out = tmp_path / "out"
    with run_lock(out), pytest.raises(ValueError, match="another unlearnable run is writing"):
        bench.run_bench(config, out, device="cpu", progress=False)
    assert not (out / "results.jsonl").exists()
    bench.run_bench(config, out, device="cpu", progress=False)  # the lock went with its holder
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_bench_refuses_to_resume_with_changed_settings(config, tmp_path):
    out = tmp_path / "out"
    bench.run_bench(config, out, device="cpu", progress=False)
    cfg = yaml.safe_load(config.read_text())
    reordered = tmp_path / "reordered.yaml"  # reordering and adding entries keeps finished cells
    reordered.write_text(yaml.safe_dump({**cfg, "methods": {"random-sw": cfg["methods"]["random-sw"], "clean": {}}}))
    bench.run_bench(reordered, out, device="cpu", progress=False)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**cfg, "victims": [{**cfg["victims"][0], "epochs": 3}]}))
    with pytest.raises(ValueError, match=r"victims\.scratch: .*'epochs': 2.* -> .*'epochs': 3"):
        bench.run_bench(changed, out, device="cpu", progress=False)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_a_defense_entry_may_name_its_defense(config, tmp_path):
    """One defense with two settings fills two columns."""
    cfg = yaml.safe_load(config.read_text())
    path = tmp_path / "two-projections.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **cfg,
                "methods": {"clean": {}},
                "defenses": {
                    "projection": {"epochs": 2},
                    "projection-test": {"defense": "projection", "epochs": 2, "project_test": True},
                },
            }
        )
    )
    records = bench.run_bench(path, tmp_path / "out", device="cpu", progress=False)["records"]
    assert [(r["defense_name"], r["defense"]["defense"], r["defense"]["project_test"]) for r in records] == [
        ("projection", "projection", False),
        ("projection-test", "projection", True),
    ]


def test_victims_choose_their_columns_seeds_and_recipe_preset(config, tmp_path):
    """A victim trains under the defenses it lists, once per victim seed (the protection stays
    the cell's), with its own recipe preset; the table averages the victim seeds; adding columns or
    seeds to a finished run keeps its cells."""
    cfg = yaml.safe_load(config.read_text())
    victim = {"name": "scratch", "init": "scratch", "epochs": 2, "batch_size": 8}
    cfg = {
        **cfg,
        "methods": {"clean": {}},
        "victims": [
            {**victim, "defenses": ["none"], "seeds": [0, 1]},
            {**victim, "name": "paper", "preset": "paper", "victim": "small_cnn", "defenses": ["grey"]},
        ],
        "defenses": {"none": {}, "grey": {"defense": "grayscale"}},
    }
    path = tmp_path / "columns.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    records = bench.run_bench(path, out, device="cpu", progress=False)["records"]
    assert [r["cell"] for r in records] == [
        "toy/clean/scratch/none/seed0/victim-seed0",
        "toy/clean/scratch/none/seed0/victim-seed1",
        "toy/clean/paper/grey/seed0",
    ]
    assert [r["victim_seed"] for r in records] == [0, 1, None]
    assert records[0]["history"] != records[1]["history"]  # two victim seeds, two trainings
    assert records[2]["config"]["schedule"] == "cosine"  # the paper recipe, not the cpu one
    table = (out / "table.md").read_text()
    assert "scratch final / best" in table and "paper + grey final / best" in table and "±" in table
    assert "scratch + grey" not in table
    more = {**cfg, "victims": [{**cfg["victims"][0], "seeds": [0, 1, 2]}, cfg["victims"][1]]}
    path.write_text(yaml.safe_dump(more))
    records = bench.run_bench(path, out, device="cpu", progress=False)["records"]
    assert len(records) == 4 and len((out / "results.jsonl").read_text().splitlines()) == 4
    rows = {**more, "methods": {"clean": {}, "random": {}}}  # a victim may train on some rows only
    rows["victims"] = [{**more["victims"][0], "methods": ["clean"]}, {**cfg["victims"][1], "name": "both"}]
    path.write_text(yaml.safe_dump(rows))
    picked = [c.key for c in bench.cells(bench.load_config(path))]
    assert [k for k in picked if "/random/" in k] == ["toy/random/both/grey/seed0"]
    assert len([k for k in picked if "/clean/scratch/" in k]) == 3
    for broken, message in [
        ({**cfg, "victims": [{**victim, "defenses": ["jpeg"]}]}, "defenses must be"),
        ({**cfg, "victims": [{**victim, "seeds": "0"}]}, "seeds must be"),
        ({**cfg, "victims": [{**victim, "methods": ["bait"]}]}, "methods must be"),
    ]:
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(ValueError, match=message):
            bench.load_config(path)


def test_bad_configs_fail_before_work(config, tmp_path):
    cfg = yaml.safe_load(config.read_text())
    for broken, message in [
        ({**cfg, "methods": {"nope": {}}}, "unknown method"),
        ({**cfg, "defenses": {"jpeg": {"qualty": 3}}}, "no option"),
        ({**cfg, "defenses": {"squeeze": {"defense": "nope"}}}, "unknown defense"),
        ({**cfg, "victims": [{"name": "v"}]}, "init"),
        ({**cfg, "victims": [{"name": "v", "init": "scratch", "epoch": 3}]}, "unknown key"),
        ({**cfg, "methods": {"b": {"method": "bait", "look": "pretty"}}}, "--look must be one of"),
        # the entries are typed and bounded like every option (options.check_options)
        ({**cfg, "victims": [{"name": "v", "init": "scratch", "lr": -1}]}, "victim 'v': option lr must be greater"),
        ({**cfg, "victims": [{"name": "v", "init": "scratch", "seeds": [-1]}]}, "option seeds must be at least 0"),
        ({**cfg, "victims": [{"name": "v", "init": "scratch", "protocol": "probe"}]}, "one of finetune, linear"),
        (
            {**cfg, "datasets": [{**cfg["datasets"][0], "train_per_class": {"*": 5, "a": 0}}]},
            "option train_per_class must be greater than 0",
        ),
        ({**cfg, "datasets": [{**cfg["datasets"][0], "image_size": 3.5}]}, "option image_size must be a whole"),
    ]:
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(ValueError, match=message):
            bench.load_config(path)
    assert main(["bench", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize(
    "name", ["cpu-mini", "cpu-defenses", "cpu-robust", "paper-cifar10", "cpu-looks", "cifar10-full"]
)
def test_repository_configs_are_valid(name):
    from pathlib import Path

    cfg = bench.load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert len(bench.cells(cfg)) >= (12 if name == "cpu-looks" else 30)


def test_the_local_job_launcher_gives_the_local_table(config, tmp_path):
    """Every protection and cell as a submitit job (the SLURM path, run by the local executor):
    the same records and table as the inline run, and a second run submits nothing."""
    pytest.importorskip("submitit")
    from unlearnable.launch import Launcher

    inline = tmp_path / "inline"
    bench.run_bench(config, inline, device="cpu", progress=False)
    jobs = tmp_path / "jobs"
    bench.run_bench(config, jobs, device="cpu", progress=False, launcher=Launcher(cluster="local", poll_s=0.2))
    assert (jobs / "table.md").read_text() == (inline / "table.md").read_text()
    ran = {json.loads(x)["cell"]: json.loads(x) for x in (jobs / "results.jsonl").read_text().splitlines()}
    ref = {json.loads(x)["cell"]: json.loads(x) for x in (inline / "results.jsonl").read_text().splitlines()}
    assert ran.keys() == ref.keys()
    for key, rec in ref.items():
        assert [h["test_acc"] for h in ran[key]["history"]] == [h["test_acc"] for h in rec["history"]]
    assert list((jobs / "jobs" / "records").iterdir()) == []  # every job's record collected
    assert len(list((jobs / "jobs").glob("*/*_submitted.pkl"))) == 3  # one protection, two cells
    # a record a job left while no bench process was collecting is taken, not trained again
    lines = (jobs / "results.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    (jobs / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    slug = last["cell"].replace("/", "__")
    (jobs / "jobs" / "records" / f"{slug}.json").write_text(json.dumps(last))
    bench.run_bench(config, jobs, device="cpu", progress=False, launcher=Launcher(cluster="local", poll_s=0.2))
    assert len(list((jobs / "jobs").glob("*/*_submitted.pkl"))) == 3
    assert (jobs / "table.md").read_text() == (inline / "table.md").read_text()


def test_launcher_options_fail_before_work(config, tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    monkeypatch.setattr("shutil.which", lambda name: None)
    out = tmp_path / "out"
    assert main(["bench", str(config), "--out", str(out), "--launcher", "slurm"]) != 0
    assert "sbatch is not on PATH" in capsys.readouterr().err
    assert main(["bench", str(config), "--out", str(out), "--launcher", "local", "--slurm-option", "exclude"]) != 0
    assert "--slurm-option 'exclude'" in capsys.readouterr().err
    assert main(["bench", str(config), "--out", str(out), "--launcher", "local", "--slurm-time", "0"]) != 0
    assert "--slurm-time" in capsys.readouterr().err
    assert not out.exists()


def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from unlearnable.launch import Launcher

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)  # as on a login node
    launcher = Launcher(
        partition="gpu",
        time_min=90,
        gpus_per_cell=2,
        cpus_per_cell=16,
        mem_gb=64,
        account="lab",
        extra={"exclude": "node12"},
    )
    ex = launcher.executor(tmp_path, "cpu-mini-cell")
    script = ex._executor._make_submission_file_text("python -m x", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --account=lab",
        "#SBATCH --exclude=node12",
        "#SBATCH --job-name=cpu-mini-cell",
    ):
        assert line in script, line
    assert "--signal=USR2@" in script  # warned before the time limit: the job requeues and resumes


def test_partly_protected_rows_share_one_fit_of_their_method():
    from unlearnable.bench import protection_row

    cfg = {
        "methods": {
            "clean": {},
            "bait-cat": {"method": "bait", "protected_classes": ["cat"]},
            "bait-dog": {"method": "bait", "protected_classes": ["dog"]},
            "bait-robust-dog": {"method": "bait", "preset": "robust", "protected_classes": ["dog"]},
            "em-25%": {"method": "em", "protected_fraction": 0.25},
        }
    }
    assert protection_row(cfg, "bait-dog") == "bait-cat" == protection_row(cfg, "bait-cat")
    assert protection_row(cfg, "bait-robust-dog") == "bait-robust-dog"  # other options: its own fit
    assert protection_row(cfg, "em-25%") == "em-25%"
    cfg["methods"]["bait"] = {}
    assert protection_row(cfg, "bait-dog") == "bait" == protection_row(cfg, "bait-cat")  # the whole row, when there


def test_a_subject_that_is_a_small_part_of_the_set_keeps_its_size_through_protect_and_verify(config, tmp_path):
    """train_per_class per class ({"*": N, class: n}): the victim and the protection read the same
    uneven subset, recorded in the manifest, and verify rebuilds it."""
    from unlearnable.data import balanced_subset, load_dataset

    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["train_per_class"] = {"*": 10, "ant": 3}
    cfg["methods"] = {"clean": {}, "random-ant": {"method": "random", "protected_classes": ["ant"]}}
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["bench", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["n_train"] for r in lines] == [13, 13]
    folder = out / "protected" / "toy" / "random-ant-seed0"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["train_per_class"] == {"*": 10, "ant": 3}
    assert sorted(load_dataset(folder, "train").class_counts().tolist()) == [3, 10]
    assert main(["verify", str(folder)]) == 0
    full = load_dataset(cfg["datasets"][0]["source"], "train")
    with pytest.raises(ValueError, match="'wasp' is not a class"):
        balanced_subset(full, {"*": 2, "wasp": 1})
    with pytest.raises(ValueError, match="names no number for 'bee'"):
        balanced_subset(full, {"ant": 2})
    with pytest.raises(ValueError, match="--train-per-class 13 but class 'ant' has only 12"):
        balanced_subset(full, {"*": 2, "ant": 13})
