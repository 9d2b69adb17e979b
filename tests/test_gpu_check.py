"""bench/gpu-check.sh in its dry mode: every step runs on the CPU at tiny sizes and the table
comes out, so the script is known to work before a GPU is lent."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_mode_runs_every_step_and_prints_the_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARNABLE_CACHE": str(tmp_path / "cache")}
    env.pop("UNLEARNABLE_DATA", None)
    cmd = ["bash", str(ROOT / "bench" / "gpu-check.sh"), "--dry", "--work", str(tmp_path / "work")]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = p.stdout[p.stdout.index("### gpu-check: CPU") :]
    rows = re.findall(r"^\| (?!step |---)(.+?) \| (.+) \| (\d+) \|$", table, re.M)
    assert [r[0] for r in rows] == [
        "CUDA-only tests",
        "victim training, compile off",
        "victim training, compile on",
        "attack epochs (bf16, channels_last on CUDA)",
        "BAIT `paper` (generator, Lite0 surrogate), whole training set",
        "victim on clean",
        "victim on BAIT",
    ]
    results = dict((r[0], r[1]) for r in rows)
    assert "skipped" in results["CUDA-only tests"]  # collected and skipped here: no GPU
    assert "img/s" in results["victim training, compile off"]
    assert "bait outer epoch" in results["attack epochs (bf16, channels_last on CUDA)"]
    assert "verify passed" in results["BAIT `paper` (generator, Lite0 surrogate), whole training set"]
    assert results["victim on BAIT"].startswith("final ")
    assert "7 of 7 steps passed" in table
    assert not any(p.name != "work" for p in tmp_path.iterdir() if p.name != "cache")  # wrote only where told
