"""Nothing lost, nothing silently wrong, on the run side: a failing task does not stop the others,
a NaN score is never published, a rerun never duplicates a finished identity, Ctrl-C / SIGTERM /
kill -9 leave no RUNNING run behind, and a damaged store is one clear error."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_contract import toys  # noqa: F401  (fixture)


def _quiet():
    return open(os.devnull, "w")


def test_a_failing_task_is_recorded_and_the_others_run(toys):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from runners.benchmark import RunConfig, run_benchmark

    out = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-broken", "toy-nan", "toy-width"],
                                  progress=False), out=_quiet())
    assert [r.task for r in out] == ["toy-width"]
    causes = {t: c for _, t, c in out.failures}
    assert set(causes) == {"toy-broken", "toy-nan"}
    assert "unreadable" in causes["toy-broken"] and "not finite" in causes["toy-nan"]
    client = MlflowClient(tracking_uri())
    failed = client.search_runs([client.get_experiment_by_name("spatialboost-bench").experiment_id],
                                filter_string="attributes.status = 'FAILED'")
    assert {r.data.params["task"]: r.data.tags["bench.error"] for r in failed}.keys() == {"toy-broken", "toy-nan"}
    from bench.store import read_records

    assert {r.task for r in read_records()} == {"toy-width"}  # the NaN never became a result


def test_cli_exit_status_counts_failures(toys, capsys):  # noqa: F811
    from bench.cli import main

    assert main(["run", "--encoder", "vit-tiny", "--tasks", "toy-broken,toy-width,toy-nan", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 task runs failed" in err and "toy-broken" in err


def test_a_rerun_reuses_finished_identities_and_force_recomputes(toys):  # noqa: F811
    from bench.store import read_records
    from runners.benchmark import RunConfig, run_benchmark

    first = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-width"], progress=False), out=_quiet())
    again = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-width"], progress=False), out=_quiet())
    assert again[0].run_id == first[0].run_id  # nothing recomputed
    other = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-width"], progress=False,
                                    task_config={"toy-width": {"scale": 3.0}}), out=_quiet())
    assert other[0].run_id != first[0].run_id  # another config is another identity
    forced = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-width"], progress=False, force=True),
                           out=_quiet())
    assert forced[0].run_id != first[0].run_id
    assert len(read_records(tasks=["toy-width"])) == 2  # one per identity: scale 1 (newest) and scale 3
    assert len(read_records(tasks=["toy-width"], all_runs=True)) == 3


def test_a_damaged_store_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BENCH_HOME", str(home))
    (home / "mlflow.db").write_bytes(b"SQLite format 3\x00" + os.urandom(2000))
    assert main(["results"]) == 2
    err = capsys.readouterr().err
    assert "cannot be opened" in err and f"mv {home / 'mlflow.db'}" in err and "Traceback" not in err


@pytest.mark.slow
def test_kill_during_first_store_setup_never_leaves_a_half_store(tmp_path):
    code = "from bench.tracking import open_client; open_client()"
    for i, delay in enumerate((0.4, 0.9, 1.4, 2.0)):
        env = {**os.environ, "BENCH_HOME": str(tmp_path / f"h{i}")}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        db = tmp_path / f"h{i}" / "mlflow.db"
        # either nothing was published, or a complete store: the next open works in both cases
        check = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, (delay, db.exists(), check.stderr[-2000:])
        assert db.exists()


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_first_starts_on_a_fresh_store(tmp_path, n):
    """n processes open a fresh store and log a run at the same moment: all succeed, no run is lost."""
    code = ("import sys\nfrom bench.tracking import Tracker\nt = Tracker()\n"
            "with t.run(f'proc {sys.argv[1]}', tags={'bench.kind': 'probe'}) as r:\n    r.log_metrics({'x': 1.0})\n")
    env = {**os.environ, "BENCH_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(n)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(outs)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    exps = [e for e in client.search_experiments() if e.name == "spatialboost-bench"]
    assert len(exps) == 1
    runs = client.search_runs([exps[0].experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f"proc {i}" for i in range(n))
    assert all(r.info.status == "FINISHED" for r in runs) and not (tmp_path / "mlruns").exists()


def _run_cli(env, *args, timeout=600):
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--encoder", "vit-tiny",
                             "--tasks", "imagenet-knn,imagenet-linear", "--no-progress", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_runs_resume_without_duplicates_or_zombies(tmp_path, sig):
    from mlflow.tracking import MlflowClient

    from tests.conftest import write_image_folder

    home = tmp_path / "home"
    env = {**os.environ, "BENCH_HOME": str(home),
           "BENCH_IMAGENET": str(write_image_folder(tmp_path / "imagenet", {"r": 8, "g": 8, "b": 8}))}
    env.pop("MLFLOW_TRACKING_URI", None)
    codes = []
    for delay in (6.0, 9.0, 12.0):  # inside extraction, the kNN run, the linear bank (2-core machine)
        proc = _run_cli(env)
        time.sleep(delay)
        proc.send_signal(sig)
        out = proc.communicate(timeout=120)[0]
        codes.append(proc.returncode)
        finished_first = "Results (headline" in out  # the run ended before the signal (it can land in teardown)
        if sig == signal.SIGTERM and proc.returncode != 0 and not finished_first:
            assert proc.returncode == 143 and "terminated" in out, out[-2000:]
    final = _run_cli(env)
    out = final.communicate(timeout=600)[0]
    assert final.returncode == 0, out[-3000:]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("spatialboost-bench")
    running = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert not running, [(r.info.run_name, r.data.tags.get("bench.pid")) for r in running]
    finished = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED' and "
                                  "tags.`bench.kind` = 'task'")
    by_task: dict[str, int] = {}
    for r in finished:
        by_task[r.data.params["task"]] = by_task.get(r.data.params["task"], 0) + 1
    assert by_task == {"imagenet-knn": 1, "imagenet-linear": 1}, (by_task, codes)
    res = subprocess.run([sys.executable, "-m", "bench.cli", "results", "--format", "csv"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert len(res.stdout.strip().splitlines()) == 1 + 8 + 5, res.stdout


# ------------------------------------------------------------------ identities and plans (review fixes)
def test_other_data_is_another_identity(tmp_path, monkeypatch):
    """A rerun on another synthetic preset or another dataset folder never reuses the old result."""
    from runners.plan import RunConfig, make_plan
    from tests.conftest import write_image_folder

    def cfg_hash(**kw):
        plan = make_plan(RunConfig(encoders=["vit-tiny"], **kw))
        return {t.name: (t.config_hash, t.data_id) for t in plan.tasks}

    tiny = cfg_hash(tasks=["synth-cls-knn"], synth_preset="tiny")["synth-cls-knn"]
    small = cfg_hash(tasks=["synth-cls-knn"], synth_preset="small")["synth-cls-knn"]
    assert tiny[0] != small[0] and "tiny" in tiny[1] and "small" in small[1]
    a, b = write_image_folder(tmp_path / "a", {"r": 2, "g": 2}), write_image_folder(tmp_path / "b", {"r": 2, "g": 2})
    monkeypatch.setenv("BENCH_IMAGENET", str(a))
    ha = cfg_hash(tasks=["imagenet-knn"])["imagenet-knn"][0]
    monkeypatch.setenv("BENCH_IMAGENET", str(b))
    assert cfg_hash(tasks=["imagenet-knn"])["imagenet-knn"][0] != ha
    # execution-only fields (threads, evaluation batch, example pictures) do not change the identity
    fast = make_plan(RunConfig(encoders=["vit-tiny"], tasks=["synth-depth-linear"], synth_preset="tiny",
                               task_config={"synth-depth-linear": {"threads": 2, "eval_batch": 3}}))
    plain = make_plan(RunConfig(encoders=["vit-tiny"], tasks=["synth-depth-linear"], synth_preset="tiny"))
    assert fast.tasks[0].config_hash == plain.tasks[0].config_hash
    # a unique last part names a nested field: `iterations` is `train.iterations`
    short = make_plan(RunConfig(encoders=["vit-tiny"], tasks=["synth-depth-linear"], synth_preset="tiny",
                                task_config={"synth-depth-linear": {"iterations": 7}}))
    assert short.tasks[0].config.train.iterations == 7


def test_a_blocked_plan_is_refused_before_any_work(capsys):
    from bench.cli import main

    home = os.environ["BENCH_HOME"]
    assert main(["run", "--encoder", "vit-tiny,dinov2-vitb14", "--tasks", "synth-cls-knn"]) == 2
    err = capsys.readouterr().err
    assert "dinov2-vitb14" in err and "no pretrained weights" in err and "--weights" in err  # how to provide them
    assert not os.path.exists(os.path.join(home, "data"))  # nothing generated for the run that cannot happen
    assert main(["run", "--dry-run", "--encoder", "dinov2-vitb14", "--tasks", "synth-cls-knn"]) == 2
    out = capsys.readouterr()
    assert "BLOCKED: dinov2-vitb14" in out.out and "cannot run here" in out.err


def test_an_aggregate_uses_stored_member_results(toys):  # noqa: F811
    from runners.benchmark import RunConfig, run_benchmark

    width = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-width"], progress=False), out=_quiet())
    depth = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-depth"], progress=False), out=_quiet())
    suite = {r.task: r for r in run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["toy-suite"], progress=False),
                                               out=_quiet())}
    assert suite["toy-width"].run_id == width[0].run_id and suite["toy-depth"].run_id == depth[0].run_id
    assert suite["toy-suite"].metrics["value"].value == (192 + 12) / 2


def test_alias_filters_find_old_and_canonical_records():
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from bench.store import read_records
    from bench.tracking import open_client
    from tests.test_tables import _experiment, log_record, make_record

    open_client()
    client = MlflowClient(tracking_uri())
    exp = _experiment(client)
    parent = client.create_run(exp, run_name="old store").info.run_id
    log_record(client, exp, parent, make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.5}))
    # an older store's alias is found by the alias and by the canonical name
    assert [r.encoder for r in read_records(encoders=["dinov3"])] == ["dinov3"]
    assert [r.encoder for r in read_records(encoders=["dinov3-vit7b16"])] == ["dinov3"]


def test_results_filters_suggest_names(capsys):
    from bench.cli import main

    assert main(["results", "--task", "synth-cls-kn"]) == 2
    assert "synth-cls-knn" in capsys.readouterr().err
    assert main(["results", "--encoder", "vit-tiyn"]) == 2
    assert "vit-tiny" in capsys.readouterr().err
