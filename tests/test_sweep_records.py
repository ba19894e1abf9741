"""Record-file mode (a sweep without a tracking server): a task that runs in its own process logs
into the same run folder as its parent job, so its per-epoch curves (with their steps), run-time
params and files -- written to `ctx.artifact_path` or logged with `ctx.log_artifact` -- reach MLflow
when the driver records the folder: nothing the child logs is lost. The sweep runs a toy task
through submitit's in-process debug executor; the child is a real spawned process."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import tasks

    tasks.TASKS.names()  # the built-in tasks first
    import tests.sweep_toy_tasks as toy

    yield toy
    tasks.TASKS._entries.pop(toy.NAME, None)
    tasks._BOUND.pop(toy.NAME, None)
    sys.modules.pop("tests.sweep_toy_tasks", None)


def test_child_process_curves_params_and_files_reach_mlflow_through_the_driver(toy, capsys):
    pytest.importorskip("submitit")
    import os

    from bench.store import read_records
    from bench.tracking import open_client
    from runners.sweep.driver import run_sweep
    from runners.sweep.records import HISTORY
    from runners.sweep.slurm import SlurmOptions
    from runners.sweep.spec import SweepSpec

    spec = SweepSpec(encoders=["vit-tiny"], tasks=[toy.NAME], seeds=[0], synth_preset="tiny", threads=1)
    outcome = run_sweep(spec, executor="debug", slurm=SlurmOptions())
    assert outcome.failed == [] and outcome.recorded == 1
    # the child wrote its curve into the job's run folder (no MLflow in the job)
    (run_dir,) = [p.parent.parent for p in outcome.folder.glob("jobs/*/records/*/artifacts/result.json")]
    curve = [line for line in (run_dir / HISTORY).read_text().splitlines() if '"toy_' in line]
    assert len(curve) == 2 * toy.EPOCHS

    (rec,) = [r for r in read_records(kinds=("task",)) if r.task == toy.NAME]
    client = open_client()
    loss = client.get_metric_history(rec.run_id, "toy_loss")
    assert sorted((m.step, m.value) for m in loss) == [(e, 1.0 / (e + 1)) for e in range(toy.EPOCHS)]
    assert [m.value for m in sorted(client.get_metric_history(rec.run_id, "toy_success"), key=lambda m: m.step)] \
        == [25.0 * e for e in range(toy.EPOCHS)]
    run = client.get_run(rec.run_id)
    assert int(run.data.params["child_pid"]) != os.getpid()  # logged by the task's own process
    assert run.data.metrics["success"] == 25.0 * (toy.EPOCHS - 1)  # the result: the record's, logged once
    top = {a.path for a in client.list_artifacts(rec.run_id)}
    assert {"toy_curve.txt", "videos", "result.json"} <= top
    assert [a.path for a in client.list_artifacts(rec.run_id, "videos")] == ["videos/toy_episode.gif"]
    # a rerun records nothing twice
    again = run_sweep(spec, executor="debug", slurm=SlurmOptions())
    assert again.recorded == 0 and len([r for r in read_records(kinds=("task",), all_runs=True)
                                        if r.task == toy.NAME]) == 1
