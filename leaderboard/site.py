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
from leaderboard.intervals import delta_interval
from leaderboard.measured import Layout, RowKey, measured_layout, measured_title
from leaderboard.tables import INTERVAL_METHOD
from leaderboard.page import SOURCES, board_key, json_for_html, render_page, svg_bars

RANK_METHOD = (
    "Mean rank. For each task column, encoders of the same source (measured runs among measured runs, paper "
    "numbers among paper numbers) are ranked by the task's headline metric in its direction (1 = best; ties "
    "share the average rank). Reference rows (random init, experts, chance) are shown, marked, and never "
    "ranked. A group's and the overall score is the mean rank over only the columns that every ranked entry "
    "of that source ran under the same protocol variant (task version and config); the coverage shown is "
    "k/N = columns ranked on / columns with any result. A measured column of a small protocol variant "
    "(e.g. robot protocol=small) is labelled with it, its cells carry the variant's badge, and paper numbers "
    "are never put in it. Synthetic twins rank on their own board, never beside the paper's tasks. Lower is "
    "better.")
BOARDS = ("paper", "synthetic")
BOARD_LABELS = {"paper": "Paper tasks", "synthetic": "Synthetic twins (not comparable with paper numbers)"}
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
        "mean": _finite(m.mean), "std": _finite(m.std), "n": m.n,
        "text": fmt_stats(m.mean, m.std, m.n, decimals, m.lo, m.hi), "lo": _finite(m.lo), "hi": _finite(m.hi),
        "ci_method": m.ci_method,
        "values": [_finite(v) for v in m.values], "seeds": list(m.seeds), "run_ids": list(m.run_ids),
        "run_seeds": list(m.run_seeds), "protocol": m.protocol, "task_version": s.task_version,
        "config_hash": s.config_hash, "weights": [short_id(w) for w in m.weights_ids],
        "params": {k: v for k, v in sorted(m.params.items()) if k.startswith("protocol.") or k in SHOWN_PARAMS},
        "deviation": m.deviation,
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
                            "text": fmt_stats(m.mean, m.std, m.n, dec, m.lo, m.hi), "mean": _finite(m.mean), "n": m.n,
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
                            "deviation": "",
                            **extra}
        return cid

    # Measured columns: each measured task's headline metric (one per task version / config).
    mapped_label = {t.task: t.label for t in reversed(list(paper.task_names().values()))}
    for c in layout.columns:
        label = mapped_label.get(c.key.task, c.key.task) + (f" ({c.variant})" if c.variant else "")
        values = [m.mean for (_, ck), m in layout.cells.items() if ck == c.key]
        deviation = ", ".join(sorted({m.deviation for (_, ck), m in layout.cells.items() if ck == c.key} - {""}))
        add_column(c.id, c.key.task, c.key.metric, c.group, c.higher_is_better, label, unit=c.unit,
                   variant=c.variant, decimals=decimals_for(c.unit, values), title=c.title, deviation=deviation)
        if deviation:  # a small protocol variant: paper numbers never share its column
            continue
        rank = (c.key.task_version, c.newest)
        if current.get((c.key.task, c.key.metric), ((0, -1), ""))[0] < rank:
            current[(c.key.task, c.key.metric)] = (rank, c.id)
    def paper_column(task: str, metric: str) -> str:
        """The newest measured paper-protocol variant's column, else a column of the paper's own."""
        if (task, metric) in current:
            return current[(task, metric)][1]
        cid = f"{task}:{metric}"
        return cid + "@paper" if columns.get(cid, {}).get("deviation") else cid

    # Paper columns: the paper's headline columns, mapped to our names (into the newest measured variant
    # run under the paper's protocol; a small variant's column never holds paper numbers).
    resolved = {}
    for v in paper.paper_values():
        key = (v.task, v.metric)
        if key not in resolved:
            resolved[key] = paper.resolve_task(v.task, v.metric, catalog)
        ours = resolved[key]
        if ours.headline:
            cid = paper_column(ours.task, ours.metric)
            add_column(cid, ours.task, ours.metric, ours.group, v.higher_is_better, ours.label)

    entries: list[dict[str, Any]] = []
    ids: dict[RowKey, int] = {}
    for r in layout.rows:  # measured entries: one per (encoder, weights)
        cells, reference = {}, ""
        for c in layout.columns:
            m = layout.get(r.key, c.key)
            if m is not None:
                cells[c.id] = _cell_data(m, columns[c.id]["decimals"])
                reference = reference or _reference_kind(r.key.encoder, m)
                b = layout.get(r.base, c.key) if r.base is not None else None
                if b is not None:
                    d = delta_interval(b.interval, m.interval)
                    cells[c.id]["delta_ci"] = {"lo": d.lo, "hi": d.hi, "significant": d.significant,
                                               "method": d.method}
        ids[r.key] = len(entries)
        entries.append({"name": r.key.encoder, "label": r.label, "source": "measured", "title": r.title,
                        "weights": short_id(r.key.weights), "base": r.base.encoder if r.base else None,
                        "base_key": r.base, "cells": cells, "reference": reference})
    # Paper entries: one per paper row name; a value from the first table it appears in (Table 4 before 8).
    tables_order = {k: i for i, k in enumerate(paper.table_keys())}
    by_name: dict[str, dict[str, Any]] = {}
    for v in sorted(paper.paper_values(), key=lambda v: tables_order[v.table]):
        ours = resolved[(v.task, v.metric)]
        if not ours.headline:
            continue
        cid = paper_column(ours.task, ours.metric)
        entry = by_name.setdefault(v.encoder, {
            "name": v.encoder, "label": v.encoder, "source": "paper", "base": sb_base(v.encoder),
            "reference": _reference_kind(v.encoder, None),
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

    for c in columns.values():  # synthetic twins rank on their own board, never beside paper tasks
        c["board"] = "synthetic" if c["synthetic"] else "paper"
    cols = sorted(columns.values(), key=lambda c: (c["board"] == "synthetic", group_rank(c["group"]), c["order"],
                                                   c["task"], c["id"]))
    _rank(entries, cols)
    groups = sorted({c["group"] for c in cols}, key=group_rank)
    return {
        "title": "SpatialBoost benchmark leaderboard",
        "generated": generated or _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "rank_method": RANK_METHOD,
        "interval_method": INTERVAL_METHOD,
        "boards": [{"id": b, "label": BOARD_LABELS[b]} for b in BOARDS if any(c["board"] == b for c in cols)],
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


def _reference_kind(name: str, m) -> str:
    """Why an entry is a reference row ("random init", "expert", "chance") or "" for an encoder."""
    low = name.lower()
    if m is not None and (str(m.params.get("random_init", "")).lower() == "true"
                          or str(m.weights_ids[0] if m.weights_ids else "").startswith("random-init")):
        return "random init"
    for word in ("expert", "chance", "oracle"):
        if word in low:
            return word
    return ""


def _rank(entries: list[dict[str, Any]], cols: list[dict[str, Any]]) -> None:
    """Per-column ranks among the encoders of one source (reference rows never ranked); a group's and
    the overall rank only over the columns that *every* ranked entry of the source has (column ids
    carry the task version / config, so that is the same protocol variant), with the coverage."""
    for e in entries:
        e["ranks"], e["rank"], e["coverage"], e["coverage_of"] = {}, {}, {}, {}
    for source in SOURCES:
        members = [(i, e) for i, e in enumerate(entries) if e["source"] == source and not e.get("reference")]
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
        for board in BOARDS:
            bcols = [c for c in cols if c["board"] == board]
            for group in {c["group"] for c in bcols} | {"overall"}:
                gcols = [c for c in bcols if group in (c["group"], "overall")]
                ran = [c for c in gcols if any(c["id"] in e["ranks"] for _, e in members)]
                common = [c for c in ran if all(c["id"] in e["ranks"] for _, e in members)]
                key = board_key(board, group)
                for _, e in members:
                    e["coverage_of"][key] = len(ran)
                    if common:
                        e["rank"][key] = sum(e["ranks"][c["id"]] for c in common) / len(common)
                        e["coverage"][key] = len(common)


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
