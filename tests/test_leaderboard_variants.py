"""A small protocol variant is never set beside a paper number as if it were the same (issue 10):
robot runs with `protocol.protocol=small` are labelled with it in `bench table`, marked (‡, never bold,
no delta against a paper-protocol run) in `bench table --paper 4`, and on the page they get their own
column with a variant badge while the paper's numbers stay in a column of the paper's protocol. A
suite aggregate inherits its members' variant, and its 95% interval comes from its members' protocol
seeds, averaged seed by seed. Records are built in memory (no store, no task code)."""
from __future__ import annotations

import pytest

from bench import stats
from bench.results import MetricValue, ResultRecord
from leaderboard import site, tables
from leaderboard.grid import VARIANT_MARK, protocol_deviation

MEMBERS = ("cortexbench-metaworld-assembly", "cortexbench-metaworld-drawer-open")
# protocol seed -> success of each member (per env, one env per member task)
SUCCESS = {"cortexbench-metaworld-assembly": {100: 40.0, 200: 60.0}, "cortexbench-metaworld-drawer-open": {100: 80.0, 200: 100.0}}


@pytest.fixture(autouse=True)
def _no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))  # any store lookup finds an empty one, never a real one
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _robot(encoder: str, protocol: str, scale: float = 1.0, start: int = 1) -> list[ResultRecord]:
    recs = []
    for task in MEMBERS:
        env = task.rsplit("-", 1)[-1] if task.endswith("assembly") else "drawer-open"
        seeds = {s: v * scale for s, v in SUCCESS[task].items()}
        recs.append(ResultRecord(
            encoder, task, 0, {"success": MetricValue(sum(seeds.values()) / 2, True, unit="%")}, "success",
            weights_id="w", group="robot", protocol="cortexbench-bc", config_hash=f"cfg-{protocol}",
            breakdown={f"env:{env}/seed:{s}": {"success": v} for s, v in seeds.items()},
            params={"protocol.protocol": protocol}, run_id=f"{encoder}-{task}-{protocol}", start_time=start))
    suite = {t: r.metrics["success"].value for t, r in zip(MEMBERS, recs)}
    recs.append(ResultRecord(
        encoder, "cortexbench-metaworld", 0, {"success_rate": MetricValue(sum(suite.values()) / 2, True, unit="%")},
        "success_rate", weights_id="w", group="robot", kind="aggregate", config_hash=f"agg-{protocol}",
        breakdown={f"member:{t}": {"success_rate": v} for t, v in suite.items()},
        params={"members": ",".join(MEMBERS)}, run_id=f"{encoder}-suite-{protocol}", start_time=start))
    return recs


def test_the_deviation_rule():
    assert protocol_deviation({"protocol.protocol": "small"}) == "protocol=small"
    assert protocol_deviation({"protocol.protocol": "paper", "protocol.variant": "faithful"}) == ""
    assert protocol_deviation({"protocol.variant": "fast"}) == "variant=fast" and protocol_deviation({}) == ""


def test_suite_interval_comes_from_its_members_protocol_seeds():
    from leaderboard.measured import aggregate

    got = aggregate(_robot("dinov3", "small"), item_source=None)
    suite = next(m for (s, name), m in got.items() if s.task == "cortexbench-metaworld")
    per_seed = [(40 + 80) / 2, (60 + 100) / 2]  # the suite score of each protocol seed
    want = stats.seed_interval(per_seed)
    assert suite.ci_method == "t over 2 protocol seeds" and (suite.lo, suite.hi) == pytest.approx((want.lo, want.hi))
    assert suite.deviation == "protocol=small"  # inherited from its members
    member = next(m for (s, name), m in got.items() if s.task == MEMBERS[0])
    assert member.ci_method == "t over 2 protocol seeds" and member.deviation == "protocol=small"


def test_small_variant_is_marked_in_bench_table_and_beside_paper_table_4():
    records = _robot("dinov3", "small") + _robot("dinov3+sb", "small", 1.1)
    grid = tables.measured_grid(records)
    labels = [c.label for c in grid.columns]
    assert "cortexbench-metaworld (protocol=small)" in labels
    paper4 = tables.paper_grid(4, records)
    j = next(i for i, c in enumerate(paper4.columns) if c.label == "MetaWorld" and c.sub == "ours")
    row = next(r for r in paper4.rows if r.label == "DINOv3")
    cell = row.cells[j]
    assert cell.text.endswith(VARIANT_MARK) and cell.kind == "variant" and not cell.bold
    assert cell.title.startswith("protocol=small: not the paper's protocol")
    assert any(n.startswith(f"{VARIANT_MARK} DINOv3, MetaWorld: measured with protocol=small") for n in paper4.notes)
    ours = [r.cells[j] for r in paper4.rows if r.kind == "encoder"]
    assert not any(c.bold for c in ours)  # a small-variant number is never "best" next to the paper's
    # a paper-protocol run of the same encoder is preferred over the small one when both exist
    both = tables.paper_grid(4, records + _robot("dinov3", "paper", 0.9, start=0))
    cell = next(r for r in both.rows if r.label == "DINOv3").cells[j]
    assert VARIANT_MARK not in cell.text and cell.kind == "value" and "other measured variants" in cell.title
    # a +SB delta between different protocol variants is not computed
    mixed = tables.paper_grid(4, _robot("dinov3", "paper") + _robot("dinov3+sb", "small", 1.1))
    delta = next(r for r in mixed.rows if r.kind == "delta" and r.label.startswith("Δ DINOv3 "))
    assert delta.cells[j].kind == "empty" and delta.cells[j - 1].kind == "delta"  # the paper's own delta stays


def test_page_keeps_paper_numbers_out_of_a_small_variant_column():
    data = site.build_data(_robot("dinov3", "small"), generated="test")
    small = next(c for c in data["columns"] if c["task"] == "cortexbench-metaworld" and c["deviation"])
    assert small["deviation"] == "protocol=small" and "protocol=small" in small["label"]
    paper_col = next(c for c in data["columns"] if c["task"] == "cortexbench-metaworld" and not c["deviation"])
    assert paper_col["id"] != small["id"]
    paper_rows = [e for e in data["entries"] if e["source"] == "paper"]
    assert any(paper_col["id"] in e["cells"] for e in paper_rows)
    assert not any(small["id"] in e["cells"] for e in paper_rows)
    measured = next(e for e in data["entries"] if e["source"] == "measured")
    assert measured["cells"][small["id"]]["deviation"] == "protocol=small"
    html = site.render_page(site._clean(data), None)
    assert 'class="badge variant"' in html and "not the paper's protocol" in html
