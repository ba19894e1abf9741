"""Paper and measured tables from a fixture MLflow store: cells, bolding by direction, deltas,
mean ± std (n), "not run" / "missing data", and escaping in HTML and LaTeX."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pytest

from bench.task import Metric, Task
from bench.tracking import DIR_TAG, KIND_TAG, Tracker
from leaderboard import paper, tables

EVIL = "<script>alert(1)</script>"


@dataclass(frozen=True)
class FakeData:
    """A data source whose presence the test decides."""

    ok: bool
    name: str = "fake"

    def status(self):
        return self.ok, "/data/here" if self.ok else "/nowhere/kitti/data_depth_annotated not found (set BENCH_KITTI)"


def _task(name, group, metric, higher, ok=True):
    return Task(name=name, group=group, description="test", data=FakeData(ok),
                metrics=(Metric(metric, higher), Metric("aux", True)), headline=metric,
                protocol={"protocol": f"{name}-proto", "crop": "eigen"}, evaluate=lambda ctx, root: {},
                paper_task=name)


REGISTERED = {
    "nyud-depth-linear": _task("nyud-depth-linear", "depth", "rmse", False),
    "kitti-depth-linear": _task("kitti-depth-linear", "depth", "rmse", False, ok=False),
    "ade20k-seg-linear": _task("ade20k-seg-linear", "segmentation", "mIoU", True),
}

# (encoder, task, seed, {metric: value}); dinov3 has two seeds, and seed 0 of its depth run is logged
# twice (only the newest counts).
RUNS = [
    ("dinov3", "nyud-depth-linear", 0, {"rmse": 0.90}),  # superseded by the re-run below
    ("dinov3", "nyud-depth-linear", 0, {"rmse": 0.50, "aux": 1.0}),
    ("dinov3", "nyud-depth-linear", 1, {"rmse": 0.46, "aux": 2.0}),
    ("dinov3+sb", "nyud-depth-linear", 0, {"rmse": 0.40, "aux": 3.0}),
    (EVIL, "nyud-depth-linear", 0, {"rmse": 0.70, "aux": 0.5}),
    ("dinov3", "ade20k-seg-linear", 0, {"mIoU": 40.0}),
    ("dinov3", "ade20k-seg-linear", 1, {"mIoU": 42.0}),
    ("dinov3+sb", "ade20k-seg-linear", 0, {"mIoU": 39.0}),
    (EVIL, "ade20k-seg-linear", 0, {"mIoU": 45.0}),
    ("dinov3", "kitti-depth-linear", 0, {"rmse": 3.0}),
]


def log_task_run(tracker: Tracker, parent, encoder: str, task: Task, seed: int, metrics: dict[str, float]) -> str:
    """Log one child run exactly as `runners/benchmark.py` does (params, tags, metrics)."""
    params = {
        "encoder": encoder, "encoder_label": encoder, "backend": "test", "weights_id": "test-weights",
        "random_init": True, "task": task.name, "group": task.group, "seed": seed, "code_version": "test",
        "device": "cpu", "data_root": "/data", **{f"protocol.{k}": v for k, v in task.protocol.items()},
    }
    tags = {KIND_TAG: "task", "bench.protocol": task.protocol.get("protocol", ""),
            **{DIR_TAG + m.name: m.direction for m in task.metrics}}
    with tracker.run(f"{encoder}/{task.name}", parent=parent, tags=tags, params=params) as run:
        run.log_metrics(metrics)
        run.log_metrics({"wall_seconds": 1.5})
    return run.run_id


def populate_store(runs=RUNS, registered=REGISTERED) -> None:
    tracker = Tracker()
    with tracker.run("bench run fixture", tags={KIND_TAG: "benchmark"}, params={"seed": 0}) as parent:
        for enc, task, seed, metrics in runs:
            log_task_run(tracker, parent, enc, registered[task], seed, metrics)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("tables_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        populate_store()
        yield home


@pytest.fixture(scope="module")
def results(shared_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(shared_home))
        return tables.load_results()


def _row(grid, label):
    return next(r for r in grid.rows if r.label == label)


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
    assert paper.zoo_candidates("DINOv3+SimpleFT") == ()
    assert {(v.task, v.metric) for v in paper.paper_values()} <= set(paper.task_names())
    metric = {k: t.metric for k, t in paper.task_names().items()}
    assert metric[("nyud-depth-linear", "rmse")] == "rmse" and metric[("ade20k-seg-linear", "miou")] == "mIoU"
    assert metric[("imagenet-knn", "top1")] == "top1_k20" and metric[("imagenet-linear", "top1")] == "top1"
    assert metric[("roxford-retrieval", "map_hard")] == "mAP_hard" and metric[("met-retrieval", "gap")] == "GAP"
    assert metric[("amstertime-retrieval", "map")] == "mAP"


def test_mapped_zoo_names_exist_in_the_zoo():
    """A paper row's zoo name must be a registered encoder (or its +sb), unless the data says it is not
    in the zoo yet: a renamed zoo entry then fails here, and the fix is one CSV line."""
    from bench.encoders import ENCODERS, base_name

    known = set(ENCODERS.names())
    if not known - {"vit-tiny"}:
        pytest.skip("the encoder zoo has no pretrained entries in this checkout")
    missing = [(e.paper, e.zoo) for e in paper.encoder_names().values()
               if e.zoo and base_name(e.zoo) not in known and "not in the zoo yet" not in
               (e.note or paper.encoder_names().get(paper.sb_base(e.paper) or "", e).note)]
    assert not missing, f"encoder_names.csv names encoders the zoo does not have: {missing}"


def test_registered_paper_tasks_resolve_to_their_own_metrics():
    """Every registered task that names a paper task gets the paper's columns under its own metric names."""
    from tasks import TASKS

    linked = [TASKS.get(n) for n in TASKS.names() if TASKS.get(n).paper_task]
    for task in linked:
        cols = [k for k in paper.task_names() if k[0] == task.paper_task]
        assert cols, f"task {task.name}: paper task {task.paper_task!r} is not in task_map.csv"
        for ptask, pmetric in cols:
            got = paper.resolve_task(ptask, pmetric)
            assert got.task == task.name and got.group == task.group
            assert got.metric in {m.name for m in task.metrics}, (task.name, pmetric, got.metric)


def test_registry_paper_task_link_wins_over_the_csv_name():
    task = _task("my-nyu-linear", "depth", "rmse", False)
    object.__setattr__(task, "paper_task", "nyud-depth-linear")
    got = paper.resolve_task("nyud-depth-linear", "rmse", {"my-nyu-linear": task})
    assert (got.task, got.metric, got.group) == ("my-nyu-linear", "rmse", "depth")
    # an unregistered paper task keeps its mapped names
    got = paper.resolve_task("scanqa-vlr", "bleu1", {})
    assert (got.task, got.metric, got.group) == ("scanqa-vlr", "bleu1", "3d")


# ------------------------------------------------------------------ aggregation


def test_seeds_aggregate_to_mean_std_n_and_reruns_keep_the_newest(results):
    assert "wall_seconds" not in set(results["metric"])  # bookkeeping, no direction
    agg = tables.aggregate(results)
    m = agg[("dinov3", "nyud-depth-linear", "rmse")]
    assert m.n == 2 and m.seeds == (0, 1) and m.values == (0.50, 0.46)  # the 0.90 run was superseded
    assert math.isclose(m.mean, 0.48) and math.isclose(m.std, math.sqrt(2) * 0.02)
    assert m.protocol == "nyud-depth-linear-proto" and m.params["protocol.crop"] == "eigen"
    assert m.higher_is_better is False
    assert tables.fmt_measured(m, 3) == "0.480 ± 0.028 (n=2)"
    assert tables.fmt_measured(agg[("dinov3+sb", "nyud-depth-linear", "rmse")], 3) == "0.400"


# ------------------------------------------------------------------ measured table


def test_measured_table_cells_bold_by_direction_and_deltas(results):
    grid = tables.measured_grid(results, registered=REGISTERED)
    labels = [c.label for c in grid.columns]
    assert labels == ["kitti-depth-linear", "nyud-depth-linear", "ade20k-seg-linear"]  # depth before segmentation
    nyu, ade, kitti = labels.index("nyud-depth-linear"), labels.index("ade20k-seg-linear"), labels.index("kitti-depth-linear")
    base, sb, evil = _row(grid, "dinov3"), _row(grid, "dinov3+sb"), _row(grid, EVIL)
    assert [r.label for r in grid.rows].index("dinov3+sb") == [r.label for r in grid.rows].index("dinov3") + 1
    assert base.cells[nyu].text == "0.480 ± 0.028 (n=2)"
    assert base.cells[ade].text == "41.00 ± 1.41 (n=2)"
    # lower-is-better RMSE: the smallest is bold; higher-is-better mIoU: the largest is bold
    assert sb.cells[nyu].bold and not base.cells[nyu].bold and not evil.cells[nyu].bold
    assert evil.cells[ade].bold and not base.cells[ade].bold and not sb.cells[ade].bold
    delta = _row(grid, "Δ dinov3 → +sb")
    assert delta.kind == "delta"
    assert delta.cells[nyu].text == "-0.080 ✓" and delta.cells[nyu].good is True  # RMSE down = better
    assert delta.cells[ade].text == "-2.00 ✗" and delta.cells[ade].good is False  # mIoU down = worse
    # not run / missing data
    assert base.cells[kitti].text == "3.000" and not base.cells[kitti].bold  # a lone value is not bold
    assert sb.cells[kitti].text == tables.MISSING_DATA and sb.cells[kitti].kind == "missing-data"
    assert "BENCH_KITTI" in sb.cells[kitti].title


def test_measured_table_not_run_when_data_present(results):
    runs = results[~((results.encoder == EVIL) & (results.task == "ade20k-seg-linear"))]
    grid = tables.measured_grid(runs, registered=REGISTERED)
    ade = [c.label for c in grid.columns].index("ade20k-seg-linear")
    assert _row(grid, EVIL).cells[ade].text == tables.NOT_RUN
    assert _row(grid, "dinov3").cells[ade].bold  # 41.0 is now the best mIoU


def test_all_metrics_lists_every_metric(results):
    grid = tables.measured_grid(results, all_metrics=True, registered=REGISTERED)
    assert {c.label for c in grid.columns} == {"nyud-depth-linear:rmse", "nyud-depth-linear:aux",
                                               "ade20k-seg-linear:mIoU", "kitti-depth-linear:rmse"}


# ------------------------------------------------------------------ paper tables


def test_paper_table_1_measured_next_to_reported(results):
    grid = tables.paper_grid(1, results, registered=REGISTERED)
    assert grid.title.startswith("Table 1")
    groups = [c.group for c in grid.columns if c.sub == "paper"]
    assert groups == ["NYUd lin. ↓", "NYUd DPT ↓", "KITTI lin. ↓", "KITTI DPT ↓"]
    j = {(c.group.split(" ↓")[0], c.sub): i for i, c in enumerate(grid.columns)}
    d3, d3sb = _row(grid, "DINOv3"), _row(grid, "DINOv3+SB")
    assert d3.cells[j["NYUd lin.", "paper"]].text == "0.31"
    assert d3.cells[j["NYUd lin.", "ours"]].text == "0.480 ± 0.028 (n=2)"
    assert d3sb.cells[j["NYUd lin.", "ours"]].text == "0.400"
    assert d3.cells[j["KITTI lin.", "ours"]].text == "3.000"
    assert d3sb.cells[j["KITTI lin.", "ours"]].text == tables.MISSING_DATA  # registered, data absent
    assert d3.cells[j["NYUd DPT", "ours"]].text == tables.NOT_RUN  # not a registered task here
    assert _row(grid, "AIMv2").cells[j["NYUd lin.", "ours"]].text == tables.NOT_RUN
    # bold by direction, separately for paper and ours columns
    assert _row(grid, "PE-Core").cells[j["NYUd lin.", "paper"]].bold  # 0.25, tied with DINOv3+SB
    assert d3sb.cells[j["NYUd lin.", "paper"]].bold
    assert d3sb.cells[j["NYUd lin.", "ours"]].bold and not d3.cells[j["NYUd lin.", "ours"]].bold
    delta = _row(grid, "Δ DINOv3 → +SB")
    assert delta.cells[j["NYUd lin.", "paper"]].text == "-0.06 ✓"
    assert delta.cells[j["NYUd lin.", "ours"]].text == "-0.080 ✓"
    assert delta.cells[j["KITTI lin.", "ours"]].kind == "empty"


def test_paper_table_2_higher_is_better_and_table_4_note(results):
    grid = tables.paper_grid(2, results, registered=REGISTERED)
    j = next(i for i, c in enumerate(grid.columns) if c.group.startswith("ADE20K lin.") and c.sub == "ours")
    assert _row(grid, "DINOv3+SB").cells[j - 1].bold  # 59.7 is the best reported
    assert _row(grid, "DINOv3").cells[j].text == "41.00 ± 1.41 (n=2)"
    delta = _row(grid, "Δ DINOv3 → +SB")
    assert delta.cells[j].text == "-2.00 ✗" and delta.cells[j].good is False
    assert delta.cells[j - 1].text == "+3.8 ✓"
    md = tables.render_markdown(tables.paper_grid(4, results, registered=REGISTERED))
    assert "70.5 †" in md and "72.9" in md and "61.1 ± 3.4" in md


def test_every_paper_table_renders_in_every_format(results):
    for key in paper.table_keys():
        grid = tables.paper_grid(key, results, registered=REGISTERED)
        for name in ("markdown", "latex", "html"):
            assert tables.render(grid, name)


# ------------------------------------------------------------------ escaping


def test_html_escapes_run_data(results):
    out = tables.render(tables.measured_grid(results, registered=REGISTERED), "html")
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert re.search(r"<strong>0\.400</strong>", out)
    assert 'class="delta good"' in out or "good" in out


def test_latex_escapes_run_data_and_marks(results):
    out = tables.render(tables.measured_grid(results, registered=REGISTERED), "latex")
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}" in out
    assert "<script>" not in out
    assert r"\textbf{0.400}" in out
    assert r"\textcolor[rgb]{0,0.5,0}{-0.080 \checkmark{}}" in out
    assert r"\textcolor[rgb]{0.75,0,0}{-2.00 $\times$}" in out
    assert r"0.480 $\pm$ 0.028 (n=2)" in out
    assert tables.esc_latex("a_b & 50% #1 {x} ~^\\") == \
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"


def test_markdown_escapes_pipes_and_html():
    assert tables.esc_md("a|b <i>") == r"a\|b &lt;i&gt;"


# ------------------------------------------------------------------ CLI


def test_cli_table_commands(shared_home, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("BENCH_HOME", str(shared_home))
    assert main(["table"]) == 0
    out = capsys.readouterr().out
    assert "dinov3" in out and "&lt;script&gt;" in out and "(n=2)" in out
    target = tmp_path / "t1.tex"
    assert main(["table", "--paper", "1", "--format", "latex", "--out", str(target)]) == 0
    tex = target.read_text()
    assert "\\begin{tabular}" in tex and "DINOv3" in tex and "0.480 $\\pm$ 0.028 (n=2)" in tex
    assert main(["table", "--paper", "w3", "--format", "html", "--out", str(tmp_path / "w3.html")]) == 0
    assert "<table" in (tmp_path / "w3.html").read_text()
    assert main(["table", "--paper", "7"]) == 2  # unknown table: a clear error, no traceback
    assert "no paper table" in capsys.readouterr().err
    assert main(["table", "--list"]) == 0 and "w1" in capsys.readouterr().out
