"""End to end through the runner: `bench run --encoder vit-tiny` on the 3D twins (tiny preset)
generates the twin, lifts once, logs metrics with directions, and a forced rerun reuses the lifted
point features and the per-view features (nothing re-encoded, nothing re-lifted)."""
from __future__ import annotations

import csv
import io

import pytest

from bench.cli import main

TASKS = "synth-scannet-3d-semseg"
SETS = ["--set", "synth-scannet-3d-semseg.epochs=5"]


@pytest.mark.slow
def test_vit_tiny_runs_the_3d_twins_and_reuses_lifted_features(capsys):
    import mlflow

    args = ["run", "--encoder", "vit-tiny", "--tasks", TASKS, "--synth-preset", "tiny", "--no-progress", *SETS]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["results", "--format", "csv"]) == 0
    rows = {(r["task"], r["metric"]): r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    miou = rows[("synth-scannet-3d-semseg", "miou")]
    assert miou["higher_is_better"] == "True" and 0 <= float(miou["value"]) <= 100
    assert rows[("synth-scannet-3d-semseg", "majority_accuracy")]["role"] == "reference"
    assert main(args + ["--force"]) == 0
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="params.lift_scenes_reused != ''",
                              order_by=["attributes.start_time DESC"])
    newest = runs.iloc[0]
    assert newest["params.lift_scenes_lifted"] == "0" and newest["params.lift_scenes_reused"] == "3"
    parents = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`bench.kind` = 'benchmark'",
                                 order_by=["attributes.start_time DESC"])
    assert parents.iloc[0]["metrics.features_extracted"] == 0 and parents.iloc[0]["metrics.features_reused"] > 0
