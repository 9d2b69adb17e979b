"""Bench grids on a cluster: every protection and every cell of a grid is one submitit job.

    unlearnable bench configs/paper-cifar10.yaml --launcher slurm --slurm-partition gpu \\
        --slurm-gpus-per-cell 1 --slurm-time 240

The process that runs `bench` stays on the login node: it submits one job per missing protected
set (a dataset, method and seed, shared by every victim and defense), waits for them, then one
job per missing cell, and appends each finished cell's record to the results folder's
results.jsonl, the same file and the same records a local run writes, so the table is the same
and a grid may be started locally and finished on the cluster or the other way round. A job
writes only inside the results folder: the protected set it was given, its cell's checkpoint,
and its record under `jobs/records/` (written atomically, read back by the bench process: a cell
that finished while that process was gone is not trained again). A job that SLURM stops at its
time limit or preempts is requeued and resumes from its cell's last epoch checkpoint.

A cell with `--slurm-gpus-per-cell N` (N > 1; on CPU nodes `--slurm-tasks-per-cell N`) is one job
of N tasks on one node: each task is one process of the torch.distributed group, with the
variables torchrun sets (submitit's TorchDistributedEnvironment), and the cell trains with
DistributedDataParallel as under torchrun. `--launcher local` runs the same jobs as processes of
this machine (submitit's local executor, all started at once): the SLURM path without a
cluster, for checking a setup.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench import Cell, Grid, protection_row

LAUNCHERS = ("slurm", "local")


@dataclass(frozen=True)
class Launcher:
    """Where the jobs go and what each one asks SLURM for (the local executor takes only the
    tasks, GPUs and time limit)."""

    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = 240
    gpus_per_cell: int = 0
    tasks_per_cell: int | None = None  # processes of one cell's DDP group; default: one per GPU, or 1
    cpus_per_cell: int | None = None
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_parallel: int = 64
    extra: dict = field(default_factory=dict)  # any other sbatch option: {"exclude": "node12"}
    poll_s: float = 5.0

    def __post_init__(self):
        if self.cluster not in LAUNCHERS:
            raise ValueError(f"--launcher {self.cluster!r}: use one of {', '.join(LAUNCHERS)}")
        for name in ("time_min", "max_parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"--slurm-{name.replace('_min', '').replace('_', '-')}: must be at least 1")
        if self.gpus_per_cell < 0:
            raise ValueError("--slurm-gpus-per-cell: must be 0 or more")
        for name in ("cpus_per_cell", "tasks_per_cell", "mem_gb"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--slurm-{name.replace('_', '-')}: must be at least 1")
        if self.tasks_per_cell and self.gpus_per_cell and self.tasks_per_cell != self.gpus_per_cell:
            raise ValueError("--slurm-tasks-per-cell: with GPUs, a cell runs one task per GPU; leave it out")
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ValueError(f"--launcher {self.cluster} needs submitit: pip install 'unlearnable[cluster]'") from None
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError(
                "--launcher slurm: sbatch is not on PATH; run the bench on a SLURM login node, "
                "or use --launcher local to try the jobs on this machine"
            )

    def executor(self, folder: Path, name: str):
        import submitit

        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=self.cluster)
        tasks = self.tasks_per_cell or max(1, self.gpus_per_cell)
        params: dict = {
            "name": name,
            "timeout_min": self.time_min,
            "nodes": 1,
            "tasks_per_node": tasks,
            "gpus_per_node": self.gpus_per_cell,
        }
        if self.cluster == "slurm":
            params["slurm_array_parallelism"] = self.max_parallel
            if self.cpus_per_cell:
                params["cpus_per_task"] = max(1, self.cpus_per_cell // tasks)
            if self.mem_gb:
                params["mem_gb"] = self.mem_gb
            for key in ("partition", "account", "qos", "constraint"):
                if getattr(self, key):
                    params[f"slurm_{key}"] = getattr(self, key)
            if self.extra:
                params["slurm_additional_parameters"] = dict(self.extra)
        ex.update_parameters(**params)
        return ex

    def run(self, grid: Grid, todo: list[Cell], done: dict) -> None:
        """Protections first (each shared by several cells), then the cells; records as they finish."""
        from .io import read_json

        jobs_dir = grid.out / "jobs"
        inbox = jobs_dir / "records"
        inbox.mkdir(parents=True, exist_ok=True)

        def take(cell: Cell, rec: dict) -> None:  # into results.jsonl, then out of the inbox
            grid.record(cell, rec)
            done[cell.key] = rec
            (inbox / f"{cell.slug}.json").unlink(missing_ok=True)

        for cell in list(todo):  # finished by a job while no bench process was collecting
            if (inbox / f"{cell.slug}.json").exists():
                take(cell, read_json(inbox / f"{cell.slug}.json"))
                todo.remove(cell)
        name = grid.cfg["name"]
        rows = sorted({(c.dataset, protection_row(grid.cfg, c.method), c.seed) for c in todo if c.method != "clean"})
        rows = [r for r in rows if not grid.protection_folder(*r).joinpath("manifest.json").exists()]
        if rows:
            ex = self.executor(jobs_dir, f"{name}-protect")
            jobs = ex.map_array(_Job(), ["protect"] * len(rows), [grid] * len(rows), rows)
            print(f"bench {name}: {len(jobs)} protection job(s) submitted ({self.cluster}), logs in {jobs_dir}")
            self._wait(jobs, [f"protection {d}/{m}/seed{s}" for d, m, s in rows], lambda i, r: None)
        if todo:
            ex = self.executor(jobs_dir, f"{name}-cell")
            jobs = ex.map_array(_Job(), ["cell"] * len(todo), [grid] * len(todo), todo)
            print(f"bench {name}: {len(jobs)} cell job(s) submitted ({self.cluster}), logs in {jobs_dir}")
            self._wait(jobs, [c.key for c in todo], lambda i, rec: take(todo[i], rec))

    def _wait(self, jobs: list, names: list[str], on_result) -> None:
        """Every job to its end, results handed on as they come; then one error for all that failed."""
        pending = dict(enumerate(jobs))
        failed: list[str] = []
        start = time.monotonic()
        while pending:
            for i, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[i]
                try:
                    on_result(i, job.results()[0])  # task 0: rank 0 of a multi-task job
                    status = "done"
                except Exception as e:  # the job's own error, raised here by submitit
                    last = [line for line in str(e).splitlines() if line.strip()]
                    failed.append(f"{names[i]} (job {job.job_id}, log {job.paths.stderr}): {last[-1] if last else e}")
                    status = "FAILED"
                n_done = len(jobs) - len(pending)
                eta = (time.monotonic() - start) / n_done * len(pending)
                print(f"  {names[i]}: {status} ({n_done}/{len(jobs)}, about {eta / 60:.0f} min left)", flush=True)
            if pending:
                time.sleep(self.poll_s)
        if failed:
            raise ValueError(f"{len(failed)} job(s) failed; the first: {failed[0]}; run the bench again to retry them")


class _Job:
    """What one job runs: a protection or a cell, in every task of the job (a torch.distributed
    group when there are several). Requeued at a time limit (submitit calls `checkpoint`); the
    work resumes from its checkpoint files, so the same call is all a requeue needs."""

    def __call__(self, what: str, grid: Grid, item):
        import submitit

        from .distributed import init_from_env, is_main, shutdown
        from .io import atomic_write_text

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            init_from_env(grid.device)
        try:
            if what == "protect":
                grid.protection(*item)
                return None
            rec = grid.run(item)
            if is_main():  # kept even if the bench process is gone: it reads these when it starts again
                atomic_write_text(grid.out / "jobs" / "records" / f"{item.slug}.json", json.dumps(rec))
            return rec
        finally:
            shutdown()

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
