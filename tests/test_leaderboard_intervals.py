"""Intervals and boards on the page and in `bench table`, from a fixture store whose runs carry
per-item scores (items.npz, as runners/execute.py writes them):

* every measured number carries its bootstrap interval, recomputed here from the same items;
* +SB deltas get a paired bootstrap interval: a clear gain is significant, a shuffled one is "n.s.";
* a random-init encoder that scores best is a marked reference row, never ranked (the bug of issue 15:
  it used to sit at overall rank 1); synthetic twins rank on their own board;
* in headless Chromium the interval text and the significance mark render.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import stats
from bench.data.sources import SyntheticData
from bench.metrics import Metric
from bench.task import ItemScores, TaskMeta
from leaderboard import site, tables
from tests.test_leaderboard_browser import _open, _page_data, browser, chromium  # noqa: F401 - fixtures
from tests.test_tables import CATALOG as BASE_CATALOG, _experiment, log_record, make_record

SYNTH = TaskMeta(name="synth-cls-knn", group="classification", description="twin", data=SyntheticData("cls"),
                 metrics=(Metric("top1_k20", True, "top-1", "%"),), headline="top1_k20", protocol="dino-knn",
                 twin_of="imagenet-knn")
CATALOG = {**BASE_CATALOG, "synth-cls-knn": SYNTH}
N = 300
RNG = np.random.default_rng(0)
BASE_HITS = (RNG.random(N) < 0.55).astype(float) * 100
SB_HITS = np.where(RNG.random(N) < 0.4, 100.0, BASE_HITS)  # a clear gain on the same items
SHUFFLED = np.roll(BASE_HITS, 7)  # same accuracy, unrelated items: not significant
RANDOM_HITS = np.full(N, 100.0)  # a random-init row that happens to score best


def _log(client, exp, parent, enc, task, metric, hits, **kw):
    rec = make_record(enc, task, 0, {metric: float(hits.mean())}, catalog=CATALOG, **kw)
    rid = log_record(client, exp, parent, rec, params={"random_init": str(kw.get("weights_id", "")).startswith("random")})
    from bench.store import ITEMS_FILE, write_items

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        write_items(Path(tmp) / ITEMS_FILE, {metric: ItemScores(hits / 100.0, "mean", 100.0)})
        client.log_artifact(rid, str(Path(tmp) / ITEMS_FILE))
    return rid


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri

    home = tmp_path_factory.mktemp("ci_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        client = MlflowClient(tracking_uri())
        exp = _experiment(client)
        parent = client.create_run(exp, run_name="fixture").info.run_id
        for task, metric in (("ade20k-seg-linear", "mIoU"), ("synth-cls-knn", "top1_k20")):
            _log(client, exp, parent, "dinov3", task, metric, BASE_HITS)
            _log(client, exp, parent, "dinov3+sb", task, metric, SB_HITS if task != "synth-cls-knn" else SHUFFLED)
            _log(client, exp, parent, "vit-tiny", task, metric, RANDOM_HITS, weights_id="random-init(seed=0)",
                 encoder_label="vit-tiny [random-init]")
        from bench.store import read_records

        records = read_records()
        index = site.build_site(home / "site", records=records, catalog=CATALOG)
        grid = tables.measured_grid(records, catalog=CATALOG)
        yield index, grid


def _entry(data, name):
    return next(e for e in data["entries"] if e["source"] == "measured" and e["name"] == name)


def test_every_number_carries_the_bootstrap_interval_of_its_items(board):
    index, grid = board
    data = _page_data(index.read_text())
    cell = _entry(data, "dinov3")["cells"]["ade20k-seg-linear:mIoU"]
    want = stats.bootstrap_ci(BASE_HITS / 100.0)
    assert (cell["lo"], cell["hi"]) == pytest.approx((100 * want.lo, 100 * want.hi))
    assert cell["text"] == f"{BASE_HITS.mean():.1f} [{100 * want.lo:.1f}, {100 * want.hi:.1f}]"
    assert "bootstrap over 300 test items" in cell["ci_method"]
    row = next(r for r in grid.rows if r.label == "dinov3")
    assert all("[" in c.text for c in row.cells if c.kind == "value")  # and in `bench table`
    assert "bootstrap" in data["interval_method"] and "paired" in data["interval_method"]
    assert 'id="interval-method"' in index.read_text()


def test_sb_deltas_get_a_paired_interval_and_a_significance_mark(board):
    index, grid = board
    data = _page_data(index.read_text())
    sb = _entry(data, "dinov3+sb")
    gain, flat = sb["cells"]["ade20k-seg-linear:mIoU"]["delta_ci"], sb["cells"]["synth-cls-knn:top1_k20"]["delta_ci"]
    want = stats.paired_bootstrap_delta(BASE_HITS / 100, SB_HITS / 100)
    assert gain["significant"] is True and gain["lo"] == pytest.approx(100 * want.lo) and gain["lo"] > 0
    assert flat["significant"] is False and flat["lo"] < 0 < flat["hi"]
    html = index.read_text()
    assert 'data-significant="yes"' in html and 'data-significant="no"' in html
    delta = next(r for r in grid.rows if r.kind == "delta")
    texts = [c.text for c in delta.cells if c.kind == "delta"]
    assert any("✓ [" in t for t in texts) and any(" n.s. [" in t for t in texts)


def test_random_init_is_a_reference_row_and_twins_have_their_own_board(board):
    index, _ = board
    data = _page_data(index.read_text())
    tiny = _entry(data, "vit-tiny")
    assert tiny["reference"] == "random init" and not tiny["rank"] and not tiny["ranks"]  # best values, never ranked
    assert _entry(data, "dinov3+sb")["rank"]["overall"] == 1  # among the encoders
    boards = {c["id"]: c["board"] for c in data["columns"]}
    assert boards["synth-cls-knn:top1_k20"] == "synthetic" and boards["ade20k-seg-linear:mIoU"] == "paper"
    assert _entry(data, "dinov3")["coverage"]["overall"] == 1  # the paper board: ADE20K only, not the twin
    assert "synthetic:overall" in _entry(data, "dinov3")["rank"]
    html = index.read_text()
    assert 'id="section-overall-synthetic"' in html and "reference: random init" in html


def test_browser_renders_intervals_and_the_significance_mark(browser, board):
    index, _ = board
    cdp = browser
    _open(cdp, index)
    text = cdp.eval("""document.querySelector('#table-segmentation tr[data-encoder="dinov3"] td[data-col="ade20k-seg-linear:mIoU"] .v').textContent""")
    assert text.count("[") == 1 and "," in text
    ns = cdp.eval("""(() => { const d = document.querySelector('.delta[data-significant="no"]');
        return d && d.offsetParent !== null ? d.textContent : null; })()""")
    assert ns is not None and "n.s." in ns
    sig = cdp.eval("""document.querySelector('.delta[data-significant="yes"]').textContent""")
    assert "✓" in sig and "[" in sig
    ref = cdp.eval("""document.querySelector('#table-overall tr[data-encoder="vit-tiny"] td.rank').textContent""")
    assert ref.strip() == "ref."
    cdp.click('#table-segmentation tr[data-encoder="dinov3+sb"] td[data-col="ade20k-seg-linear:mIoU"]')
    detail = cdp.eval("document.getElementById('detail-body').textContent")
    assert "95% interval[" in detail and "bootstrap over 300 test items" in detail
    assert "+SB delta interval" in detail and "paired bootstrap" in detail and "; significant)" in detail


def test_robot_intervals_come_from_the_protocol_seeds_in_the_breakdown():
    from leaderboard.intervals import cell_interval, delta_interval, robot_seed_values

    breakdown = {"env:pen/seed:0": {"success": 50.0}, "env:relocate/seed:0": {"success": 70.0},
                 "env:pen/seed:1": {"success": 60.0}, "env:relocate/seed:1": {"success": 90.0},
                 "env:pen/seed:2": {"success": 55.0}, "env:relocate/seed:2": {"success": 80.0},
                 "env:pen": {"success": 55.0}}  # the per-env means are not seeds
    per_seed = robot_seed_values(breakdown, "success")
    assert per_seed == [60.0, 75.0, 67.5]  # mean over environments, per protocol seed
    ci = cell_interval("success", (0,), (67.5,), [None], per_seed)
    want = stats.seed_interval(per_seed)
    assert ci.method == "t over 3 protocol seeds" and (ci.lo, ci.hi) == pytest.approx((want.lo, want.hi))
    # without items, a delta over common run seeds is a paired t; with one common seed, none
    a = cell_interval("x", (0, 1, 2), (1.0, 2.0, 3.0), [None] * 3)
    b = cell_interval("x", (0, 1, 2), (1.5, 2.6, 3.4), [None] * 3)
    d = delta_interval(a, b)
    assert d.significant is True and d.method == "paired t over 3 seeds" and d.lo > 0
    assert delta_interval(a, cell_interval("x", (0,), (9.0,), [None])).significant is None


def test_met_gap_cell_gets_a_bootstrap_interval_recomputing_gap_per_resample():
    from bench.metrics.retrieval import gap_items
    from leaderboard.intervals import cell_interval, delta_interval

    from tests.test_stats import MET_CONF, MET_PRED, MET_TRUE

    rows = gap_items(MET_PRED, MET_CONF, MET_TRUE)
    gap = 100 * stats.item_statistic("gap")(rows)
    one = cell_interval("GAP", (0,), [gap], [ItemScores(rows, "gap", 100.0)])
    ref = stats.bootstrap_ci(rows, stats.item_statistic("gap"))
    assert (one.lo, one.hi) == pytest.approx((100 * ref.lo, 100 * ref.hi)) and one.lo < gap < one.hi
    assert one.method == "bootstrap over 8 test items"
    # two seeds of one series: each resample takes the same queries from both, GAP averaged over seeds
    worse = rows.copy()
    worse[:2, 0] = -5  # seed 1 gets its two most confident queries wrong
    two = cell_interval("GAP", (0, 1), [gap, 100 * stats.item_statistic("gap")(worse)],
                        [ItemScores(rows, "gap", 100.0), ItemScores(worse, "gap", 100.0)])
    assert two.method == "bootstrap over 8 test items, 2 seeds" and two.lo < two.hi
    d = delta_interval(cell_interval("GAP", (0,), [0.0], [ItemScores(worse, "gap", 100.0)]), one)
    assert d.method == "paired bootstrap over 8 test items" and d.lo is not None
