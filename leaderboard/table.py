"""Tidy results -> an encoder x task table of headline metrics, with base -> +SB deltas."""
from __future__ import annotations

import pandas as pd

SB = "+sb"


def headline_table(results: pd.DataFrame, headlines: dict[str, str]) -> pd.DataFrame:
    """Rows: encoders; columns: `task:metric` for each task's headline; mean over seeds."""
    if results.empty:
        return pd.DataFrame()
    keep = results[[headlines.get(t) == m for t, m in zip(results["task"], results["metric"])]]
    if keep.empty:
        return pd.DataFrame()
    table = keep.assign(column=keep["task"] + ":" + keep["metric"]).pivot_table(
        index="encoder", columns="column", values="value", aggfunc="mean")
    return table.sort_index()


def with_deltas(table: pd.DataFrame) -> pd.DataFrame:
    """Add a `NAME+sb (delta)` row under each boosted encoder whose base is in the table."""
    rows = []
    for name in table.index:
        rows.append(table.loc[name].rename(name))
        if name.endswith(SB) and name[: -len(SB)] in table.index:
            rows.append((table.loc[name] - table.loc[name[: -len(SB)]]).rename(f"  delta vs {name[:-len(SB)]}"))
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame, directions: dict[str, bool], fmt: str = "table") -> str:
    """Render with a direction arrow per column (↑ higher is better, ↓ lower is better)."""
    if table.empty:
        return "(no results yet: run `bench run --encoder vit-tiny --tasks all`)"
    shown = table.copy()
    shown.columns = [f"{c} {'↑' if directions.get(c, True) else '↓'}" for c in table.columns]
    shown.index.name = "encoder"
    if fmt == "markdown":
        header = "| encoder | " + " | ".join(shown.columns) + " |"
        sep = "|---|" + "---:|" * len(shown.columns)
        body = ["| " + str(idx) + " | " + " | ".join("" if pd.isna(v) else f"{v:.2f}" for v in row) + " |"
                for idx, row in shown.iterrows()]
        return "\n".join([header, sep, *body])
    return shown.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-")
