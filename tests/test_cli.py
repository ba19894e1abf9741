"""The `bench` command line: errors, listing, a full kNN run, results read back, cache reuse."""
import csv
import io

import pytest

from bench.cli import main


def test_unknown_encoder_and_task_exit_nonzero_with_suggestions(capsys):
    assert main(["run", "--encoder", "vit-tiyn", "--tasks", "synth-cls-knn"]) == 2
    assert "Did you mean: vit-tiny" in capsys.readouterr().err
    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-kn"]) == 2
    assert "synth-cls-knn" in capsys.readouterr().err


def test_missing_real_data_names_the_path(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_IMAGENET", str(tmp_path / "imagenet"))
    assert main(["run", "--encoder", "vit-tiny", "--tasks", "imagenet-knn"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "imagenet") in err and "image-net.org" in err



def test_list_encoders_and_tasks(capsys):
    assert main(["list", "encoders"]) == 0
    out = capsys.readouterr().out
    assert "vit-tiny" in out and "random-init" in out and "dinov3" in out
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "synth-cls-knn" in out and "imagenet-knn" in out and "missing" in out


@pytest.mark.slow
def test_knn_run_results_csv_and_cache_reuse(capsys):
    from bench.store import read_results

    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "synth-cls-knn" in out and "vit-tiny [random-init]" in out

    assert main(["results", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    knn = {r["metric"]: r for r in rows if r["task"] == "synth-cls-knn"}
    for k in (10, 20, 100, 200):
        row = knn[f"top1_k{k}"]
        assert row["encoder"] == "vit-tiny" and row["higher_is_better"] == "True" and row["protocol"] == "dino-knn"
        assert 0.0 <= float(row["value"]) <= 100.0

    # a rerun reuses the finished result; a forced rerun recomputes it from every cached feature
    import mlflow

    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn", "--no-progress"]) == 0
    assert "done already" in capsys.readouterr().out
    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn", "--no-progress", "--force"]) == 0
    parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`bench.kind` = 'benchmark'",
                                 order_by=["attributes.start_time DESC"])
    assert parents.iloc[0]["metrics.features_extracted"] == 0  # forced: nothing goes through the encoder again
    assert parents.iloc[0]["metrics.features_reused"] > 0
    assert parents.iloc[1]["metrics.pairs_reused"] == 1 and parents.iloc[1]["metrics.features_reused"] == 0
    assert parents.iloc[2]["metrics.features_extracted"] > 0
    assert len(read_results().query("task == 'synth-cls-knn'")) == 8  # one record per identity


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-5"], "--batch-size"),
    (["--tasks", "synth-depth-linear", "--set", "synth-depth-linear.train.iterations=0"], "iterations"),
    (["--tasks", "synth-depth-linear", "--set", "synth-depth-linear.iterations=-3"], "iterations"),
    (["--encoder", ""], "--encoder"),
    (["--tasks", ""], "--tasks"),
    (["--weights", "vit-smal=/x.safetensors"], "Did you mean"),
    (["--weights", "dinov2-vitb14=/x.safetensors"], "not one of the encoders"),
    (["--set", "synth-cls-knn.kz=[1]"], "did you mean"),
    (["--set", "synth-cls-linear.train.epochs=3"], "not in this run"),
    (["--set", "nosuch-task.a=1"], "unknown task"),
    (["--tasks", "synth-cls-knn,synth-cls-knn", "--set", "synth-cls-knn.ks=[7]"], "subset"),
    pytest.param(["--device", "cuda"], "no CUDA GPU", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="a GPU is present here")),
])
def test_bad_options_are_refused_up_front(capsys, argv, message):
    base = {"--encoder": "vit-tiny", "--tasks": "synth-cls-knn"}
    args = list(argv)
    for flag, value in base.items():
        if flag not in args:
            args += [flag, value]
    assert main(["run", "--dry-run", *args]) == 2
    assert message in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_does_nothing(capsys, tmp_path):
    import os
    import time

    t0 = time.perf_counter()
    assert main(["run", "--dry-run", "--encoder", "vit-tiny,vit-tiny+sb", "--tasks", "all",
                 "--set", "synth-depth-linear.train.iterations=5"]) == 0
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert "train SpatialBoost" in out and "vit-tiny+sb" in out, out
    assert "generate: synthetic scenes" in out and "synth-seg-ms" in out and "skip imagenet-knn" in out
    assert "nothing was trained" in out
    home = os.environ["BENCH_HOME"]
    assert not any(os.path.exists(os.path.join(home, d)) for d in ("checkpoints", "data", "mlflow.db", "cache")), \
        os.listdir(home)
    assert elapsed < 30, elapsed  # generous: a plan is metadata and file checks only


def test_run_file_and_set_overrides_are_recorded(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("encoders: [vit-tiny]\ntasks: [synth-cls-linear]\n"
                                       "config:\n  synth-cls-linear:\n    train: {epochs: 2}\n")
    assert main(["run", "--dry-run", "--config", str(tmp_path / "run.yaml"),
                 "--set", "synth-cls-linear.heldout_fraction=0.2"]) == 0
    from runners.plan import RunConfig, make_plan

    plan = make_plan(RunConfig(encoders=["vit-tiny"], tasks=["synth-cls-linear"],
                               task_config={"synth-cls-linear": {"train": {"epochs": 2}, "heldout_fraction": 0.2}}))
    params = plan.tasks[0].protocol_params()
    assert params["protocol.train.epochs"] == 2 and params["protocol.heldout_fraction"] == 0.2
    assert params["protocol.mode"] == "cached" and "protocol.selection" in params
    (tmp_path / "bad.yaml").write_text("encoders: [vit-tiny]\nsede: 3\n")
    assert main(["run", "--dry-run", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown keys ['sede']" in capsys.readouterr().err


@pytest.mark.slow
def test_concurrent_runs_into_a_fresh_store_both_finish(tmp_path):
    """Two `bench run` started together on a fresh BENCH_HOME: both finish, every record is kept."""
    import os
    import subprocess
    import sys

    from tests.conftest import write_image_folder

    home = tmp_path / "home"
    env = {**os.environ, "BENCH_HOME": str(home),
           "BENCH_IMAGENET": str(write_image_folder(tmp_path / "imagenet", {"r": 6, "g": 6, "b": 6}))}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "bench.cli", "run", "--encoder", "vit-tiny", "--tasks", "imagenet-knn",
           "--no-progress"]
    procs = [subprocess.Popen(cmd + ["--seed", str(seed)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for seed in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(outs)
    res = subprocess.run([sys.executable, "-m", "bench.cli", "results", "--format", "csv"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sorted({r["seed"] for r in rows}) == ["0", "1"] and len(rows) == 16, res.stdout + res.stderr
    assert not (tmp_path / "mlruns").exists()  # no stray store in the working directory


def test_a_task_named_twice_runs_once():
    from runners.plan import RunConfig, make_plan

    plan = make_plan(RunConfig(encoders=["vit-tiny", "vit-tiny"], tasks=["synth-cls-knn", "synth-cls-knn"]))
    assert [t.name for t in plan.tasks] == ["synth-cls-knn"] and plan.encoders == ["vit-tiny"]
