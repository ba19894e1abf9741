"""Image retrieval with frozen CLS features ranked by cosine similarity (paper Table 5, App. A.7).
Metadata only; behaviour in `probes.py`.

* Revisited Oxford / Paris (and the synthetic twin in the same format): revisitop Easy / Medium /
  Hard mAP and mP@{1,5,10}; Hard mAP is the headline.
* Met: 1-NN exhibit prediction with the cosine similarity as confidence; GAP with distractors.
* AmsterTime: archival <-> street view, the official hit-list mAP within the first 128.
The mean score of seeded random rankings (`*_random`) is a reference: the floor a descriptor must beat.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.sources import RealData, SyntheticData
from bench.metrics import Metric, reference
from bench.task import TaskMeta
from tasks import register_task

PROTOCOLS = ("easy", "medium", "hard")  # revisitop's three protocols
KAPPAS = (1, 5, 10)

REVISITED_METRICS = tuple(
    [Metric(f"mAP_{p}", True, f"revisitop mAP (%), {p} protocol, trapezoid AP, junk removed", "%") for p in PROTOCOLS]
    + [Metric(f"mP{k}_{p}", True, f"revisitop mean precision at {k} (%), {p} protocol", "%")
       for p in PROTOCOLS for k in KAPPAS]
    + [reference(f"mAP_{p}_random", True, f"mean mAP (%) of 10 seeded random rankings, {p}", "%") for p in PROTOCOLS]
)
REVISITED_NOTES = {
    "features": "cls-last-block",
    "similarity": "cosine on l2-normalised features, exact search (backend: the search_backend param)",
    "ranking": "full database; queries cropped to bbx first",
    "ap_rule": "revisitop trapezoid, junk removed from the ranking",
    "easy": "ok=easy junk=junk+hard", "medium": "ok=easy+hard junk=junk", "hard": "ok=hard junk=junk+easy",
    "empty_queries": "excluded from mean and count (revisitop)",
}
MET_METRICS = (
    Metric("GAP", True, "global average precision (%) of the 1-NN predictions, all test queries incl. distractors", "%"),
    Metric("GAP_nodistractors", True, "GAP (%) over the non-distractor test queries only", "%"),
    Metric("accuracy_nodistractors", True, "1-NN exhibit accuracy (%) of the non-distractor test queries", "%"),
    reference("GAP_random", True, "mean GAP (%) of 10 seeded random predictions/confidences", "%"),
)
MET_NOTES = {
    "features": "cls-last-block",
    "classifier": "1-NN exhibit, confidence = cosine similarity",
    "similarity": "cosine on l2-normalised features, exact search (backend: the search_backend param)",
    "resize": "native size, each side snapped to the nearest multiple of the patch size",
    "queries": "testset.json (Met + distractors)",
}
AMSTERTIME_K = 128  # the official README evaluates hit lists of 128
AMSTERTIME_METRICS = (
    Metric("mAP", True, f"official hit-list mAP (%) within the first {AMSTERTIME_K}, both directions pooled", "%"),
    Metric("top1", True, "pair retrieved first (%), both directions pooled", "%"),
    Metric("top5", True, "pair among the first 5 (%), both directions pooled", "%"),
    Metric("mAP_old2new", True, "mAP (%) of archival queries against the street-view images", "%"),
    Metric("mAP_new2old", True, "mAP (%) of street-view queries against the archival images", "%"),
    reference("mAP_random", True, "mean mAP (%) of 10 seeded random rankings", "%"),
)
AMSTERTIME_NOTES = {
    "features": "cls-last-block",
    "similarity": "cosine on l2-normalised features, exact search (backend: the search_backend param)",
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


ROXFORD = RealData(
    "Revisited Oxford 5k", "roxford5k", "BENCH_ROXFORD", ("gnd_roxford5k.pkl", "jpg"),
    "Download http://cmp.felk.cvut.cz/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl and the "
    "Oxford 5k images (oxbuild_images-v1.tgz from https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/) "
    "extracted into jpg/ (as revisitop's download.py does).")
RPARIS = RealData(
    "Revisited Paris 6k", "rparis6k", "BENCH_RPARIS", ("gnd_rparis6k.pkl", "jpg"),
    "Download http://cmp.felk.cvut.cz/revisitop/data/datasets/rparis6k/gnd_rparis6k.pkl and the "
    "Paris 6k images (paris_1-v1.tgz, paris_2-v1.tgz from https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/), "
    "all .jpg files flattened into jpg/ (as revisitop's download.py does).")
MET = RealData(
    "The Met", "met", "BENCH_MET", ("ground_truth/testset.json", "images"),
    "Download the Met images and ground truth from http://cmp.felk.cvut.cz/met/ and extract them as "
    "<root>/images/{MET,test_met,test_other,test_noart,...} and <root>/ground_truth/*.json.")
AMSTERTIME = AmsterTimeData(
    "AmsterTime", "amstertime", "BENCH_AMSTERTIME", ("old", "new"),
    "Download AmsterTime from https://doi.org/10.4121/19580806 (or Kaggle byildiz/amstertime) and extract it so "
    "that <root>/old/NNNN.jpg and <root>/new/NNNN.png exist (the VPR-datasets-downloader layout "
    "<root>/images/test/{queries,database}/ is accepted too).")

REVISITED = "tasks.retrieval.probes:RevisitedRetrieval"
register_task(TaskMeta(
    name="synth-retrieval", group="retrieval",
    description="Instance retrieval on the synthetic scenes in the revisited-Oxford format (twin of rOxford/rParis)",
    data=SyntheticData("retrieval"), metrics=REVISITED_METRICS, headline="mAP_hard", protocol="revisitop",
    twin_of="roxford-retrieval", notes=REVISITED_NOTES), REVISITED, gnd_file="gnd_synth.pkl")
register_task(TaskMeta(
    name="roxford-retrieval", group="retrieval",
    description="Revisited Oxford 5k (Radenovic et al. 2018), CLS cosine ranking, revisitop mAP",
    data=ROXFORD, metrics=REVISITED_METRICS, headline="mAP_hard", protocol="revisitop",
    paper_task="roxford-retrieval", reference="Radenovic et al. 2018, revisitop", notes=REVISITED_NOTES),
    REVISITED, gnd_file="gnd_roxford5k.pkl")
register_task(TaskMeta(
    name="rparis-retrieval", group="retrieval",
    description="Revisited Paris 6k (Radenovic et al. 2018), CLS cosine ranking, revisitop mAP",
    data=RPARIS, metrics=REVISITED_METRICS, headline="mAP_hard", protocol="revisitop",
    paper_task="rparis-retrieval", reference="Radenovic et al. 2018, revisitop", notes=REVISITED_NOTES),
    REVISITED, gnd_file="gnd_rparis6k.pkl")
register_task(TaskMeta(
    name="met-retrieval", group="retrieval",
    description="The Met (Ypsilantis et al. 2021): artwork instance recognition by 1-NN, GAP with distractors",
    data=MET, metrics=MET_METRICS, headline="GAP", protocol="met-gap", paper_task="met-retrieval",
    reference="Ypsilantis et al. 2021", notes=MET_NOTES), "tasks.retrieval.probes:MetRetrieval")
register_task(TaskMeta(
    name="amstertime-retrieval", group="retrieval",
    description="AmsterTime (Yildiz et al. 2022): archival vs street-view place retrieval, 1231 pairs",
    data=AMSTERTIME, metrics=AMSTERTIME_METRICS, headline="mAP", protocol="amstertime-retrieval",
    paper_task="amstertime-retrieval", reference="Yildiz et al. 2022", notes=AMSTERTIME_NOTES),
    "tasks.retrieval.probes:AmsterTimeRetrieval")
