"""Retrieval metrics (percent, higher is better).

* Revisited Oxford/Paris (Radenovic et al. 2018): the `revisitop` rules, re-implemented. Junk images
  are taken out of the ranking (positives move up by the number of junk images ranked above them),
  AP is the trapezoid rule over the precision-recall steps (`compute_ap`), mP@k uses revisitop's
  k_q = min(k, rank of the last positive), and a query with no positive under a protocol counts in
  neither the mean nor the number of queries. sklearn's AP (no junk, step rule) gives other
  (higher) numbers and is deliberately not used.
* Met (Ypsilantis et al. 2021): GAP, the global average precision of the top-1 prediction of every
  query (distractors included) ranked by confidence, divided by the number of non-distractor queries.
* AmsterTime (Yildiz et al. 2022): mAP / top-k over hit lists as in the official `eval.py`
  (AP = sum_i P@i * rel_i within the first k results).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

REVISITED_PROTOCOLS = ("easy", "medium", "hard")
KAPPAS = (1, 5, 10)


# ------------------------------------------------------------------------------- revisited
def trapezoid_ap(pos_ranks: np.ndarray, n_pos: int) -> float:
    """revisitop `compute_ap`: `pos_ranks` are the sorted 0-based ranks of the retrieved positives
    (junk already removed); `n_pos` the number of positives in the ground truth.

    The area under the PR curve, each recall step 1/n_pos a trapezoid between the precision just
    before the positive (j / r, 1 at rank 0) and just after it ((j + 1) / (r + 1))."""
    r = np.asarray(pos_ranks, dtype=np.float64)
    if r.size == 0 or n_pos == 0:
        return 0.0
    j = np.arange(r.size, dtype=np.float64)
    before = np.where(r == 0, 1.0, j / np.maximum(r, 1.0))
    after = (j + 1.0) / (r + 1.0)
    return float(((before + after) / 2.0).sum() / n_pos)


def positive_ranks(ranking: np.ndarray, ok: Sequence[int], junk: Sequence[int]) -> np.ndarray:
    """Sorted 0-based ranks of the positives in `ranking` after removing the junk images."""
    ranking = np.asarray(ranking)
    pos = np.flatnonzero(np.isin(ranking, np.asarray(ok, dtype=np.int64)))
    junk_at = np.flatnonzero(np.isin(ranking, np.asarray(junk, dtype=np.int64)))
    # every junk image ranked strictly above a positive moves that positive up by one
    return pos - np.searchsorted(junk_at, pos, side="left")


def compute_map(ranks: np.ndarray, gnd: Sequence[dict], kappas: Iterable[int] = KAPPAS) -> dict:
    """revisitop `compute_map` for one protocol.

    ranks: (Q, N) database indices, best first, one row per query (revisitop stores the transpose).
    gnd[q]: {"ok": positives, "junk": ignored}. Returns fractions (not percent): map, aps (nan for a
    query without positives), mpr (per kappa), prs (Q, K), and n_valid (queries in the mean)."""
    kappas = tuple(kappas)
    nq = len(gnd)
    aps = np.full(nq, np.nan)
    prs = np.full((nq, len(kappas)), np.nan)
    for q in range(nq):
        ok = np.asarray(gnd[q]["ok"], dtype=np.int64)
        if ok.size == 0:  # no positive: excluded from the mean, as revisitop does
            continue
        pos = positive_ranks(ranks[q], ok, gnd[q].get("junk", ()))
        aps[q] = trapezoid_ap(pos, ok.size)
        if pos.size == 0:  # positives never retrieved (only possible with a truncated ranking)
            prs[q] = 0.0
            continue
        pos1 = pos + 1  # 1-based
        for i, k in enumerate(kappas):
            kq = min(int(pos1.max()), k)
            prs[q, i] = (pos1 <= kq).sum() / kq
    valid = ~np.isnan(aps)
    n_valid = int(valid.sum())
    mean_ap = float(aps[valid].mean()) if n_valid else float("nan")
    mpr = prs[valid].mean(0) if n_valid else np.full(len(kappas), np.nan)
    return {"map": mean_ap, "aps": aps, "mpr": mpr, "prs": prs, "n_valid": n_valid, "kappas": kappas}


def revisited_gnd(gnd: Sequence[dict], protocol: str) -> list[dict]:
    """The positives and junk of each query under the Easy / Medium / Hard protocol."""
    def ids(g, *keys):
        return np.concatenate([np.asarray(g.get(k, []), dtype=np.int64) for k in keys])

    if protocol == "easy":
        return [{"ok": ids(g, "easy"), "junk": ids(g, "junk", "hard")} for g in gnd]
    if protocol == "medium":
        return [{"ok": ids(g, "easy", "hard"), "junk": ids(g, "junk")} for g in gnd]
    if protocol == "hard":
        return [{"ok": ids(g, "hard"), "junk": ids(g, "junk", "easy")} for g in gnd]
    raise ValueError(f"unknown revisited protocol {protocol!r}; choose from {REVISITED_PROTOCOLS}")


def revisited_metrics(ranks: np.ndarray, gnd: Sequence[dict], kappas: Iterable[int] = KAPPAS,
                      suffix: str = "") -> dict[str, float]:
    """mAP_{easy,medium,hard} and mP{k}_{...} in percent (MLflow names allow no "@"), plus
    queries_{...}: the number of queries each protocol averages."""
    out: dict[str, float] = {}
    for protocol in REVISITED_PROTOCOLS:
        res = compute_map(ranks, revisited_gnd(gnd, protocol), kappas)
        out[f"mAP_{protocol}{suffix}"] = 100.0 * res["map"]
        for k, p in zip(res["kappas"], res["mpr"]):
            out[f"mP{k}_{protocol}{suffix}"] = 100.0 * float(p)
        out[f"queries_{protocol}{suffix}"] = float(res["n_valid"])
    return out


# ------------------------------------------------------------------------------------ Met GAP
def global_average_precision(pred: np.ndarray, conf: np.ndarray, true: np.ndarray,
                             distractor: int = -1, include_distractors: bool = True) -> float:
    """GAP (fraction): one prediction per query, all queries ranked by decreasing confidence.

    GAP = 1/M * sum_i P(i) rel(i), P(i) the precision among the first i ranked predictions, rel(i)
    whether prediction i is correct and M the number of non-distractor queries. Distractors
    (label `distractor`) are never correct, but, included, they lower the precision of everything
    ranked below them. Ties keep the query order (stable sort)."""
    pred, conf, true = np.asarray(pred), np.asarray(conf, dtype=np.float64), np.asarray(true)
    if not include_distractors:
        keep = true != distractor
        pred, conf, true = pred[keep], conf[keep], true[keep]
    m = int((true != distractor).sum())
    if m == 0:
        return float("nan")
    order = np.argsort(-conf, kind="stable")
    rel = ((pred == true) & (true != distractor))[order].astype(np.float64)
    precision = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return float((precision * rel).sum() / m)


def gap_items(pred: np.ndarray, conf: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The Met's per-query rows (prediction, confidence, true label), shape (Q, 3): GAP ranks all
    queries together, so it is not a mean over queries; a bootstrap resamples these rows and
    recomputes GAP on each resample (`gap_of_items`). Labels are small ints, exact in float64."""
    return np.stack([np.asarray(pred, dtype=np.float64), np.asarray(conf, dtype=np.float64),
                     np.asarray(true, dtype=np.float64)], axis=1)


def gap_of_items(rows: np.ndarray, include_distractors: bool = True) -> float:
    """`global_average_precision` (fraction) of `gap_items` rows (a resample of them, in a bootstrap)."""
    rows = np.asarray(rows, dtype=np.float64)
    return global_average_precision(rows[:, 0], rows[:, 1], rows[:, 2], include_distractors=include_distractors)


def gap_of_items_nodistractors(rows: np.ndarray) -> float:
    return gap_of_items(rows, include_distractors=False)


# ----------------------------------------------------------------------------- AmsterTime
def hit_list_metrics(rel: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """AmsterTime's `calculate_metrics`: rel (Q, k) 1 where result i of query q is its pair.

    AP_q = sum_i P@i * rel_i (one positive per query, so this is 1/rank within the first k);
    top-k = fraction of queries whose pair is among the first k. Returns percent."""
    rel = np.asarray(rel, dtype=np.float64)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    out = {"mAP": 100.0 * float((precision * rel).sum(1).mean())}
    for k in ks:
        out[f"top{k}"] = 100.0 * float(rel[:, :k].any(1).mean()) if k <= rel.shape[1] else float("nan")
    return out


def random_ranking(num_queries: int, num_database: int, seed: int) -> np.ndarray:
    """A seeded uniformly random full ranking per query: the floor a real descriptor must beat."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(num_database) for _ in range(num_queries)]) if num_queries else \
        np.zeros((0, num_database), dtype=np.int64)


__all__ = ["KAPPAS", "REVISITED_PROTOCOLS", "compute_map", "gap_items", "gap_of_items", "gap_of_items_nodistractors",
           "global_average_precision", "hit_list_metrics",
           "positive_ranks", "random_ranking", "revisited_gnd", "revisited_metrics", "trapezoid_ap"]
