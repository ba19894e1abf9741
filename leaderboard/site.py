"""The static leaderboard: one self-contained index.html (tables, SVG plots, inline JSON data, plain JS).

`build_site()` reads every finished task run from the store (`bench.store.read_records`) plus the
paper's reported numbers and writes `index.html` (+ `data.json`, the same data for reuse). Columns,
rows, aggregation by identity and the best / delta / data-status rules are the tables' own
(`leaderboard/measured.py`, `leaderboard/grid.py`); this module builds the page's data and ranks,
`leaderboard/page.py` draws it. Nothing is loaded from the network and no server is needed (file://
works); `serve()` is only a convenience. A new encoder appears by being evaluated: the page is built
from run data alone.

Ranking: within each source (measured runs, paper numbers) and for each task column, entries are
ranked by the task's headline metric in its direction (1 = best; ties share the average rank);
an entry's group score is the mean of its ranks over the group's columns it has, and its overall
score the mean over all columns it has (with the number of columns it was ranked on).
"""
from __future__ import annotations

import datetime as _dt
import functools
import http.server
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from leaderboard import paper
from leaderboard.grid import (best_flags, data_status, decimals_for, fmt, fmt_stats, group_label, group_rank,
                              sb_base, short_id, task_catalog)
from leaderboard.measured import Layout, RowKey, measured_layout, measured_title
from leaderboard.page import SOURCES, json_for_html, render_page, svg_bars

RANK_METHOD = (
    "Mean rank. For each task column, entries of the same source (measured runs among measured runs, paper "
    "numbers among paper numbers) are ranked by the task's headline metric in its direction (1 = best; ties "
    "share the average rank). A group's score is an entry's mean rank over the group's columns it has a value "
    "for; the overall score is its mean rank over all columns it has a value for. Lower is better; the "
    "number of columns an entry was ranked on is shown, since a mean over fewer tasks is less certain.")
SHOWN_PARAMS = ("encoder_label", "weights_id", "random_init", "synth_preset", "code_version", "device", "config_hash",
                "task_version")


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------

def _column_order() -> dict[tuple[str, str], int]:
    return {(t.task, t.metric): i for i, t in enumerate(paper.task_names().values())}


def _cell_data(m, decimals: int) -> dict[str, Any]:
    s = m.series
    return {
        "mean": _finite(m.mean), "std": _finite(m.std), "n": m.n, "text": fmt_stats(m.mean, m.std, m.n, decimals),
        "values": [_finite(v) for v in m.values], "seeds": list(m.seeds), "run_ids": list(m.run_ids),
        "run_seeds": list(m.run_seeds), "protocol": m.protocol, "task_version": s.task_version,
        "config_hash": s.config_hash, "weights": [short_id(w) for w in m.weights_ids],
        "params": {k: v for k, v in sorted(m.params.items()) if k.startswith("protocol.") or k in SHOWN_PARAMS},
        "title": measured_title(m),
    }


def _other_metrics(records, catalog) -> list[dict[str, Any]]:
    """Reference and diagnostic numbers (floors, selection scores): listed apart, never ranked."""
    if not records:
        return []
    layout = measured_layout(records, catalog, "all")
    out = []
    for c in layout.columns:
        if c.role == "score":
            continue
        dec = decimals_for(c.unit, [m.mean for (_, ck), m in layout.cells.items() if ck == c.key])
        for r in layout.rows:
            m = layout.get(r.key, c.key)
            if m is not None:
                out.append({"encoder": r.label, "task": c.key.task, "metric": c.key.metric, "variant": c.variant,
                            "role": c.role, "higher_is_better": c.higher_is_better, "unit": c.unit,
                            "text": fmt_stats(m.mean, m.std, m.n, dec), "mean": _finite(m.mean), "n": m.n,
                            "run_ids": list(m.run_ids), "title": measured_title(m)})
    return out


def build_data(records: Sequence[Any] | None, catalog: Mapping[str, Any] | None = None,
               generated: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data (`records`: `bench.store.read_records()`)."""
    catalog = task_catalog() if catalog is None else catalog
    records = list(records or [])
    layout = measured_layout(records, catalog, "headline") if records else Layout([], [], {})
    order = _column_order()
    columns: dict[str, dict[str, Any]] = {}
    current: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}  # (task, metric) -> newest variant's id

    def add_column(cid: str, task: str, metric: str, group: str, hib: bool | None, label: str, **extra: Any) -> str:
        if cid not in columns:
            meta = catalog.get(task)
            columns[cid] = {"id": cid, "task": task, "metric": metric, "group": group or "other",
                            "higher_is_better": hib, "label": label, "synthetic": bool(getattr(meta, "synthetic", False)),
                            "order": order.get((task, metric), 10_000), "unit": "", "variant": "", "decimals": None,
                            **extra}
        return cid

    # Measured columns: each measured task's headline metric (one per task version / config).
    mapped_label = {t.task: t.label for t in reversed(list(paper.task_names().values()))}
    for c in layout.columns:
        label = mapped_label.get(c.key.task, c.key.task) + (f" ({c.variant})" if c.variant else "")
        values = [m.mean for (_, ck), m in layout.cells.items() if ck == c.key]
        add_column(c.id, c.key.task, c.key.metric, c.group, c.higher_is_better, label, unit=c.unit,
                   variant=c.variant, decimals=decimals_for(c.unit, values), title=c.title)
        rank = (c.key.task_version, c.newest)
        if current.get((c.key.task, c.key.metric), ((0, -1), ""))[0] < rank:
            current[(c.key.task, c.key.metric)] = (rank, c.id)
    # Paper columns: the paper's headline columns, mapped to our names (into the newest measured variant).
    resolved = {}
    for v in paper.paper_values():
        key = (v.task, v.metric)
        if key not in resolved:
            resolved[key] = paper.resolve_task(v.task, v.metric, catalog)
        ours = resolved[key]
        if ours.headline:
            cid = current.get((ours.task, ours.metric), (None, f"{ours.task}:{ours.metric}"))[1]
            add_column(cid, ours.task, ours.metric, ours.group, v.higher_is_better, ours.label)

    entries: list[dict[str, Any]] = []
    ids: dict[RowKey, int] = {}
    for r in layout.rows:  # measured entries: one per (encoder, weights)
        cells = {}
        for c in layout.columns:
            m = layout.get(r.key, c.key)
            if m is not None:
                cells[c.id] = _cell_data(m, columns[c.id]["decimals"])
        ids[r.key] = len(entries)
        entries.append({"name": r.key.encoder, "label": r.label, "source": "measured", "title": r.title,
                        "weights": short_id(r.key.weights), "base": r.base.encoder if r.base else None,
                        "base_key": r.base, "cells": cells})
    # Paper entries: one per paper row name; a value from the first table it appears in (Table 4 before 8).
    tables_order = {k: i for i, k in enumerate(paper.table_keys())}
    by_name: dict[str, dict[str, Any]] = {}
    for v in sorted(paper.paper_values(), key=lambda v: tables_order[v.table]):
        ours = resolved[(v.task, v.metric)]
        if not ours.headline:
            continue
        cid = current.get((ours.task, ours.metric), (None, f"{ours.task}:{ours.metric}"))[1]
        entry = by_name.setdefault(v.encoder, {
            "name": v.encoder, "label": v.encoder, "source": "paper", "base": sb_base(v.encoder),
            "zoo": (paper.zoo_candidates(v.encoder) or ("",))[0], "cells": {}, "tables": []})
        tname = ("Workshop " if v.table.startswith("w") else "") + f"Table {v.table.lstrip('w')}"
        if tname not in entry["tables"]:
            entry["tables"].append(tname)
        cell = entry["cells"].get(cid)
        if cell is None:
            text = fmt(v.value, v.decimals) + (f" ± {fmt(v.std, v.decimals)}" if v.std is not None else "")
            entry["cells"][cid] = {
                "mean": v.value, "std": v.std, "text": text, "table": tname, "source": v.source,
                "note": v.note, "decimals": v.decimals, "also": [],
                "title": f"paper, {tname} ({v.source}): {v.task} / {v.metric}" + (f"; {v.note}" if v.note else ""),
            }
        else:
            cell["also"].append({"table": tname, "value": v.value})
            if not math.isclose(cell["mean"], v.value):
                cell["title"] += f"; {tname} reports {fmt(v.value, v.decimals)} (kept: first table)"
    entries.extend(by_name.values())
    for i, e in enumerate(entries):
        e["id"] = f"e{i}"
    paper_ids = {e["name"]: e["id"] for e in entries if e["source"] == "paper"}
    for e in entries:  # the base entry of each +SB entry (same source), by id
        key = e.pop("base_key", None)
        e["base_id"] = (f"e{ids[key]}" if key in ids else None) if e["source"] == "measured" \
            else paper_ids.get(e["base"] or "")

    cols = sorted(columns.values(), key=lambda c: (group_rank(c["group"]), c["order"], c["task"], c["id"]))
    _rank(entries, cols)
    groups = sorted({c["group"] for c in cols}, key=group_rank)
    return {
        "title": "SpatialBoost benchmark leaderboard",
        "generated": generated or _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "rank_method": RANK_METHOD,
        "groups": [{"id": g, "label": group_label(g)} for g in groups],
        "columns": cols,
        "entries": entries,
        "status": {c["id"]: _column_status(c["task"], catalog) for c in cols},
        "other_metrics": _other_metrics(records, catalog),
        "notes": layout.notes,
    }


def _column_status(task: str, catalog: Mapping[str, Any]) -> dict[str, Any]:
    st = data_status(task, catalog)
    return {"registered": st.known, "data": st.present, "where": st.where}


def _average_ranks(values: list[tuple[int, float]], higher_is_better: bool) -> dict[int, float]:
    ordered = sorted(values, key=lambda iv: -iv[1] if higher_is_better else iv[1])
    ranks: dict[int, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and math.isclose(ordered[j + 1][1], ordered[i][1], rel_tol=1e-12, abs_tol=1e-12):
            j += 1
        for k in range(i, j + 1):
            ranks[ordered[k][0]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _rank(entries: list[dict[str, Any]], cols: list[dict[str, Any]]) -> None:
    for e in entries:
        e["ranks"], e["rank"], e["coverage"] = {}, {}, {}
    for source in SOURCES:
        members = [(i, e) for i, e in enumerate(entries) if e["source"] == source]
        for col in cols:
            vals = [(i, e["cells"][col["id"]]["mean"]) for i, e in members
                    if col["id"] in e["cells"] and e["cells"][col["id"]]["mean"] is not None]
            if not vals or col["higher_is_better"] is None:
                continue
            for i, r in _average_ranks(vals, bool(col["higher_is_better"])).items():
                entries[i]["ranks"][col["id"]] = r
            for (i, _), best in zip(vals, best_flags([v for _, v in vals], bool(col["higher_is_better"]))):
                if best:  # the one best-value rule of every report (leaderboard/grid.py)
                    entries[i]["cells"][col["id"]]["best"] = True
    for e in entries:
        for group in {c["group"] for c in cols} | {"overall"}:
            rs = [e["ranks"][c["id"]] for c in cols if c["id"] in e["ranks"] and group in (c["group"], "overall")]
            if rs:
                e["rank"][group] = sum(rs) / len(rs)
                e["coverage"][group] = len(rs)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def default_out() -> Path:
    from bench.paths import bench_home

    return bench_home() / "leaderboard"


def build_site(out: str | Path | None = None, records: Sequence[Any] | None = None,
               catalog: Mapping[str, Any] | None = None) -> Path:
    """Write index.html and data.json to `out` (default BENCH_HOME/leaderboard); returns index.html.
    `records` default to `bench.store.read_records()`; `catalog` to `tasks.catalog()`."""
    from bench.io import atomic_path

    out = Path(out) if out is not None else default_out()
    if records is None:
        from bench.store import read_records

        records = read_records()
    catalog = task_catalog() if catalog is None else catalog
    data = _clean(build_data(records, catalog))
    page = render_page(data, catalog)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "data.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    for name in ("data.json", "index.html"):
        (out / name).chmod(0o644)  # a static site is meant to be read (atomic temp files are 0600)
    return out / "index.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise here
        pass


def make_server(directory: str | Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An http.server for the site folder (port 0 picks a free port: see `server_address`)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(directory: str | Path, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve the built site until interrupted (a convenience: file:// works as well)."""
    with make_server(directory, port, host) as httpd:
        print(f"leaderboard at http://{host}:{httpd.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


__all__ = ["RANK_METHOD", "build_data", "build_site", "json_for_html", "make_server", "render_page", "serve",
           "svg_bars"]
