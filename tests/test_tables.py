"""Paper and measured tables from a fixture MLflow store: cells, bolding by direction, deltas,
mean ± std (n distinct seeds), aggregation by identity, metric roles, "not run" / "missing data",
escaping in HTML and LaTeX, the run summary and the CLI.

The store is written with MLflow directly, following the schema of `bench/results.py` (tags,
params, metrics, result.json), plus one run of an older store (direction tags only) and malformed
runs that every reader must skip and count.
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bench.metrics import Metric, diagnostic, reference
from bench.results import DIR_TAG, KIND_TAG, PROTOCOL_TAG, VERSION_TAG, MetricValue, ResultRecord
from bench.task import GROUPS, TaskMeta
from leaderboard import paper, tables

EVIL = "<script>alert(1)</script>"
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class FakeData:
    """A data source whose presence the test decides."""

    ok: bool
    name: str = "fake"

    def status(self, preset=None):
        return self.ok, "/data/here" if self.ok else "/nowhere/kitti/data_depth_annotated not found (set BENCH_KITTI)"


def _meta(name, group, metric, higher, unit, ok=True):
    return TaskMeta(name=name, group=group, description="test", data=FakeData(ok),
                    metrics=(Metric(metric, higher, "headline", unit), Metric("aux", True),
                             reference("floor", higher, "a constant predictor", unit),
                             diagnostic("heldout", higher, "selection score", unit)),
                    headline=metric, protocol=f"{name}-proto", paper_task=name, notes={"crop": "eigen"})


CATALOG = {
    "nyud-depth-linear": _meta("nyud-depth-linear", "depth", "rmse", False, "m"),
    "kitti-depth-linear": _meta("kitti-depth-linear", "depth", "rmse", False, "m", ok=False),
    "ade20k-seg-linear": _meta("ade20k-seg-linear", "segmentation", "mIoU", True, "%"),
}

# (encoder, task, seed, {metric: value}); dinov3 has two seeds, and seed 0 of its depth run is logged
# twice (only the newest counts). The kitti run is an old-style run (direction tags only).
RUNS = [
    ("dinov3", "nyud-depth-linear", 0, {"rmse": 0.90}),  # superseded by the re-run below
    ("dinov3", "nyud-depth-linear", 0, {"rmse": 0.50, "aux": 1.0, "floor": 1.2, "heldout": 0.49}),
    ("dinov3", "nyud-depth-linear", 1, {"rmse": 0.46, "aux": 2.0, "floor": 1.2, "heldout": 0.45}),
    ("dinov3+sb", "nyud-depth-linear", 0, {"rmse": 0.40, "aux": 3.0, "floor": 1.2, "heldout": 0.41}),
    (EVIL, "nyud-depth-linear", 0, {"rmse": 0.70, "aux": 0.5}),
    ("dinov3", "ade20k-seg-linear", 0, {"mIoU": 40.0}),
    ("dinov3", "ade20k-seg-linear", 1, {"mIoU": 42.0}),
    ("dinov3+sb", "ade20k-seg-linear", 0, {"mIoU": 39.0}),
    (EVIL, "ade20k-seg-linear", 0, {"mIoU": 45.0}),
    ("dinov3", "kitti-depth-linear", 0, {"rmse": 3.0}),
]
OLD_STYLE = {("dinov3", "kitti-depth-linear")}


def make_record(encoder: str, task: str, seed: int, metrics: dict[str, float], catalog=CATALOG, **kw) -> ResultRecord:
    meta = catalog[task]
    mv = {k: MetricValue(v, meta.metric(k).higher_is_better, meta.metric(k).role, meta.metric(k).unit)
          for k, v in metrics.items()}
    return ResultRecord(**{"encoder": encoder, "task": task, "seed": seed, "metrics": mv, "headline": meta.headline,
                           "encoder_label": encoder, "weights_id": "test-weights", "task_version": meta.version,
                           "group": meta.group, "protocol": meta.protocol, "config_hash": "cfg0123456789abcd", **kw})


def _experiment(client):
    from bench.paths import artifact_root
    from bench.tracking import EXPERIMENT

    exp = client.get_experiment_by_name(EXPERIMENT)
    return exp.experiment_id if exp else client.create_experiment(EXPERIMENT, artifact_location=artifact_root())


def log_record(client, exp_id: str, parent_id: str, rec: ResultRecord, *, old_style: bool = False,
               start_time: int | None = None, params: dict | None = None, tags: dict | None = None,
               status: str = "FINISHED") -> str:
    """Log one child run as the runner does: tags, params, metrics (+ wall_seconds), result.json."""
    from mlflow.entities import Metric as MlMetric, Param, RunTag

    p = {"encoder": rec.encoder, "encoder_label": rec.encoder_label, "backend": "test", "weights_id": rec.weights_id,
         "random_init": "False", "task": rec.task, "group": rec.group, "task_version": str(rec.task_version),
         "seed": str(rec.seed), "config_hash": rec.config_hash, "code_version": "test", "device": "cpu",
         "data_root": "/data", "protocol.crop": "eigen", "protocol.family": rec.protocol}
    if old_style:  # an older store: no version, config hash, roles, units, headline or identity
        all_tags = {KIND_TAG: "task", PROTOCOL_TAG: rec.protocol,
                **{DIR_TAG + k: "higher" if m.higher_is_better else "lower" for k, m in rec.metrics.items()}}
        p = {k: v for k, v in p.items() if k not in ("task_version", "config_hash")}
    else:
        all_tags = rec.tags()
    p.update(params or {})
    all_tags.update(tags or {})
    all_tags[PARENT_TAG] = parent_id
    run = client.create_run(exp_id, run_name=f"{rec.encoder}/{rec.task}", tags=all_tags, start_time=start_time)
    rid = run.info.run_id
    ts = start_time or 0
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in p.items()],
                     metrics=[MlMetric(k, m.value, ts, 0) for k, m in rec.metrics.items()]
                     + [MlMetric("wall_seconds", 1.5, ts, 0)])
    if not old_style:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "result.json"
            path.write_text(json.dumps(replace(rec, run_id=rid, parent_run_id=parent_id).to_dict()))
            client.log_artifact(rid, str(path))
    client.set_terminated(rid, status)
    return rid


def populate_store(runs=RUNS, catalog=CATALOG, malformed: bool = True) -> dict[str, str]:
    """The fixture store; returns the ids of the malformed runs by what is wrong with them."""
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri

    client = MlflowClient(tracking_uri())
    exp = _experiment(client)
    parent = client.create_run(exp, run_name="bench run fixture", tags={KIND_TAG: "benchmark"}, start_time=1000)
    client.set_terminated(parent.info.run_id, "FINISHED")
    t = 10_000
    for enc, task, seed, metrics in runs:
        t += 10
        log_record(client, exp, parent.info.run_id, make_record(enc, task, seed, metrics, catalog),
                   old_style=(enc, task) in OLD_STYLE, start_time=t)
    bad = {}
    if malformed:
        rec = make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.01})
        bad["seed"] = log_record(client, exp, parent.info.run_id, rec, start_time=t + 1, params={"seed": "0.5"})
        bad["version"] = log_record(client, exp, parent.info.run_id, rec, start_time=t + 2,
                                    params={"task_version": "two"}, tags={VERSION_TAG: "two"})
        # a failed run is not a result at all: neither read nor counted
        log_record(client, exp, parent.info.run_id, make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.02}),
                   start_time=t + 3, status="FAILED")
    return bad


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("tables_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        populate_store()
        yield home


@pytest.fixture(scope="module")
def records(shared_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(shared_home))
        return tables.load_records()


def _row(grid, label):
    return next(r for r in grid.rows if r.label == label)


def _col(grid, label):
    return [c.label for c in grid.columns].index(label)


# ------------------------------------------------------------------ data and mappings


def test_paper_data_transcribed_with_directions_and_the_inconsistency_kept():
    values = paper.paper_values()
    assert len(values) == 475
    assert set(paper.table_keys()) == {"1", "2", "3", "4", "5", "8", "9", "20", "w1", "w2", "w3"}
    assert all(v.higher_is_better is False for v in values if v.metric in ("rmse", "rte_m"))
    assert all(v.higher_is_better for v in values if v.metric in ("miou", "top1", "map_hard", "gap"))
    t4 = paper.get_table(4).get("OpenCLIP+SB", "cortexbench-average", "score")
    t8 = paper.get_table(8).get("OpenCLIP+SB", "cortexbench-average", "score")
    assert (t4.value, t8.value) == (70.5, 72.9) and "inconsistency" in t4.note and "inconsistency" in t8.note
    assert paper.get_table(4).get("DINOv3", "cortexbench-adroit", "success_rate").std == 1.5
    assert paper.get_table(1).get("AIMv2", "kitti-depth-dpt", "rmse").decimals == 2  # "2.10" as printed
    assert paper.get_table("workshop-2").key == "w2"


def test_every_paper_name_is_mapped_in_data():
    names = paper.encoder_names()
    assert {v.encoder for v in paper.paper_values()} <= set(names)
    assert paper.zoo_candidates("DINOv3+SB")[0] == "dinov3+sb"
    assert paper.zoo_candidates("DINOv2-L")[0] == "dinov2-vitl14"
    assert paper.zoo_candidates("OpenCLIP-L")[0] == "openclip-vitl14"
    assert paper.zoo_candidates("SigLIPv2")[0] == "siglip2"
    assert paper.zoo_candidates("DINOv3+SimpleFT")[0] == "dinov3+sb-simpleft"  # the trainer's ablation, by name
    assert paper.zoo_candidates("NewNet+SB") == ("newnet+sb",)  # an unmapped row still gets a guess
    assert {(v.task, v.metric) for v in paper.paper_values()} <= set(paper.task_names())
    metric = {k: t.metric for k, t in paper.task_names().items()}
    assert metric[("nyud-depth-linear", "rmse")] == "rmse" and metric[("ade20k-seg-linear", "miou")] == "mIoU"
    assert metric[("imagenet-knn", "top1")] == "top1_k20" and metric[("imagenet-linear", "top1")] == "top1"
    assert metric[("roxford-retrieval", "map_hard")] == "mAP_hard" and metric[("met-retrieval", "gap")] == "GAP"
    assert metric[("amstertime-retrieval", "map")] == "mAP"
    assert {t.group for t in paper.task_names().values()} <= set(GROUPS)  # one group vocabulary


def test_mapped_zoo_names_exist_in_the_zoo():
    """A paper row's zoo name must be a registered encoder (or its +sb), unless the data says it is not
    in the zoo yet: a renamed zoo entry then fails here, and the fix is one CSV line."""
    from bench.encoders import ENCODERS
    from leaderboard.grid import split_name

    known = set(ENCODERS.names(aliases=True))
    if not known - {"vit-tiny"}:
        pytest.skip("the encoder zoo has no pretrained entries in this checkout")
    missing = [(e.paper, e.zoo) for e in paper.encoder_names().values()
               if e.zoo and split_name(e.zoo)[0] not in known and "not in the zoo yet" not in
               (e.note or paper.encoder_names().get(paper.sb_base(e.paper) or "", e).note)]
    assert not missing, f"encoder_names.csv names encoders the zoo does not have: {missing}"


def test_catalogued_paper_tasks_resolve_to_their_own_metrics():
    """Every catalogued task that names a paper task gets the paper's columns under its own metric names."""
    catalog = tables.task_catalog()
    linked = [m for m in catalog.values() if m.paper_task]
    for meta in linked:
        cols = [k for k in paper.task_names() if k[0] == meta.paper_task]
        assert cols, f"task {meta.name}: paper task {meta.paper_task!r} is not in task_map.csv"
        for ptask, pmetric in cols:
            got = paper.resolve_task(ptask, pmetric, catalog)
            assert got.task == meta.name and got.group == meta.group
            assert got.metric in {m.name for m in meta.metrics}, (meta.name, pmetric, got.metric)


def test_catalog_paper_task_link_wins_over_the_csv_name():
    meta = replace(_meta("my-nyu-linear", "depth", "rmse", False, "m"), paper_task="nyud-depth-linear")
    got = paper.resolve_task("nyud-depth-linear", "rmse", {"my-nyu-linear": meta})
    assert (got.task, got.metric, got.group) == ("my-nyu-linear", "rmse", "depth")
    # an uncatalogued paper task keeps its mapped names
    got = paper.resolve_task("scanqa-vlr", "bleu1", {})
    assert (got.task, got.metric, got.group) == ("scanqa-vlr", "bleu1", "3d")


# ------------------------------------------------------------------ aggregation


def _agg(records, encoder, task, metric):
    return next(m for (s, name), m in tables.aggregate(records, CATALOG).items()
                if (s.encoder, s.task, name) == (encoder, task, metric))


def test_seeds_aggregate_to_mean_std_n_and_reruns_keep_the_newest(records):
    assert records.skipped == 2  # the seed "0.5" run and the task version "two" run
    assert not any(r.metrics.get("rmse") and r.metrics["rmse"].value in (0.01, 0.02) for r in records)
    assert all("wall_seconds" not in r.metrics for r in records)  # bookkeeping, no direction
    m = _agg(records, "dinov3", "nyud-depth-linear", "rmse")
    assert m.n == 2 and m.seeds == (0, 1) and m.values == (0.50, 0.46)  # the 0.90 run was superseded
    assert math.isclose(m.mean, 0.48) and math.isclose(m.std, math.sqrt(2) * 0.02)
    assert m.protocol == "nyud-depth-linear-proto" and m.params["protocol.crop"] == "eigen"
    assert m.higher_is_better is False and m.unit == "m" and m.role == "score"
    assert tables.fmt_measured(m, 3) == "0.480 [0.226, 0.734] (n=2)"
    assert tables.fmt_measured(_agg(records, "dinov3+sb", "nyud-depth-linear", "rmse"), 3) == "0.400"
    # the old-style run: read with defaults, its role and unit filled in from the task's metadata
    old = next(r for r in records if r.task == "kitti-depth-linear")
    assert (old.task_version, old.config_hash, old.headline, old.metrics["rmse"].unit) == (1, "", "", "")
    assert _agg(records, "dinov3", "kitti-depth-linear", "rmse").unit == "m"


def test_all_runs_counts_distinct_seeds(records, shared_home, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(shared_home))
    every = tables.load_records(all_runs=True)
    assert len(every) == len(records) + 1
    m = _agg(every, "dinov3", "nyud-depth-linear", "rmse")
    # seed 0 has two runs (0.90, 0.50): one seed value (their mean), n = 2 distinct seeds
    assert m.n == 2 and m.seeds == (0, 1) and len(m.run_ids) == 3
    assert math.isclose(m.values[0], 0.70) and math.isclose(m.mean, (0.70 + 0.46) / 2)


def test_other_weights_configs_and_versions_are_never_averaged_in():
    recs = [make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.5}, start_time=1),
            make_record("dinov3", "nyud-depth-linear", 1, {"rmse": 0.4}, start_time=2),
            make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.9}, weights_id="sb-0123456789abcdef", start_time=3),
            make_record("dinov3", "ade20k-seg-linear", 0, {"mIoU": 40.0}, start_time=4),
            make_record("dinov3", "ade20k-seg-linear", 0, {"mIoU": 50.0}, task_version=2, start_time=5),
            make_record("dinov3", "ade20k-seg-linear", 1, {"mIoU": 52.0}, task_version=2, start_time=6),
            make_record("dinov3", "ade20k-seg-linear", 0, {"mIoU": 60.0}, task_version=2, config_hash="ffff0000ffff",
                        start_time=7)]
    grid = tables.measured_grid(recs, catalog=CATALOG)
    labels = [r.label for r in grid.rows]
    assert labels == ["dinov3 [w:sb-01234567]", "dinov3 [w:test-weights]"]
    cols = [c.label for c in grid.columns]
    assert cols == ["nyud-depth-linear", "ade20k-seg-linear (v1)", "ade20k-seg-linear (v2, cfg cfg01234)",
                    "ade20k-seg-linear (v2, cfg ffff0000)"]
    main = _row(grid, "dinov3 [w:test-weights]")
    assert main.cells[0].text == "0.450 [-0.185, 1.085] (n=2)"  # the other weights' 0.9 is its own row
    assert _row(grid, "dinov3 [w:sb-01234567]").cells[0].text == "0.900"
    assert [c.text for c in main.cells[1:]] == ["40.0", "51.0 [38.3, 63.7] (n=2)", "60.0"]
    assert "weights" in " ".join(grid.notes) and "never averaged" in " ".join(grid.notes)
    assert "weights test-weights" in main.cells[0].title and "task v1" in main.cells[0].title


def test_random_init_weights_of_the_runs_seed_aggregate_over_seeds():
    recs = [make_record("vit-tiny", "nyud-depth-linear", s, {"rmse": v}, weights_id=f"random-init(seed={s})",
                        encoder_label="vit-tiny [random-init]") for s, v in ((0, 1.0), (1, 2.0))]
    grid = tables.measured_grid(recs, catalog=CATALOG)
    assert [r.label for r in grid.rows] == ["vit-tiny [random-init]"]
    assert grid.rows[0].cells[0].text == "1.500 [-4.853, 7.853] (n=2)"


# ------------------------------------------------------------------ measured table


def test_measured_table_cells_bold_by_direction_and_deltas(records):
    grid = tables.measured_grid(records, catalog=CATALOG)
    labels = [c.label for c in grid.columns]
    assert labels == ["kitti-depth-linear", "nyud-depth-linear", "ade20k-seg-linear"]  # depth before segmentation
    assert [c.group for c in grid.columns] == [GROUPS["depth"]] * 2 + [GROUPS["segmentation"]]
    nyu, ade, kitti = labels.index("nyud-depth-linear"), labels.index("ade20k-seg-linear"), labels.index("kitti-depth-linear")
    base, sb, evil = _row(grid, "dinov3"), _row(grid, "dinov3+sb"), _row(grid, EVIL)
    assert [r.label for r in grid.rows].index("dinov3+sb") == [r.label for r in grid.rows].index("dinov3") + 1
    assert base.cells[nyu].text == "0.480 [0.226, 0.734] (n=2)"  # unit m: 3 decimals
    assert base.cells[ade].text == "41.0 [28.3, 53.7] (n=2)"  # unit %: 1 decimal
    # lower-is-better RMSE: the smallest is bold; higher-is-better mIoU: the largest is bold
    assert sb.cells[nyu].bold and not base.cells[nyu].bold and not evil.cells[nyu].bold
    assert evil.cells[ade].bold and not base.cells[ade].bold and not sb.cells[ade].bold
    delta = _row(grid, "Δ dinov3 → +sb")
    assert delta.kind == "delta"
    assert delta.cells[nyu].text == "-0.080 ✓" and delta.cells[nyu].good is True  # RMSE down = better
    assert delta.cells[ade].text == "-2.0 ✗" and delta.cells[ade].good is False  # mIoU down = worse
    # not run / missing data
    assert base.cells[kitti].text == "3.000" and not base.cells[kitti].bold  # a lone value is not bold
    assert sb.cells[kitti].text == tables.MISSING_DATA and sb.cells[kitti].kind == "missing-data"
    assert "BENCH_KITTI" in sb.cells[kitti].title


def test_measured_table_not_run_when_data_present(records):
    runs = [r for r in records if not (r.encoder == EVIL and r.task == "ade20k-seg-linear")]
    grid = tables.measured_grid(runs, catalog=CATALOG)
    ade = _col(grid, "ade20k-seg-linear")
    assert _row(grid, EVIL).cells[ade].text == tables.NOT_RUN
    assert _row(grid, "dinov3").cells[ade].bold  # 41.0 is now the best mIoU


def test_metric_roles_hidden_unless_asked_and_marked(records):
    scores = tables.measured_grid(records, metrics="scores", catalog=CATALOG)
    assert {c.label for c in scores.columns} == {"nyud-depth-linear:rmse", "nyud-depth-linear:aux",
                                                "ade20k-seg-linear:mIoU", "kitti-depth-linear:rmse"}
    grid = tables.measured_grid(records, metrics="all", catalog=CATALOG)
    assert {c.label for c in grid.columns} == {c.label for c in scores.columns} | {
        "nyud-depth-linear:floor", "nyud-depth-linear:heldout"}
    floor = _col(grid, "nyud-depth-linear:floor")
    assert grid.columns[floor].role == "reference" and grid.columns[floor].mark == "[reference]"
    assert not any(r.cells[floor].bold for r in grid.rows)  # a floor is not a competition
    assert _row(grid, "Δ dinov3 → +sb").cells[floor].kind == "empty"
    md = tables.render_markdown(grid)
    assert "nyud-depth-linear:floor ↓ \\[reference\\]" in md and "\\[diagnostic\\]" in md
    # the headline first, then other scores, then reference and diagnostic columns
    order = [c.label for c in grid.columns if c.label.startswith("nyud")]
    assert order == ["nyud-depth-linear:rmse", "nyud-depth-linear:aux", "nyud-depth-linear:floor",
                     "nyud-depth-linear:heldout"]  # headline, other scores, reference, diagnostic
    assert _row(grid, EVIL).cells[floor].text == "—"  # its run did not report the floor


# ------------------------------------------------------------------ run summary


def test_run_summary_text_table():
    recs = [make_record("vit-tiny", "nyud-depth-linear", 0, {"rmse": 0.9, "floor": 1.2},
                        encoder_label="vit-tiny [random-init]", weights_id="random-init(seed=0)"),
            make_record("vit-tiny+sb", "nyud-depth-linear", 0, {"rmse": 0.8}, weights_id="sb-00112233445566778899"),
            make_record("vit-tiny", "ade20k-seg-linear", 0, {"mIoU": 20.0},
                        encoder_label="vit-tiny [random-init]", weights_id="random-init(seed=0)")]
    text = tables.run_summary(recs, title="Results (headline metric per task)")
    lines = text.splitlines()
    assert lines[0] == "Results (headline metric per task)"
    assert tables.run_summary(recs).splitlines() == lines[1:]  # no title by default: `bench run` prints its own
    assert "nyud-depth-linear ↓" in lines[1] and "ade20k-seg-linear ↑" in lines[1] and "floor" not in text
    assert lines[2].startswith("vit-tiny [random-init]") and "0.900" in lines[2] and "20.0" in lines[2]
    assert lines[3].startswith("vit-tiny+sb") and "0.800*" in lines[3] and "not run" in lines[3]
    assert lines[4].strip().startswith("Δ vit-tiny → +sb") and "-0.100 ✓" in lines[4]
    assert "no results yet" in tables.run_summary([])


# ------------------------------------------------------------------ paper tables


def test_paper_table_1_measured_next_to_reported(records):
    grid = tables.paper_grid(1, records, catalog=CATALOG)
    assert grid.title.startswith("Table 1")
    groups = [c.group for c in grid.columns if c.sub == "paper"]
    assert groups == ["NYUd lin. ↓", "NYUd DPT ↓", "KITTI lin. ↓", "KITTI DPT ↓"]
    j = {(c.group.split(" ↓")[0], c.sub): i for i, c in enumerate(grid.columns)}
    d3, d3sb = _row(grid, "DINOv3"), _row(grid, "DINOv3+SB")
    assert d3.cells[j["NYUd lin.", "paper"]].text == "0.31"
    assert d3.cells[j["NYUd lin.", "ours"]].text == "0.480 [0.226, 0.734] (n=2)"
    assert d3sb.cells[j["NYUd lin.", "ours"]].text == "0.400"
    assert d3.cells[j["KITTI lin.", "ours"]].text == "3.000"
    assert d3sb.cells[j["KITTI lin.", "ours"]].text == tables.MISSING_DATA  # catalogued, data absent
    assert d3.cells[j["NYUd DPT", "ours"]].text == tables.NOT_RUN  # not a catalogued task here
    assert _row(grid, "AIMv2").cells[j["NYUd lin.", "ours"]].text == tables.NOT_RUN
    # bold by direction, separately for paper and ours columns
    assert _row(grid, "PE-Core").cells[j["NYUd lin.", "paper"]].bold  # 0.25, tied with DINOv3+SB
    assert d3sb.cells[j["NYUd lin.", "paper"]].bold
    assert d3sb.cells[j["NYUd lin.", "ours"]].bold and not d3.cells[j["NYUd lin.", "ours"]].bold
    delta = _row(grid, "Δ DINOv3 → +SB")
    assert delta.cells[j["NYUd lin.", "paper"]].text == "-0.06 ✓"
    assert delta.cells[j["NYUd lin.", "ours"]].text == "-0.080 ✓"
    assert delta.cells[j["KITTI lin.", "ours"]].kind == "empty"


def test_paper_table_2_higher_is_better_and_table_4_note(records):
    grid = tables.paper_grid(2, records, catalog=CATALOG)
    j = next(i for i, c in enumerate(grid.columns) if c.group.startswith("ADE20K lin.") and c.sub == "ours")
    assert _row(grid, "DINOv3+SB").cells[j - 1].bold  # 59.7 is the best reported
    assert _row(grid, "DINOv3").cells[j].text == "41.00 [28.29, 53.71] (n=2)"  # the paper's decimals + 1
    delta = _row(grid, "Δ DINOv3 → +SB")
    assert delta.cells[j].text == "-2.00 ✗" and delta.cells[j].good is False
    assert delta.cells[j - 1].text == "+3.8 ✓"
    md = tables.render_markdown(tables.paper_grid(4, records, catalog=CATALOG))
    assert "70.5 †" in md and "72.9" in md and "61.1 ± 3.4" in md


def test_paper_table_shows_the_newest_version_and_names_the_others():
    recs = [make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.5}, start_time=1),
            make_record("dinov3", "nyud-depth-linear", 0, {"rmse": 0.3}, task_version=2, start_time=2)]
    grid = tables.paper_grid(1, recs, catalog=CATALOG)
    j = next(i for i, c in enumerate(grid.columns) if c.group.startswith("NYUd lin.") and c.sub == "ours")
    cell = _row(grid, "DINOv3").cells[j]
    assert cell.text == "0.300" and "v2" in cell.title and "other measured variants" in cell.title and "v1" in cell.title


def test_every_paper_table_renders_in_every_format(records):
    for key in paper.table_keys():
        grid = tables.paper_grid(key, records, catalog=CATALOG)
        for name in ("markdown", "latex", "html", "text"):
            assert tables.render(grid, name)


# ------------------------------------------------------------------ escaping


def test_html_escapes_run_data(records):
    out = tables.render(tables.measured_grid(records, catalog=CATALOG), "html")
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert re.search(r"<strong>0\.400</strong>", out)
    assert 'class="delta good"' in out or "good" in out


def test_latex_escapes_run_data_and_marks(records):
    out = tables.render(tables.measured_grid(records, catalog=CATALOG), "latex")
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}" in out
    assert "<script>" not in out
    assert r"\textbf{0.400}" in out
    assert r"\textcolor[rgb]{0,0.5,0}{-0.080 \checkmark{}}" in out
    assert r"\textcolor[rgb]{0.75,0,0}{-2.0 $\times$}" in out
    assert r"0.480 [0.226, 0.734] (n=2)" in out
    assert tables.esc_latex("a_b & 50% #1 {x} ~^\\") == \
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"


def test_markdown_escapes_pipes_and_html():
    assert tables.esc_md("a|b <i>") == r"a\|b &lt;i&gt;"


# ------------------------------------------------------------------ CLI


def test_cli_table_commands(shared_home, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("BENCH_HOME", str(shared_home))
    assert main(["table"]) == 0
    captured = capsys.readouterr()
    assert "dinov3" in captured.out and "&lt;script&gt;" in captured.out and "(n=2)" in captured.out
    assert "skipped 2 malformed run(s)" in captured.err
    assert main(["table", "--all-metrics"]) == 0
    assert "\\[reference\\]" in capsys.readouterr().out
    target = tmp_path / "t1.tex"
    assert main(["table", "--paper", "1", "--format", "latex", "--out", str(target)]) == 0
    tex = target.read_text()
    assert "\\begin{tabular}" in tex and "DINOv3" in tex and "0.480 [0.226, 0.734] (n=2)" in tex
    assert main(["table", "--paper", "w3", "--format", "html", "--out", str(tmp_path / "w3.html")]) == 0
    assert "<table" in (tmp_path / "w3.html").read_text()
    assert main(["table", "--paper", "7"]) == 2  # unknown table: a clear error, no traceback
    assert "no paper table" in capsys.readouterr().err
    assert main(["table", "--list"]) == 0 and "w1" in capsys.readouterr().out
