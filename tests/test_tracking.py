"""The MLflow records of a `bench run` (parent/child runs, params, metrics with direction, artifacts),
and reading them back through the one reader, `bench.store`.

The reading tests write their store with MLflow directly (tests/test_tables.py: the schema of
`bench/results.py`, one run of an older store, malformed runs); the runner tests import the runner
inside their own bodies, so the reader's tests stand on their own.
"""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.results import RESULT_COLUMNS, ResultRecord
from bench.store import read_records, read_results
from tests.test_tables import CATALOG, log_record, make_record, populate_store


# ------------------------------------------------------------------ reading (bench.store)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("store_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        bad = populate_store()
        yield home, bad


@pytest.fixture
def store(shared_home, monkeypatch):
    home, bad = shared_home
    monkeypatch.setenv("BENCH_HOME", str(home))
    return bad


def test_store_rebuilds_records_from_tags_params_and_metrics(store, tmp_path):
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri

    records = read_records()
    assert records.skipped == 2 and {rid for rid, _ in records.problems} == set(store.values())
    why = dict(records.problems)
    assert "seed '0.5' is not an integer" in why[store["seed"]]
    assert "task version 'two' is not an integer" in why[store["version"]]
    assert "skipped 2 malformed run(s)" in records.skipped_message()
    rec = next(r for r in records if (r.encoder, r.task, r.seed) == ("dinov3+sb", "nyud-depth-linear", 0))
    assert (rec.weights_id, rec.task_version, rec.config_hash, rec.headline, rec.group, rec.protocol) == (
        "test-weights", 1, "cfg0123456789abcd", "rmse", "depth", "nyud-depth-linear-proto")
    assert rec.metrics["floor"].role == "reference" and rec.metrics["heldout"].role == "diagnostic"
    assert rec.metrics["rmse"].unit == "m" and rec.metrics["rmse"].higher_is_better is False
    assert "wall_seconds" not in rec.metrics and rec.params["protocol.crop"] == "eigen" and rec.parent_run_id
    # the record read back is the one the run stored as result.json
    client = MlflowClient(tracking_uri())
    stored = ResultRecord.from_dict(json.loads(Path(client.download_artifacts(rec.run_id, "result.json",
                                                                              str(tmp_path))).read_text()))
    assert stored.identity == rec.identity and stored.identity_hash == rec.identity_hash
    assert stored.metrics == rec.metrics and stored.headline == rec.headline
    # an older store's run: direction tags only, read with defaults
    old = next(r for r in records if r.task == "kitti-depth-linear")
    assert (old.task_version, old.config_hash, old.weights_id, old.metrics["rmse"].role) == (1, "", "test-weights",
                                                                                           "score")


def test_store_keeps_the_newest_per_identity_unless_all_runs(store):
    latest = read_records()
    every = read_records(all_runs=True)
    assert len({r.identity for r in latest}) == len(latest) and len(every) == len(latest) + 1
    rmse = [r.metrics["rmse"].value for r in latest if (r.encoder, r.task, r.seed) == ("dinov3", "nyud-depth-linear", 0)]
    assert rmse == [0.50]  # the re-run replaced the 0.90 one
    assert [r.start_time for r in every] == sorted(r.start_time for r in every)  # oldest first


def test_store_filters_by_kind_encoder_and_task(store):
    assert {r.encoder for r in read_records(encoders=["dinov3+sb"])} == {"dinov3+sb"}
    got = read_records(encoders=["dinov3", "dinov3+sb"], tasks=["ade20k-seg-linear"])
    assert {(r.encoder, r.task) for r in got} == {("dinov3", "ade20k-seg-linear"), ("dinov3+sb", "ade20k-seg-linear")}
    assert read_records(kinds=("aggregate",)) == [] and read_records(kinds=("benchmark",)) == []


def test_read_results_is_tidy_with_the_result_columns(store):
    df = read_results()
    assert list(df.columns) == RESULT_COLUMNS and df.attrs["skipped"] == 2
    row = df[(df.encoder == "dinov3+sb") & (df.metric == "floor")].iloc[0]
    assert (row.role, row.unit, row.task_version, row.config_hash) == ("reference", "m", 1, "cfg0123456789abcd")
    assert len(read_results(all_runs=True)) == len(df) + 1


def test_cli_results_one_row_per_identity_and_metric(store, capsys):
    import io

    import pandas as pd

    from bench.cli import main

    assert main(["results", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == ",".join(RESULT_COLUMNS)  # the columns, in that order
    assert "skipped 2 malformed run(s)" in out.err
    df = pd.read_csv(io.StringIO(out.out))
    key = ["encoder", "weights_id", "task", "task_version", "config_hash", "seed", "metric"]
    assert not df.duplicated(key).any()
    assert main(["results", "--format", "csv", "--all-runs"]) == 0
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == len(df) + 1
    assert main(["results", "--format", "json", "--encoder", "dinov3+sb", "--task", "nyud-depth-linear"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in rows} == {"rmse", "aux", "floor", "heldout"} and set(rows[0]) == set(RESULT_COLUMNS)
    assert main(["results", "--latest"]) == 0 and "dinov3" in capsys.readouterr().out


def test_a_rerun_with_other_weights_is_another_identity(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from bench.tracking import EXPERIMENT

    populate_store(runs=[], malformed=False)
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parent = client.create_run(exp).info.run_id
    rec = make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.5}, CATALOG)
    log_record(client, exp, parent, rec, start_time=1)
    log_record(client, exp, parent, replace(rec, weights_id="other"), start_time=2)
    log_record(client, exp, parent, replace(rec, config_hash="other"), start_time=3)
    log_record(client, exp, parent, rec, start_time=4)  # a rerun of the first: replaces it
    got = read_records()
    assert len(got) == 3 and sorted(r.start_time for r in got) == [2, 3, 4]


# ------------------------------------------------------------------ the runner (writing)


@pytest.fixture(scope="module")
def test_entries():
    import tasks
    from bench.data.sources import RealData
    from bench.encoders import ENCODERS, register_encoder
    from bench.task import TaskMeta
    from tasks import TASKS, register_task
    from tasks.classification import KNN_METRICS, KNN_NOTES
    from tests.conftest import CountingEncoder

    if "counting-test" not in ENCODERS:
        register_encoder("counting-test", backend="test", family="test", random_init=True)(
            lambda weights, seed: CountingEncoder())
    if "folder-knn-test" not in TASKS:
        register_task(TaskMeta(name="folder-knn-test", group="classification", description="test task",
                               data=RealData("test folder", "folder", "BENCH_TEST_FOLDER", ("train", "val"),
                                             "written by the test"),
                               metrics=KNN_METRICS, headline="top1_k20", protocol="dino-knn", notes=KNN_NOTES),
                      "tasks.classification.knn:KnnProbe")
    yield
    TASKS._entries.pop("folder-knn-test", None)
    tasks._BOUND.pop("folder-knn-test", None)
    ENCODERS._entries.pop("counting-test", None)


def test_run_logs_parent_child_params_metrics_and_artifacts(test_entries, tmp_path, monkeypatch):
    import mlflow

    from runners.benchmark import RunConfig, run_benchmark
    from tests.conftest import write_image_folder

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(write_image_folder(tmp_path / "f", {"r": 12, "g": 12, "b": 12})))
    results = run_benchmark(RunConfig(encoders=["counting-test"], tasks=["folder-knn-test"], progress=False,
                                      num_workers=0), out=open("/dev/null", "w"))
    assert len(results) == 1 and isinstance(results[0], ResultRecord)
    client = mlflow.tracking.MlflowClient()
    child = client.get_run(results[0].run_id)
    p, tags = child.data.params, child.data.tags
    assert p["encoder"] == "counting-test" and p["task"] == "folder-knn-test" and p["seed"] == "0"
    assert p["weights_id"] == "test-fixed" and tags["bench.protocol"] == "dino-knn"
    assert p["protocol.temperature"] == "0.07" and p["protocol.ks"] == "[10, 20, 100, 200]"
    assert p["protocol.voting"] == "sum-exp(sim/T)-one-top-max-k-pass" and p["task_version"] == "1"
    assert p["n_train"] == "36" and "code_version" in p and p["config_hash"] == results[0].config_hash
    assert tags["bench.dir.top1_k20"] == "higher" and tags["bench.role.top1_k20"] == "score"
    assert tags["bench.unit.top1_k20"] == "%" and tags["bench.identity"] == results[0].identity_hash
    assert tags["bench.pid"].isdigit() and tags["bench.host"]
    parent = client.get_run(tags["mlflow.parentRunId"])
    assert parent.data.tags["bench.kind"] == "benchmark"
    # three well-separated colours: kNN must be near perfect
    assert child.data.metrics["top1_k20"] > 90
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"config.yaml", "result.json"} <= artifacts
    local = Path(client.download_artifacts(child.info.run_id, "result.json", str(tmp_path)))
    result = ResultRecord.from_dict(json.loads(local.read_text()))
    assert result.metrics["top1_k20"].higher_is_better is True and result.identity == results[0].identity
    exp = client.get_experiment(child.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

    tidy = read_results()
    rows = tidy[(tidy.task == "folder-knn-test") & (tidy.metric == "top1_k20")]
    assert len(rows) == 1 and bool(rows.iloc[0].higher_is_better) and rows.iloc[0].protocol == "dino-knn"
    assert set(tidy.metric) >= {f"top{t}_k{k}" for k in (10, 20, 100, 200) for t in (1, 5)}


def test_explicit_task_with_missing_data_names_the_path(test_entries, tmp_path, monkeypatch):
    from bench.errors import DataMissingError
    from runners.benchmark import RunConfig, run_benchmark

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(tmp_path / "nowhere"))
    with pytest.raises(DataMissingError) as err:
        run_benchmark(RunConfig(encoders=["counting-test"], tasks=["folder-knn-test"], progress=False))
    assert str(tmp_path / "nowhere") in str(err.value) and "How to obtain" in str(err.value)


def test_all_skips_tasks_without_data_and_says_why(test_entries, monkeypatch, tmp_path):
    from runners.plan import select

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BENCH_IMAGENET", str(tmp_path / "no-imagenet"))
    chosen, aggregates, skipped = select(["all"], "tiny")
    skipped = dict(skipped)
    assert "folder-knn-test" in skipped and "imagenet-knn" in skipped
    assert str(tmp_path / "no-imagenet") in skipped["imagenet-knn"]
    assert "synth-cls-knn" in chosen and "folder-knn-test" not in chosen
