"""Image retrieval with frozen CLS features ranked by cosine similarity (paper Table 5, App. A.7).

* Revisited Oxford / Paris (and the synthetic twin in the same format): queries cropped to their bbx,
  224x224 resize, the full database ranked for every query, revisitop's Easy / Medium / Hard mAP and
  mP@{1,5,10} (trapezoid AP, junk removed from the ranking). Hard mAP is the headline.
* Met: every query (distractors included) predicts the exhibit of its nearest database image with
  the cosine similarity as confidence; GAP over all queries (headline), also without distractors.
  Images keep their native size, each side snapped to the nearest multiple of the patch size.
* AmsterTime: archival -> street view and street view -> archival, 224x224, the official hit-list
  mAP / top-1 / top-5 within the first 128 results.

Every ranking goes through `bench.search` (FAISS inner product on L2-normalised features; GPU index
when one is present). The mean score of 10 seeded random rankings is logged next to each result
(`*_random`) as the floor a real descriptor must beat.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.retrieval import (ImageListDataset, PatchMultipleResize, SquareResize, load_amstertime, load_gnd,
                                  load_met, revisited_datasets, size_buckets, snap_to_patch, subset)
from bench.features import FeatureSpec
from bench.metrics.retrieval import (KAPPAS, REVISITED_PROTOCOLS, global_average_precision, hit_list_metrics,
                                     random_ranking, revisited_metrics)
from bench.search import cosine_topk
from tasks import Metric, RealData, SyntheticData, Task, register_task

RESIZE = 224
FAISS_GPU_MAX_K = 2048  # FAISS GPU flat search returns at most 2048 neighbours
AMSTERTIME_K = 128  # the official README evaluates hit lists of 128
CLS = FeatureSpec(("cls",), 1)
RANDOM_REPEATS = 10  # the *_random floors average this many seeded random rankings


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.nanmean([d[k] for d in dicts])) for k in dicts[0]}


def _cls(ctx, dataset, transform, split: str) -> torch.Tensor:
    return ctx.features(dataset, dataset.identity(), transform.describe(), CLS, split)["cls"][:, -1]


def rank(ctx, queries: torch.Tensor, database: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, database indices), each (Q, k), best first, through FAISS. A full ranking
    longer than the GPU index can return is searched with the (exact, same) CPU flat index."""
    k = min(k, database.shape[0])
    device = ctx.device.type if k <= FAISS_GPU_MAX_K else "cpu"
    sims, idx = cosine_topk(queries, database, k, device=device)
    return sims.numpy(), idx.numpy()


# ------------------------------------------------------------------------------ revisited
REVISITED_METRICS = tuple(
    [Metric(f"mAP_{p}", True, f"revisitop mAP (%), {p} protocol, trapezoid AP, junk removed")
     for p in REVISITED_PROTOCOLS]
    + [Metric(f"mP{k}_{p}", True, f"revisitop mean precision at {k} (%), {p} protocol")
       for p in REVISITED_PROTOCOLS for k in KAPPAS]
    + [Metric(f"mAP_{p}_random", True, f"reference, not a score: mean mAP (%) of 10 seeded random rankings, {p}")
       for p in REVISITED_PROTOCOLS]
)
REVISITED_PROTOCOL = {
    "protocol": "revisitop",
    "features": "cls-last-block",
    "similarity": "cosine (faiss IndexFlatIP on l2-normalised features)",
    "resize": f"{RESIZE}x{RESIZE} (snapped to the patch size), queries cropped to bbx first",
    "ranking": "full database",
    "ap_rule": "revisitop trapezoid, junk removed from the ranking",
    "easy": "ok=easy junk=junk+hard", "medium": "ok=easy+hard junk=junk", "hard": "ok=hard junk=junk+easy",
    "empty_queries": "excluded from mean and count (revisitop)",
}


def revisited_evaluate(gnd_file: str):
    def evaluate(ctx, root: Path) -> dict[str, float]:
        gnd = load_gnd(root / gnd_file)
        size = snap_to_patch(RESIZE, ctx.encoder.preprocess.patch_size)
        transform = SquareResize(ctx.encoder.preprocess, size)
        db, queries = revisited_datasets(root, gnd, transform)
        f_db, f_q = _cls(ctx, db, transform, "database"), _cls(ctx, queries, transform, "queries")
        _, ranks = rank(ctx, f_q, f_db, len(db))
        metrics = revisited_metrics(ranks, gnd.gnd)
        baseline = _mean_dicts([revisited_metrics(random_ranking(len(queries), len(db), ctx.seed * 1000 + r),
                                                  gnd.gnd, suffix="_random") for r in range(RANDOM_REPEATS)])
        counts = {k: int(metrics.pop(k)) for k in [k for k in metrics if k.startswith("queries_")]}
        metrics.update({f"mAP_{p}_random": baseline[f"mAP_{p}_random"] for p in REVISITED_PROTOCOLS})
        ctx.log_params(transform=transform.describe(), n_database=len(db), n_queries=len(queries),
                       gnd_file=gnd_file, **{f"n_{k}": v for k, v in counts.items()})
        return metrics

    return evaluate


register_task(Task(
    name="synth-retrieval", group="retrieval",
    description="Instance retrieval on the synthetic scenes in the revisited-Oxford format (twin of rOxford/rParis)",
    data=SyntheticData("retrieval"), metrics=REVISITED_METRICS, headline="mAP_hard",
    protocol=REVISITED_PROTOCOL, evaluate=revisited_evaluate("gnd_synth.pkl"),
))

register_task(Task(
    name="roxford-retrieval", group="retrieval",
    description="Revisited Oxford 5k (Radenovic et al. 2018), CLS cosine ranking, revisitop mAP",
    data=RealData("Revisited Oxford 5k", "roxford5k", "BENCH_ROXFORD", ("gnd_roxford5k.pkl", "jpg"),
                  "Download http://cmp.felk.cvut.cz/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl and the "
                  "Oxford 5k images (oxbuild_images-v1.tgz from https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/) "
                  "extracted into jpg/ (as revisitop's download.py does)."),
    metrics=REVISITED_METRICS, headline="mAP_hard", protocol=REVISITED_PROTOCOL,
    evaluate=revisited_evaluate("gnd_roxford5k.pkl"), paper_task="roxford-retrieval",
))

register_task(Task(
    name="rparis-retrieval", group="retrieval",
    description="Revisited Paris 6k (Radenovic et al. 2018), CLS cosine ranking, revisitop mAP",
    data=RealData("Revisited Paris 6k", "rparis6k", "BENCH_RPARIS", ("gnd_rparis6k.pkl", "jpg"),
                  "Download http://cmp.felk.cvut.cz/revisitop/data/datasets/rparis6k/gnd_rparis6k.pkl and the "
                  "Paris 6k images (paris_1-v1.tgz, paris_2-v1.tgz from "
                  "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/), all .jpg files flattened into jpg/ "
                  "(as revisitop's download.py does)."),
    metrics=REVISITED_METRICS, headline="mAP_hard", protocol=REVISITED_PROTOCOL,
    evaluate=revisited_evaluate("gnd_rparis6k.pkl"), paper_task="rparis-retrieval",
))


# ---------------------------------------------------------------------------------------- Met
MET_DB_ENV = "BENCH_MET_DATABASE"  # full (default) | mini
MET_METRICS = (
    Metric("GAP", True, "global average precision (%) of the 1-NN predictions, all test queries incl. distractors"),
    Metric("GAP_nodistractors", True, "GAP (%) over the non-distractor test queries only"),
    Metric("accuracy_nodistractors", True, "1-NN exhibit accuracy (%) of the non-distractor test queries"),
    Metric("GAP_random", True, "reference, not a score: mean GAP (%) of 10 seeded random predictions/confidences"),
)
MET_PROTOCOL = {
    "protocol": "met-gap",
    "features": "cls-last-block",
    "classifier": "1-NN exhibit, confidence = cosine similarity",
    "similarity": "cosine (faiss IndexFlatIP on l2-normalised features)",
    "resize": "native size, each side snapped to the nearest multiple of the patch size",
    "queries": "testset.json (Met + distractors)",
}


def _met_features(ctx, dataset: ImageListDataset, transform: PatchMultipleResize, split: str) -> torch.Tensor:
    """CLS features of variable-size images: one cached extraction per (H, W) bucket."""
    out: torch.Tensor | None = None
    for (h, w), idx in size_buckets(dataset, transform).items():
        part = subset(dataset, idx, kind=f"met-{split}-{h}x{w}")
        feats = _cls(ctx, part, transform, f"{split} {h}x{w}")
        if out is None:
            out = torch.empty(len(dataset), feats.shape[-1], dtype=feats.dtype)
        out[torch.as_tensor(idx)] = feats
    assert out is not None, f"no Met {split} images"
    return out


def met_evaluate(ctx, root: Path) -> dict[str, float]:
    database = os.environ.get(MET_DB_ENV, "full")
    met = load_met(root, database)
    transform = PatchMultipleResize(ctx.encoder.preprocess)
    db = ImageListDataset(met.database.paths, transform, kind="met-database")
    test = ImageListDataset(met.test.paths, transform, kind="met-test")
    f_db, f_test = _met_features(ctx, db, transform, "database"), _met_features(ctx, test, transform, "test")
    sims, idx = rank(ctx, f_test, f_db, 1)
    pred, conf, true = met.database.labels[idx[:, 0]], sims[:, 0], met.test.labels
    rng = np.random.default_rng(ctx.seed)
    gap_random = float(np.mean([global_average_precision(met.database.labels[rng.integers(0, len(db), len(test))],
                                                         rng.random(len(test)), true) for _ in range(RANDOM_REPEATS)]))
    known = true != -1
    ctx.log_params(transform=transform.describe(), database_file=met.database_file, n_database=len(db),
                   n_test=len(test), n_distractors=int((~known).sum()),
                   **{f"layout_{k}": v for k, v in met.layout.items()})
    return {
        "GAP": 100.0 * global_average_precision(pred, conf, true),
        "GAP_nodistractors": 100.0 * global_average_precision(pred, conf, true, include_distractors=False),
        "accuracy_nodistractors": 100.0 * float((pred[known] == true[known]).mean()) if known.any() else float("nan"),
        "GAP_random": 100.0 * gap_random,
    }


register_task(Task(
    name="met-retrieval", group="retrieval",
    description="The Met (Ypsilantis et al. 2021): artwork instance recognition by 1-NN, GAP with distractors",
    data=RealData("The Met", "met", "BENCH_MET", ("ground_truth/testset.json", "images"),
                  "Download the Met images and ground truth from http://cmp.felk.cvut.cz/met/ and extract them as "
                  "<root>/images/{MET,test_met,test_other,test_noart,...} and <root>/ground_truth/*.json."),
    metrics=MET_METRICS, headline="GAP", protocol=MET_PROTOCOL, evaluate=met_evaluate, paper_task="met-retrieval",
))


# --------------------------------------------------------------------------------- AmsterTime
AMSTERTIME_METRICS = (
    Metric("mAP", True, f"official hit-list mAP (%) within the first {AMSTERTIME_K}, both directions pooled"),
    Metric("top1", True, "pair retrieved first (%), both directions pooled"),
    Metric("top5", True, "pair among the first 5 (%), both directions pooled"),
    Metric("mAP_old2new", True, "mAP (%) of archival queries against the street-view images"),
    Metric("mAP_new2old", True, "mAP (%) of street-view queries against the archival images"),
    Metric("mAP_random", True, "reference, not a score: mean mAP (%) of 10 seeded random rankings"),
)
AMSTERTIME_PROTOCOL = {
    "protocol": "amstertime-retrieval",
    "features": "cls-last-block",
    "similarity": "cosine (faiss IndexFlatIP on l2-normalised features)",
    "resize": f"{RESIZE}x{RESIZE} (snapped to the patch size)",
    "directions": "old->new and new->old pooled (official eval.py 'All')",
    "ap_rule": f"official hit list: AP = sum_i P@i rel_i within the first {AMSTERTIME_K}",
}


@dataclass(frozen=True)
class AmsterTimeData(RealData):
    """The official layout (old/ + new/, possibly under raw_data/) or the VPR-datasets-downloader one."""

    LAYOUTS = (("old", "new"), ("raw_data/old", "raw_data/new"), ("AmsterTime-v1.0/old", "AmsterTime-v1.0/new"),
               ("images/test/queries", "images/test/database"))

    def missing(self) -> Path | None:
        root = self.root()
        if any(all((root / d).is_dir() for d in layout) for layout in self.LAYOUTS):
            return None
        return root / "old"


def amstertime_evaluate(ctx, root: Path) -> dict[str, float]:
    pairs = load_amstertime(root)
    size = snap_to_patch(RESIZE, ctx.encoder.preprocess.patch_size)
    transform = SquareResize(ctx.encoder.preprocess, size)
    old = ImageListDataset(pairs.old, transform, kind="amstertime-old")
    new = ImageListDataset(pairs.new, transform, kind="amstertime-new")
    f_old, f_new = _cls(ctx, old, transform, "old"), _cls(ctx, new, transform, "new")
    n = len(old)
    truth = np.arange(n)[:, None]
    rel = {}
    for name, (q, db) in {"old2new": (f_old, f_new), "new2old": (f_new, f_old)}.items():
        _, idx = rank(ctx, q, db, AMSTERTIME_K)
        rel[name] = idx == truth
    pooled = hit_list_metrics(np.concatenate([rel["old2new"], rel["new2old"]]))
    k = min(AMSTERTIME_K, n)
    both = np.concatenate([truth, truth])
    rand = [hit_list_metrics(random_ranking(2 * n, n, ctx.seed * 1000 + r)[:, :k] == both)["mAP"]
            for r in range(RANDOM_REPEATS)]
    ctx.log_params(transform=transform.describe(), n_pairs=n, layout=pairs.layout, k=min(AMSTERTIME_K, n))
    return {"mAP": pooled["mAP"], "top1": pooled["top1"], "top5": pooled["top5"],
            "mAP_old2new": hit_list_metrics(rel["old2new"])["mAP"],
            "mAP_new2old": hit_list_metrics(rel["new2old"])["mAP"],
            "mAP_random": float(np.mean(rand))}


register_task(Task(
    name="amstertime-retrieval", group="retrieval",
    description="AmsterTime (Yildiz et al. 2022): archival vs street-view place retrieval, 1231 pairs",
    data=AmsterTimeData("AmsterTime", "amstertime", "BENCH_AMSTERTIME", ("old", "new"),
                        "Download AmsterTime from https://doi.org/10.4121/19580806 (or Kaggle byildiz/amstertime) "
                        "and extract it so that <root>/old/NNNN.jpg and <root>/new/NNNN.png exist (the "
                        "VPR-datasets-downloader layout <root>/images/test/{queries,database}/ is accepted too)."),
    metrics=AMSTERTIME_METRICS, headline="mAP", protocol=AMSTERTIME_PROTOCOL, evaluate=amstertime_evaluate,
    paper_task="amstertime-retrieval",
))
