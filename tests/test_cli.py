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
    from bench.tracking import read_results

    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "synth-cls-knn:top1_k20" in out and "vit-tiny [random-init]" in out

    assert main(["results", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    knn = {r["metric"]: r for r in rows if r["task"] == "synth-cls-knn"}
    for k in (10, 20, 100, 200):
        row = knn[f"top1_k{k}"]
        assert row["encoder"] == "vit-tiny" and row["higher_is_better"] == "True" and row["protocol"] == "dino-knn"
        assert 0.0 <= float(row["value"]) <= 100.0

    # the second run reuses every cached feature: nothing goes through the encoder again
    import mlflow

    assert main(["run", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn", "--no-progress"]) == 0
    parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`bench.kind` = 'benchmark'",
                                 order_by=["attributes.start_time DESC"])
    assert parents.iloc[0]["metrics.features_extracted"] == 0
    assert parents.iloc[0]["metrics.features_reused"] > 0
    assert parents.iloc[1]["metrics.features_extracted"] > 0
    assert len(read_results(only_latest=True).query("task == 'synth-cls-knn'")) == 8
