"""Image classification on frozen features (paper Table 5): kNN (DINO) and the linear bank (DINOv2).
Metadata only; behaviour lives in `knn.py` and `linear.py`."""
from __future__ import annotations

from bench.data.sources import RealData, SyntheticData
from bench.metrics import Metric, diagnostic, reference
from bench.task import TaskMeta
from tasks import register_task

IMAGENET = RealData("ImageNet-1k", "imagenet", "BENCH_IMAGENET", ("train", "val"),
                    "Download ILSVRC2012 from https://image-net.org (train and val tarballs) and arrange it as "
                    "root/{train,val}/<wnid>/*.JPEG (e.g. with the valprep.sh script).")
SYNTH_CLS = SyntheticData("cls")

KNN_KS = (10, 20, 100, 200)
KNN_METRICS = tuple(Metric(f"top{t}_k{k}", True, f"top-{t} accuracy (%) of the weighted {k}-NN vote", "%")
                    for k in KNN_KS for t in (1, 5))
KNN_NOTES = {
    "features": "cls-last-block-l2norm",
    "similarity": "cosine",
    "voting": "sum-exp(sim/T)-one-top-max-k-pass",
    "search": "exact top-k (bench.search; the backend run is the search_backend param)",
}

LINEAR_METRICS = (
    Metric("top1", True, "top-1 accuracy (%) on val of the head chosen on the held-out split", "%"),
    Metric("top5", True, "top-5 accuracy (%) on val of the chosen head", "%"),
    Metric("mean_per_class", True, "mean per-class accuracy (%) on val of the chosen head", "%"),
    diagnostic("heldout_top1", True, "top-1 (%) of the chosen head on the held-out train split (selection score)", "%"),
    reference("chance_top1", True, "100 / number of classes", "%"),
)
LINEAR_NOTES = {
    "heads": "13 lrs x last{1,4} blocks CLS x {with,without} last-block avgpool, one bank",
    "lr_scaling": "lr*batch/256",
    "optimizer": "sgd-momentum0.9-wd0",
    "schedule": "cosine-per-iteration",
    "init": "normal(0,0.01)-bias0",
    "selection": "best top1 on a stratified split held out from train; reported on val",
}

register_task(TaskMeta(
    name="synth-cls-knn", group="classification",
    description="kNN on object-category crops of the synthetic scenes (ImageFolder twin of ImageNet)",
    data=SYNTH_CLS, metrics=KNN_METRICS, headline="top1_k20", protocol="dino-knn", twin_of="imagenet-knn",
    notes=KNN_NOTES), "tasks.classification.knn:KnnProbe")
register_task(TaskMeta(
    name="imagenet-knn", group="classification", description="ImageNet-1k kNN, DINO protocol (train -> val)",
    data=IMAGENET, metrics=KNN_METRICS, headline="top1_k20", protocol="dino-knn", paper_task="imagenet-knn",
    reference="Caron et al. 2021 (DINO), eval_knn.py", notes=KNN_NOTES), "tasks.classification.knn:KnnProbe")
register_task(TaskMeta(
    name="synth-cls-linear", group="classification",
    description="Linear probe bank on object-category crops of the synthetic scenes (twin of ImageNet linear)",
    data=SYNTH_CLS, metrics=LINEAR_METRICS, headline="top1", protocol="dinov2-linear", twin_of="imagenet-linear",
    notes=LINEAR_NOTES), "tasks.classification.linear:LinearProbe")
register_task(TaskMeta(
    name="imagenet-linear", group="classification",
    description="ImageNet-1k linear probe, DINOv2 protocol (52-head bank; train -> val)",
    data=IMAGENET, metrics=LINEAR_METRICS, headline="top1", protocol="dinov2-linear", paper_task="imagenet-linear",
    reference="Oquab et al. 2023 (DINOv2), eval/linear.py", notes=LINEAR_NOTES),
    "tasks.classification.linear:LinearProbe")
