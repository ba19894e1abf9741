"""Retrieval behaviour: revisited Oxford/Paris (and the synthetic twin), the Met, AmsterTime.

Every ranking goes through `bench.search` (exact inner product on L2-normalised features; GPU index
when one is present). See the package docstring for the protocols.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.config import ConfigError
from bench.context import EvalContext
from bench.data.retrieval import (ImageListDataset, PatchMultipleResize, SquareResize, load_amstertime, load_gnd,
                                  load_met, revisited_datasets, size_buckets, snap_to_patch, subset)
from bench.features import FeatureSpec
from bench.metrics.retrieval import (KAPPAS, REVISITED_PROTOCOLS, compute_map, gap_items, global_average_precision,
                                     hit_list_metrics, random_ranking, revisited_gnd, revisited_metrics)
from bench.search import cosine_topk, resolve_backend
from bench.task import FeatureProbe, FeatureRequest, ItemScores, Task, TaskResult
from tasks.retrieval import AMSTERTIME_K

CLS = FeatureSpec(("cls",), 1)


@dataclass(frozen=True)
class RetrievalConfig:
    resize: int = 224  # square resize (snapped to the patch size); the Met keeps native sizes
    random_repeats: int = 10  # the *_random references average this many seeded random rankings
    database: str = "full"  # the Met only: full | mini (its database file)

    def __post_init__(self) -> None:
        if self.resize < 1 or self.random_repeats < 1:
            raise ConfigError("retrieval: resize and random_repeats must be >= 1")
        if self.database not in ("full", "mini"):
            raise ConfigError(f"retrieval: database must be 'full' or 'mini', got {self.database!r}")


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.nanmean([d[k] for d in dicts])) for k in dicts[0]}


def rank(ctx: EvalContext, queries: torch.Tensor, database: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, database indices), each (Q, k), best first: exact search by the fastest exact
    backend for the device and k (`bench.search`), logged as `search_backend`."""
    k = min(k, database.shape[0])
    ctx.log_params(search_backend=resolve_backend(k, ctx.device.type))
    sims, idx = cosine_topk(queries, database, k, device=ctx.device.type)
    return sims.numpy(), idx.numpy()


def _cls(features) -> torch.Tensor:
    return features["cls"][:, -1]


class RevisitedRetrieval(FeatureProbe):
    Config = RetrievalConfig

    def inputs(self, ctx: EvalContext, cfg: RetrievalConfig) -> dict[str, FeatureRequest]:
        gnd = load_gnd(ctx.root / self.options["gnd_file"])
        transform = SquareResize(ctx.encoder.preprocess, snap_to_patch(cfg.resize, ctx.encoder.preprocess.patch_size))
        db, queries = revisited_datasets(ctx.root, gnd, transform)
        return {"database": FeatureRequest(db, CLS, db.identity(), transform.describe()),
                "queries": FeatureRequest(queries, CLS, queries.identity(), transform.describe())}

    def fit(self, ctx, cfg, inputs, features):
        return load_gnd(ctx.root / self.options["gnd_file"])

    def score(self, ctx: EvalContext, cfg: RetrievalConfig, gnd, inputs, features) -> TaskResult:
        n_db, n_q = len(inputs["database"].dataset), len(inputs["queries"].dataset)
        _, ranks = rank(ctx, _cls(features["queries"]), _cls(features["database"]), n_db)
        metrics = revisited_metrics(ranks, gnd.gnd)
        baseline = _mean_dicts([revisited_metrics(random_ranking(n_q, n_db, ctx.seed * 1000 + r), gnd.gnd,
                                                  suffix="_random") for r in range(cfg.random_repeats)])
        counts = {k: int(metrics.pop(k)) for k in [k for k in metrics if k.startswith("queries_")]}
        metrics.update({f"mAP_{p}_random": baseline[f"mAP_{p}_random"] for p in REVISITED_PROTOCOLS})
        ctx.log_params(transform=inputs["database"].transform, n_database=n_db, n_queries=n_q,
                       gnd_file=self.options["gnd_file"], **{f"n_{k}": v for k, v in counts.items()})
        # per-query AP (x 100; NaN for a query without positives, left out as revisitop does)
        items = {}
        for p in REVISITED_PROTOCOLS:
            per_query = compute_map(ranks, revisited_gnd(gnd.gnd, p), KAPPAS)
            items[f"mAP_{p}"] = ItemScores(per_query["aps"], "nanmean", 100.0)
            items.update({f"mP{k}_{p}": ItemScores(per_query["prs"][:, i], "nanmean", 100.0)  # precision@k per query
                          for i, k in enumerate(per_query["kappas"])})
        return TaskResult(metrics, items=items)


class MetRetrieval(Task):
    """Variable-size images: one cached extraction per (H, W) bucket, so not a plain FeatureProbe."""

    Config = RetrievalConfig

    def _features(self, ctx: EvalContext, dataset: ImageListDataset, transform: PatchMultipleResize,
                  split: str) -> torch.Tensor:
        out: torch.Tensor | None = None
        for (h, w), idx in size_buckets(dataset, transform).items():
            part = subset(dataset, idx, kind=f"met-{split}-{h}x{w}")
            feats = _cls(ctx.features(part, part.identity(), transform.describe(), CLS, f"{split} {h}x{w}"))
            if out is None:
                out = torch.empty(len(dataset), feats.shape[-1], dtype=feats.dtype)
            out[torch.as_tensor(idx)] = feats
        if out is None:
            raise ValueError(f"no Met {split} images under {ctx.root}")
        return out

    def run(self, ctx: EvalContext, cfg: RetrievalConfig) -> TaskResult:
        met = load_met(ctx.root, cfg.database)
        transform = PatchMultipleResize(ctx.encoder.preprocess)
        db = ImageListDataset(met.database.paths, transform, kind="met-database")
        test = ImageListDataset(met.test.paths, transform, kind="met-test")
        f_db, f_test = self._features(ctx, db, transform, "database"), self._features(ctx, test, transform, "test")
        sims, idx = rank(ctx, f_test, f_db, 1)
        pred, conf, true = met.database.labels[idx[:, 0]], sims[:, 0], met.test.labels
        rng = np.random.default_rng(ctx.seed)
        gap_random = float(np.mean([global_average_precision(met.database.labels[rng.integers(0, len(db), len(test))],
                                                             rng.random(len(test)), true)
                                    for _ in range(cfg.random_repeats)]))
        known = true != -1
        ctx.log_params(transform=transform.describe(), database_file=met.database_file, n_database=len(db),
                       n_test=len(test), n_distractors=int((~known).sum()),
                       **{f"layout_{k}": v for k, v in met.layout.items()})
        # per-query rows for the intervals: GAP re-ranks each bootstrap resample (not a mean over queries)
        rows = gap_items(pred, conf, true)
        items = {"GAP": ItemScores(rows, "gap", 100.0), "GAP_nodistractors": ItemScores(rows, "gap_nodistractors", 100.0),
                 "accuracy_nodistractors": ItemScores(np.where(known, (pred == true).astype(np.float64), np.nan),
                                                      "nanmean", 100.0)}
        if not known.any():
            items.pop("accuracy_nodistractors")
        return TaskResult(items=items, metrics={
            "GAP": 100.0 * global_average_precision(pred, conf, true),
            "GAP_nodistractors": 100.0 * global_average_precision(pred, conf, true, include_distractors=False),
            "accuracy_nodistractors": 100.0 * float((pred[known] == true[known]).mean()) if known.any() else float("nan"),
            "GAP_random": 100.0 * gap_random,
        })


class AmsterTimeRetrieval(FeatureProbe):
    Config = RetrievalConfig

    def inputs(self, ctx: EvalContext, cfg: RetrievalConfig) -> dict[str, FeatureRequest]:
        pairs = load_amstertime(ctx.root)
        transform = SquareResize(ctx.encoder.preprocess, snap_to_patch(cfg.resize, ctx.encoder.preprocess.patch_size))
        old = ImageListDataset(pairs.old, transform, kind="amstertime-old")
        new = ImageListDataset(pairs.new, transform, kind="amstertime-new")
        ctx.log_params(layout=pairs.layout)
        return {"old": FeatureRequest(old, CLS, old.identity(), transform.describe()),
                "new": FeatureRequest(new, CLS, new.identity(), transform.describe())}

    def score(self, ctx: EvalContext, cfg: RetrievalConfig, fitted, inputs, features) -> TaskResult:
        f_old, f_new = _cls(features["old"]), _cls(features["new"])
        n = len(inputs["old"].dataset)
        truth = np.arange(n)[:, None]
        rel = {}
        for name, (q, db) in {"old2new": (f_old, f_new), "new2old": (f_new, f_old)}.items():
            _, idx = rank(ctx, q, db, AMSTERTIME_K)
            rel[name] = idx == truth
        pooled = hit_list_metrics(np.concatenate([rel["old2new"], rel["new2old"]]))
        k = min(AMSTERTIME_K, n)
        both = np.concatenate([truth, truth])
        rand = [hit_list_metrics(random_ranking(2 * n, n, ctx.seed * 1000 + r)[:, :k] == both)["mAP"]
                for r in range(cfg.random_repeats)]
        ctx.log_params(transform=inputs["old"].transform, n_pairs=n, k=k)
        hits = np.concatenate([rel["old2new"], rel["new2old"]]).astype(np.float64)
        ap = (np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1) * hits).sum(1)  # per query, as hit_list_metrics
        items = {"mAP": ItemScores(ap, "mean", 100.0), "mAP_old2new": ItemScores(ap[:n], "mean", 100.0),
                 "mAP_new2old": ItemScores(ap[n:], "mean", 100.0),
                 **{f"top{t}": ItemScores(hits[:, :t].any(1).astype(np.float64), "mean", 100.0)
                    for t in (1, 5) if t <= hits.shape[1]}}
        return TaskResult(items=items, metrics={"mAP": pooled["mAP"], "top1": pooled["top1"], "top5": pooled["top5"],
                           "mAP_old2new": hit_list_metrics(rel["old2new"])["mAP"],
                           "mAP_new2old": hit_list_metrics(rel["new2old"])["mAP"],
                           "mAP_random": float(np.mean(rand))})
