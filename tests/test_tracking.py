"""The MLflow records of a `bench run`: parent/child runs, params, metrics with direction, artifacts."""
import json
from pathlib import Path

import pytest

from bench.encoders import ENCODERS, register_encoder
from bench.tracking import read_results
from runners.benchmark import RunConfig, run_benchmark
from tasks import TASKS, RealData, register_task
from tasks.knn_classification import METRICS, PROTOCOL, evaluate
from bench.task import Task
from tests.conftest import CountingEncoder, write_image_folder


@pytest.fixture(scope="module", autouse=True)
def test_entries():
    if "counting-test" not in ENCODERS:
        register_encoder("counting-test", backend="test", family="test", random_init=True)(
            lambda weights, seed: CountingEncoder())
    if "folder-knn-test" not in TASKS:
        register_task(Task(name="folder-knn-test", group="classification", description="test task",
                           data=RealData("test folder", "folder", "BENCH_TEST_FOLDER", ("train", "val"),
                                         "written by the test"),
                           metrics=METRICS, headline="top1_k20", protocol=PROTOCOL, evaluate=evaluate))


def test_run_logs_parent_child_params_metrics_and_artifacts(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(write_image_folder(tmp_path / "f", {"r": 12, "g": 12, "b": 12})))
    results = run_benchmark(RunConfig(encoders=["counting-test"], tasks=["folder-knn-test"], progress=False,
                                      num_workers=0), out=open("/dev/null", "w"))
    assert len(results) == 1
    client = mlflow.tracking.MlflowClient()
    child = client.get_run(results[0]["run_id"])
    p = child.data.params
    assert p["encoder"] == "counting-test" and p["task"] == "folder-knn-test" and p["seed"] == "0"
    assert p["weights_id"] == "test-fixed" and p["protocol.protocol"] == "dino-knn"
    assert p["protocol.temperature"] == "0.07" and p["protocol.ks"] == "10,20,100,200"
    assert p["n_train"] == "36" and "code_version" in p
    assert child.data.tags["bench.dir.top1_k20"] == "higher"
    parent = client.get_run(child.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["bench.kind"] == "benchmark"
    # three well-separated colours: kNN must be near perfect
    assert child.data.metrics["top1_k20"] > 90
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"config.yaml", "result.json"} <= artifacts
    local = Path(client.download_artifacts(child.info.run_id, "result.json", str(tmp_path)))
    result = json.loads(local.read_text())
    assert result["metrics"]["top1_k20"]["higher_is_better"] is True

    tidy = read_results()
    rows = tidy[(tidy.task == "folder-knn-test") & (tidy.metric == "top1_k20")]
    assert len(rows) == 1 and bool(rows.iloc[0].higher_is_better) and rows.iloc[0].protocol == "dino-knn"
    assert set(tidy.metric) >= {f"top{t}_k{k}" for k in (10, 20, 100, 200) for t in (1, 5)}


def test_explicit_task_with_missing_data_names_the_path(tmp_path, monkeypatch):
    from bench.errors import DataMissingError

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(tmp_path / "nowhere"))
    with pytest.raises(DataMissingError) as err:
        run_benchmark(RunConfig(encoders=["counting-test"], tasks=["folder-knn-test"], progress=False))
    assert str(tmp_path / "nowhere") in str(err.value) and "How to obtain" in str(err.value)


def test_all_skips_tasks_without_data_and_says_why(monkeypatch, tmp_path):
    from runners.benchmark import select_tasks

    monkeypatch.setenv("BENCH_TEST_FOLDER", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BENCH_IMAGENET", str(tmp_path / "no-imagenet"))
    sel = select_tasks(["all"])
    skipped = dict(sel.skipped)
    assert "folder-knn-test" in skipped and "imagenet-knn" in skipped
    assert str(tmp_path / "no-imagenet") in skipped["imagenet-knn"]
    assert "synth-cls-knn" in [t.name for t in sel.tasks]
