"""On a CUDA GPU (skipped elsewhere; bench/gpu-check.sh runs them): the toolkit's GPU path trains,
protects within the budget, and compiles."""

import json

import pytest
import torch

from unlearnable.cli import main

pytestmark = pytest.mark.cuda


@pytest.fixture()
def folder(tmp_path, make_image_folder):
    return make_image_folder(tmp_path / "images", {"red": (90, 0, 0), "blue": (0, 0, 90)}, {"train": 32, "test": 8})


def evaluate(folder, out, *extra):
    args = ["evaluate", "--train", str(folder), "--data", str(folder), "--init", "scratch", "--epochs", "2"]
    assert main([*args, "--batch-size", "16", "--device", "cuda", "--quiet", "--out", str(out), *extra]) == 0
    return json.loads((out / "record.json").read_text())


def test_a_victim_learns_on_the_gpu_with_and_without_compile(folder, tmp_path):
    plain = evaluate(folder, tmp_path / "plain")
    assert plain["device"].startswith("cuda") and plain["final_test_acc"] >= 0.75
    compiled = evaluate(folder, tmp_path / "compiled", "--compile")
    assert compiled["config"]["compile"] is True and compiled["final_test_acc"] >= 0.75


def test_bait_on_the_gpu_stays_within_its_budget_after_export(folder, tmp_path):
    out = tmp_path / "bait"
    args = ["protect", "--data", str(folder), "--method", "bait", "--set", "stages=[1,1,1]", "--set", "batch_size=16"]
    assert main([*args, "--device", "cuda", "--quiet", "--out", str(out)]) == 0
    assert main(["verify", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["settings"]["method"] == "bait" and torch.cuda.max_memory_allocated() > 0
