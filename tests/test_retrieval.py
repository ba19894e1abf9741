"""Retrieval: revisitop mAP / mP@k by hand, Met GAP by hand, the restricted gnd unpickler, and the
loaders on files written here in the benchmarks' exact layouts (run end to end with a toy encoder)."""
from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.retrieval import (PatchMultipleResize, load_amstertime, load_gnd, load_met, restricted_load,
                                  restricted_loads, revisited_datasets, snap_to_patch)
from tests.conftest import run_task
from bench.metrics.retrieval import (compute_map, global_average_precision, hit_list_metrics, positive_ranks,
                                     random_ranking, revisited_gnd, revisited_metrics, trapezoid_ap)

pytestmark = pytest.mark.usefixtures("one_thread")


SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REAL_GND = SHARED / "fixtures-real" / "roxford5k" / "gnd_roxford5k.pkl"

# Three queries over a database of 8 images (ids 0..7).
GND = [
    {"easy": [0, 3], "hard": [5], "junk": [1], "bbx": [0, 0, 10, 10]},
    {"easy": [], "hard": [], "junk": [2], "bbx": [0, 0, 10, 10]},  # no positive under any protocol
    {"easy": [6], "hard": [], "junk": [], "bbx": [0, 0, 10, 10]},  # no positive under Hard
]
RANKS = np.array([
    [1, 0, 2, 5, 3, 4, 6, 7],
    [0, 1, 2, 3, 4, 5, 6, 7],
    [7, 6, 5, 4, 3, 2, 1, 0],
])


# ----------------------------------------------------------------------------- revisited
def test_trapezoid_ap_by_hand():
    # positives at 0-based ranks 0, 2, 3 of 3: trapezoids (1+1)/2, (1/2+2/3)/2, (2/3+3/4)/2, each x 1/3
    assert math.isclose(trapezoid_ap(np.array([0, 2, 3]), 3), (1 + 0.583333333 + 0.708333333) / 3, rel_tol=1e-8)
    # a single positive at rank 1: (0/1 + 1/2) / 2 = 0.25 (the step rule would say 0.5)
    assert math.isclose(trapezoid_ap(np.array([1]), 1), 0.25)
    # a positive never retrieved still counts in the denominator: (1+1)/2 / 2 = 0.5
    assert math.isclose(trapezoid_ap(np.array([0]), 2), 0.5)


def test_junk_is_removed_from_the_ranking():
    # query 0, Medium: ok = {0, 3, 5}, junk = {1}. Ranking 1 0 2 5 3 ... -> without the junk image:
    # 0 2 5 3 ..., so the positives sit at ranks 0, 2, 3 (each moved up by the one junk above it)
    assert positive_ranks(RANKS[0], [0, 3, 5], [1]).tolist() == [0, 2, 3]
    # Hard: ok = {5}, junk = {1, 0, 3} (junk + easy): 1 0 2 5 -> 2 5, so rank 1
    assert positive_ranks(RANKS[0], [5], [1, 0, 3]).tolist() == [1]


def test_revisited_map_by_hand():
    m = revisited_metrics(RANKS, GND)
    # query 0 Easy (ok 0,3; junk 1,5): ranking -> 0 2 3 4 6 7, positives at 0, 2:
    #   AP = [(1+1)/2 + (1/2+2/3)/2] / 2 = (1 + 0.583333) / 2 = 0.791667
    # query 0 Medium (ok 0,3,5; junk 1): positives at 0, 2, 3:
    #   AP = [1 + 0.583333 + 0.708333] / 3 = 0.763889 (sklearn-style step AP would give (1+2/3+3/4)/3 = 0.8056)
    # query 0 Hard (ok 5; junk 1,0,3): positive at 1: AP = (0 + 1/2)/2 = 0.25
    # query 1: no positive anywhere -> excluded from every mean and count
    # query 2 Easy/Medium (ok 6): ranking 7 6 ... -> positive at 1: AP = 0.25; Hard: no positive -> excluded
    assert math.isclose(m["mAP_easy"], 100 * (0.791667 + 0.25) / 2, abs_tol=1e-3)
    assert math.isclose(m["mAP_medium"], 100 * (0.763889 + 0.25) / 2, abs_tol=1e-3)
    assert math.isclose(m["mAP_hard"], 100 * 0.25, abs_tol=1e-9)
    assert (m["queries_easy"], m["queries_medium"], m["queries_hard"]) == (2, 2, 1)
    # mP@k with revisitop's k_q = min(k, rank of the last positive), 1-based ranks after junk removal:
    # q0 Easy positives at 1, 3: P@1 = 1/1, P@5 = 2/min(5,3) = 2/3; q2 Easy at 2: P@1 = 0, P@5 = 1/2
    assert math.isclose(m["mP1_easy"], 100 * (1 + 0) / 2)
    assert math.isclose(m["mP5_easy"], 100 * (2 / 3 + 1 / 2) / 2)
    assert math.isclose(m["mP10_easy"], 100 * (2 / 3 + 1 / 2) / 2)
    # q0 Medium at 1, 3, 4: P@1 = 1, P@5 = 3/4; q2 as above
    assert math.isclose(m["mP1_medium"], 100 * (1 + 0) / 2)
    assert math.isclose(m["mP5_medium"], 100 * (3 / 4 + 1 / 2) / 2)
    # q0 Hard at 2: P@1 = 0, P@5 = 1/2
    assert m["mP1_hard"] == 0.0 and math.isclose(m["mP5_hard"], 50.0)


def test_compute_map_skips_queries_without_positives():
    res = compute_map(RANKS, revisited_gnd(GND, "hard"))
    assert res["n_valid"] == 1 and np.isnan(res["aps"][1]) and np.isnan(res["aps"][2])
    assert math.isclose(res["map"], 0.25)


def test_perfect_and_random_rankings():
    gnd = [{"easy": [0, 1], "hard": [2], "junk": [3]}, {"easy": [4], "hard": [5, 6], "junk": []}]
    perfect = np.array([[2, 0, 1, 3, 4, 5, 6, 7], [5, 6, 4, 0, 1, 2, 3, 7]])
    m = revisited_metrics(perfect, gnd)
    assert m["mAP_hard"] == m["mAP_medium"] == 100.0
    rand = revisited_metrics(random_ranking(2, 8, seed=0), gnd)
    assert rand["mAP_medium"] < 100.0
    assert np.array_equal(random_ranking(3, 5, 1), random_ranking(3, 5, 1))


# ---------------------------------------------------------------------------------------- GAP
def test_gap_by_hand():
    true = np.array([1, 2, -1, 3, 1])  # query 2 is a distractor
    pred = np.array([1, 5, 7, 3, 2])
    conf = np.array([0.9, 0.8, 0.95, 0.6, 0.3])
    # by confidence: q2 (distractor, wrong), q0 (right), q1 (wrong), q3 (right), q4 (wrong)
    # precision at the correct ones: 1/2 (q0 at position 2), 2/4 (q3 at position 4); M = 4 real queries
    assert math.isclose(global_average_precision(pred, conf, true), (1 / 2 + 2 / 4) / 4)
    # without the distractor: q0 right at 1 (P=1), q3 right at 3 (P=2/3): (1 + 2/3) / 4
    assert math.isclose(global_average_precision(pred, conf, true, include_distractors=False), (1 + 2 / 3) / 4)
    # everything right and confident: 1
    assert global_average_precision(np.array([1, 2]), np.array([0.5, 0.4]), np.array([1, 2])) == 1.0


def test_amstertime_hit_list_by_hand():
    rel = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])  # pair at rank 2, at rank 1, not in the first 3
    m = hit_list_metrics(rel, ks=(1, 2))
    assert math.isclose(m["mAP"], 100 * (1 / 2 + 1 + 0) / 3)
    assert math.isclose(m["top1"], 100 / 3) and math.isclose(m["top2"], 200 / 3)


# ------------------------------------------------------------------------ restricted unpickler
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/should_not_exist_bench",))


def test_restricted_unpickler_rejects_code():
    for payload in (pickle.dumps(_Evil()), pickle.dumps({"gnd": [_Evil()]}, protocol=2),
                    b"cbuiltins\neval\n(S'1+1'\ntR."):
        with pytest.raises(pickle.UnpicklingError):
            restricted_loads(payload)
    assert not Path("/tmp/should_not_exist_bench").exists()


def test_restricted_unpickler_reads_numpy_and_containers():
    obj = {"imlist": ["a", "b"], "gnd": [{"easy": np.array([0, 1]), "bbx": np.array([1.5, 2.0, 3.0, 4.0])}],
           "s": {1, 2}, "t": (np.float64(1.5), np.int64(3))}
    for proto in (2, 3, 4, 5):
        back = restricted_loads(pickle.dumps(obj, protocol=proto))
        assert back["imlist"] == ["a", "b"] and back["s"] == {1, 2}
        assert np.array_equal(back["gnd"][0]["easy"], [0, 1]) and back["t"][1] == 3


@pytest.mark.skipif(not REAL_GND.exists(), reason="shared real fixtures absent")
def test_real_roxford_gnd_file():
    gnd = load_gnd(REAL_GND)
    assert len(gnd.imlist) == 4993 and len(gnd.qimlist) == 70 and len(gnd.gnd) == 70
    assert all(len(b) == 4 for b in gnd.bbxs)
    g0 = gnd.gnd[0]
    assert (len(g0["easy"]), len(g0["hard"]), len(g0["junk"])) == (65, 38, 33)
    assert gnd.bbxs[0] == pytest.approx((136.5, 34.1, 648.5, 955.7))
    raw = restricted_load(REAL_GND)
    assert set(raw) == {"imlist", "qimlist", "gnd"}
    # every protocol keeps every query of rOxford (each has easy and hard positives)
    m = revisited_metrics(random_ranking(70, 4993, 0), gnd.gnd)
    assert m["queries_hard"] == m["queries_medium"] == 70


# ---------------------------------------------------------------------------------- loaders
PALETTE = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (200, 40, 200), (40, 210, 210)]


def _solid(path: Path, colour, size=(60, 40), noise=8, seed=0):
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour) + rng.normal(0, noise, (size[1], size[0], 3)), 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)


def write_revisited(root: Path, name: str = "gnd_roxford5k.pkl") -> dict:
    """4 landmarks x 3 database images + one query per landmark; the query photo has a grey border
    that its bbx crops away."""
    imlist, gnd, qimlist = [], [], []
    for lm, colour in enumerate(PALETTE[:4]):
        for i in range(3):
            imlist.append(f"lm{lm}_{i:03d}")
            _solid(root / "jpg" / f"{imlist[-1]}.jpg", colour, seed=10 * lm + i)
    for lm, colour in enumerate(PALETTE[:4]):
        q = f"query_lm{lm}"
        qimlist.append(q)
        arr = np.full((80, 100, 3), 128, np.uint8)
        arr[20:60, 20:80] = colour
        Image.fromarray(arr).save(root / "jpg" / f"{q}.jpg", quality=95)
        ids = [3 * lm, 3 * lm + 1, 3 * lm + 2]
        gnd.append({"easy": np.array(ids[:1]), "hard": ids[1:2], "junk": ids[2:], "bbx": [20.0, 20.0, 80.0, 60.0]})
    data = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}
    (root / name).write_bytes(pickle.dumps(data, protocol=2))
    return data


def test_revisited_loader_and_task(tmp_path, monkeypatch, counting_encoder):
    root = tmp_path / "roxford5k"
    data = write_revisited(root)
    gnd = load_gnd(root / "gnd_roxford5k.pkl")
    assert gnd.imlist == data["imlist"] and gnd.gnd[1]["easy"] == [3] and gnd.gnd[1]["junk"] == [5]
    db, q = revisited_datasets(root, gnd, transform=None)
    assert len(db) == 12 and len(q) == 4
    assert db[0][0].size == (60, 40) and q[0][0].size == (60, 40)  # the query is cropped to its bbx
    assert np.abs(np.asarray(q[2][0], dtype=float) - PALETTE[2]).mean() < 10  # no grey border left

    from tasks import get_task

    monkeypatch.setenv("BENCH_ROXFORD", str(root))
    task = get_task("roxford-retrieval")
    result, ctx = run_task("roxford-retrieval", counting_encoder, batch_size=8)
    metrics = result.metrics
    assert set(metrics) == {m.name for m in task.meta.metrics}
    # the toy encoder sees colours: every landmark's own images come first
    assert metrics["mAP_medium"] == 100.0 and metrics["mAP_hard"] == 100.0
    assert metrics["mAP_hard_random"] < metrics["mAP_hard"]
    assert ctx.params["n_database"] == 12 and ctx.params["n_queries"] == 4
    result.validate(task.meta)  # the per-query items (AP, precision@k) reproduce their metrics
    assert {"mAP_hard", "mP5_hard", "mP10_easy"} <= set(result.items)


def test_met_loader_and_task(tmp_path, monkeypatch, counting_encoder):
    root = tmp_path / "met"
    db, test = [], []
    sizes = [(60, 40), (40, 60), (61, 43), (500, 333)]
    for ex, colour in enumerate(PALETTE[:4]):
        for i in range(2):
            rel = f"MET/{ex}/{i}.jpg"
            _solid(root / "images" / rel, colour, size=sizes[(ex + i) % len(sizes)], seed=ex * 10 + i)
            db.append({"id": ex, "path": rel})
        rel = f"test_met/{ex}.jpg"
        _solid(root / "images" / rel, colour, size=sizes[ex % len(sizes)], seed=99 + ex)
        test.append({"path": rel, "MET_id": ex})
    _solid(root / "images" / "test_other/d0.jpg", (128, 128, 128), seed=7)  # a distractor
    test.append({"path": "test_other/d0.jpg"})
    (root / "ground_truth").mkdir(parents=True)
    (root / "ground_truth" / "MET_database.json").write_text(json.dumps(db))
    (root / "ground_truth" / "testset.json").write_text(json.dumps(test))
    met = load_met(root)
    assert len(met.database.paths) == 8 and met.test.labels.tolist() == [0, 1, 2, 3, -1]
    t = PatchMultipleResize(counting_encoder.preprocess)
    assert t.target(61, 43) == (snap_to_patch(43, 8), snap_to_patch(61, 8)) == (40, 64)
    assert t(Image.new("RGB", (61, 43))).shape == (3, 40, 64)

    from tasks import get_task

    monkeypatch.setenv("BENCH_MET", str(root))
    task = get_task("met-retrieval")
    result, ctx = run_task("met-retrieval", counting_encoder, batch_size=8)
    metrics = result.metrics
    assert set(metrics) == {m.name for m in task.meta.metrics}
    assert metrics["accuracy_nodistractors"] == 100.0 and metrics["GAP_nodistractors"] == 100.0
    # the distractor's (wrong) prediction lowers GAP only if it is ranked above a correct one
    assert 0 < metrics["GAP"] <= 100.0 and ctx.params["n_distractors"] == 1
    result.validate(task.meta)  # GAP recomputed from its per-query rows equals GAP
    assert result.items["GAP"].values.shape == (5, 3) and result.items["GAP"].statistic == "gap"


@pytest.mark.parametrize("layout", ["official", "vpr"])
def test_amstertime_loader_and_task(tmp_path, monkeypatch, counting_encoder, layout):
    root = tmp_path / "amstertime"
    for i, colour in enumerate(PALETTE):
        if layout == "official":
            _solid(root / "old" / f"{i:04d}.jpg", colour, seed=i)
            _solid(root / "new" / f"{i:04d}.png", colour, seed=50 + i)
        else:
            name = f"@0@{i * 1000}@@@@@{i:04d}@@@@@@@@.jpg"
            _solid(root / "images" / "test" / "queries" / name, colour, seed=i)
            _solid(root / "images" / "test" / "database" / name, colour, seed=50 + i)
    pairs = load_amstertime(root)
    assert len(pairs.old) == len(pairs.new) == len(PALETTE)
    assert all(o.stem.split("@")[-1] == n.stem.split("@")[-1] for o, n in zip(pairs.old, pairs.new))

    from tasks import get_task

    monkeypatch.setenv("BENCH_AMSTERTIME", str(root))
    task = get_task("amstertime-retrieval")
    result, ctx = run_task("amstertime-retrieval", counting_encoder, batch_size=8)
    metrics = result.metrics
    assert set(metrics) == {m.name for m in task.meta.metrics}
    assert metrics["mAP"] == metrics["top1"] == 100.0 and metrics["mAP_random"] < 100.0
    result.validate(task.meta)
    assert {"mAP", "mAP_old2new", "mAP_new2old", "top1"} <= set(result.items)


def test_missing_real_data_names_the_path(tmp_path, monkeypatch):
    from bench.errors import DataMissingError
    from tasks import task_meta

    for name, env in (("roxford-retrieval", "BENCH_ROXFORD"), ("met-retrieval", "BENCH_MET"),
                      ("amstertime-retrieval", "BENCH_AMSTERTIME")):
        monkeypatch.setenv(env, str(tmp_path / "nowhere"))
        data = task_meta(name).data
        assert data.status()[0] is False
        with pytest.raises(DataMissingError, match="nowhere"):
            data.prepare()
