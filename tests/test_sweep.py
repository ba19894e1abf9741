"""`bench sweep`: the local pool (2 workers), kill -9 of the driver and of a worker's job, resumption
with one record per identity, `bench sweep status`; the SLURM path without a cluster: the generated
sbatch file (array size, parallelism cap, resources, requeue signal) and the job function run
in-process by submitit's debug executor. Tiny synthetic preset; the +sb checkpoint is trained once
with a few-step recipe (tests.conftest.SB_FAST). Multi-node SpatialBoost training: its sbatch file
(nodes, a task per GPU, requeue signal, no array) and one job run by the debug executor through the
real trainer (stage 1), with the torchrun variables exported from the job environment."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SB_FAST, module_home

REPO = Path(__file__).resolve().parents[1]
ARGS = ["sweep", "--executor", "local", "--encoder", "vit-tiny,vit-tiny+sb", "--tasks", "synth-cls-knn,synth-retrieval",
        "--seeds", "0,1", "--jobs", "2", "--synth-preset", "tiny", "--threads", "1"]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    with module_home(tmp_path_factory, "sweep_home", BENCH_SYNTH_PRESET="tiny") as home:
        from bench.spatialboost.config import resolve_config
        from bench.spatialboost.train import train

        train(resolve_config(SB_FAST, encoder="vit-tiny", preset="tiny", progress=False))
        yield home


def _spec(**kw):
    from runners.sweep.spec import SweepSpec

    return SweepSpec(**{"encoders": ["vit-tiny", "vit-tiny+sb"], "tasks": ["synth-cls-knn", "synth-retrieval"],
                        "seeds": [0, 1], "synth_preset": "tiny", "threads": 1, **kw})


def _per_identity():
    from bench.store import read_records

    return Counter(r.identity_hash for r in read_records(kinds=("task",), all_runs=True))


def test_jobs_group_tasks_by_images_and_are_stable(shared_home):
    from runners.sweep.spec import data_group, plan_jobs

    jobs = plan_jobs(_spec())
    assert len(jobs) == 8 and [j.id for j in jobs] == [j.id for j in plan_jobs(_spec())]
    assert data_group("synth-cls-knn") == data_group("synth-cls-linear") != data_group("synth-retrieval")
    both = plan_jobs(_spec(tasks=["synth-cls-knn", "synth-cls-linear"]))
    assert all(j.tasks == ["synth-cls-knn", "synth-cls-linear"] for j in both)  # one job extracts once for both


def test_local_sweep_survives_kill_9_of_driver_and_worker(shared_home, capsys):
    from bench.cli import main
    from runners.sweep.driver import status
    from runners.sweep.job import DONE

    sweep = _spec().folder()
    env = {**os.environ, "BENCH_HOME": str(shared_home)}
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", *ARGS], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(sweep.glob(f"jobs/*/{DONE}")):
        assert driver.poll() is None and time.time() < deadline, "the sweep driver ended before any job finished"
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)  # kill -9: its workers die with it (PR_SET_PDEATHSIG)
    driver.wait()
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"runners.sweep.job {sweep}"], capture_output=True, text=True).stdout
    assert not leftovers.strip(), "a worker outlived its killed driver"
    done_before = {p.parent.name: p.stat().st_mtime for p in sweep.glob(f"jobs/*/{DONE}")}
    assert 1 <= len(done_before) < 8
    # a worker killed after writing its record but before marking the job done: the rerun reuses it
    victim = sorted(done_before)[0]
    (sweep / "jobs" / victim / DONE).unlink()

    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert f"({len(done_before) - 1} done already)" in out
    counts = _per_identity()
    assert len(counts) == 8 and set(counts.values()) == {1}  # 2 encoders x 2 tasks x 2 seeds, once each
    rerun = json.loads((sweep / "jobs" / victim / DONE).read_text())
    assert rerun["reused"] == 1 and rerun["records"]  # its identity was not recomputed
    for name, mtime in done_before.items():
        if name != victim:
            assert (sweep / "jobs" / name / DONE).stat().st_mtime == mtime  # finished jobs never rerun
    # a third run does nothing, records nothing
    assert main(ARGS) == 0 and "(8 done already)" in capsys.readouterr().out
    assert _per_identity() == counts
    st = status(sweep)
    assert st["counts"] == {"done": 8} and st["recorded"] == 8
    # the records carry per-item scores: the table shows intervals from them
    from bench.store import read_items, read_records

    rec = next(r for r in read_records(tasks=["synth-cls-knn"]))
    assert read_items(rec)["top1_k20"].values.shape[0] > 1


def test_slurm_submission_array_cap_resources_and_requeue(tmp_path):
    pytest.importorskip("submitit")
    from runners.sweep.job import SweepJob
    from runners.sweep.slurm import SlurmOptions, preview_executor, submission_text

    cfg = tmp_path / "slurm.yaml"
    cfg.write_text("partition: gpu\ngpus_per_node: 2\ncpus_per_task: 8\ntimeout_min: 90\nmax_requeue: 7\n")
    opts = SlurmOptions.from_yaml(cfg, array_parallelism=3, partition=None)
    text = submission_text(tmp_path, 8, opts)
    assert "#SBATCH --array=0-7%3" in text
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --gpus-per-node=2" in text
    assert "#SBATCH --cpus-per-task=8" in text and "#SBATCH --time=90" in text
    assert re.search(r"#SBATCH --signal=USR\d@120", text)  # the checkpoint signal that triggers the requeue
    assert "%A_%a" in text  # per-array-task logs
    executor = preview_executor(tmp_path, opts)
    assert executor.max_num_timeout == 7  # requeues on preemption / timeout
    again = SweepJob().checkpoint("/some/job")
    assert isinstance(again.function, SweepJob) and again.args == ("/some/job",)
    with pytest.raises(Exception, match="did you mean"):
        SlurmOptions.from_yaml(_write(tmp_path / "bad.yaml", "partiton: gpu\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_job_function_runs_through_submitits_debug_executor(shared_home, capsys):
    pytest.importorskip("submitit")
    from runners.sweep.driver import run_sweep
    from runners.sweep.spec import SweepSpec

    spec = SweepSpec(encoders=["vit-tiny"], tasks=["synth-cls-knn"], seeds=[5], synth_preset="tiny", threads=1)
    before = len(_per_identity())
    outcome = run_sweep(spec, executor="debug", slurm=__import__("runners.sweep.slurm", fromlist=["x"]).SlurmOptions())
    assert outcome.failed == [] and outcome.recorded == 1
    assert len(_per_identity()) == before + 1
    assert json.loads((outcome.folder / "slurm_jobs.json").read_text())  # submitit's job ids


def test_multinode_sb_training_submission_and_a_debug_job_through_the_trainer(tmp_path, capsys):
    pytest.importorskip("submitit")
    from runners.sweep.slurm import SBTrainJob, SlurmOptions, sb_train_submission_text, submit_sb_training

    opts = SlurmOptions(partition="gpu", gpus_per_node=8, timeout_min=1440, max_requeue=3)
    text = sb_train_submission_text(tmp_path, 2, opts)
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=8" in text  # one rank per GPU
    assert "#SBATCH --gpus-per-node=8" in text and "#SBATCH --partition=gpu" in text and "--array" not in text
    assert re.search(r"#SBATCH --signal=USR\d@120", text) and "srun" in text  # srun starts one task per rank
    again = SBTrainJob().checkpoint(["--stage", "3"])  # requeued: the trainer resumes from its stage files
    assert isinstance(again.function, SBTrainJob) and again.args == (["--stage", "3"],)

    argv = ["--encoder", "vit-tiny", "--preset", "tiny", "--stage", "1", "--no-progress", "--no-track",
            "--name", "vit-tiny+sb-job"] + [a for s in SB_FAST for a in ("--set", s)]
    before = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "LOCAL_RANK")}
    job = submit_sb_training(tmp_path / "sweeps" / "sb-train", argv, 1, SlurmOptions(), cluster="debug")
    assert job.result() == 0
    out = capsys.readouterr().out
    assert re.search(r"rank 0/1 \(local 0\) master \S+:\d+", out)  # the torchrun env, from the job environment
    ckpt = Path(os.environ["BENCH_HOME"]) / "checkpoints" / "vit-tiny+sb-job"
    assert (ckpt / "stage1.safetensors").stat().st_size > 0 and str(ckpt / "stage1.safetensors") in out
    assert json.loads((ckpt / "train_log.json").read_text())["world_size"] == 1
    assert {k: os.environ.get(k) for k in before} == before  # nothing leaks into this process
