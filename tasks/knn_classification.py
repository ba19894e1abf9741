"""kNN classification on frozen CLS features (paper Table 5; DINO protocol)."""
from __future__ import annotations

from pathlib import Path

import torch

from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import FeatureSpec
from heads.knn import KnnConfig, effective_ks, knn_classify
from bench.data.imagefolder import IMAGENET
from tasks import Metric, SyntheticData, Task, register_task

CONFIG = KnnConfig(ks=(10, 20, 100, 200), temperature=0.07)
PROTOCOL = {
    "protocol": "dino-knn",
    "features": "cls-last-block-l2norm",
    "similarity": "cosine",
    "ks": ",".join(map(str, CONFIG.ks)),
    "temperature": CONFIG.temperature,
    "voting": "sum-exp(sim/T)-one-top-max-k-pass",
    "search": "faiss-IndexFlatIP",
}
METRICS = tuple(
    Metric(f"top{t}_k{k}", True, f"top-{t} accuracy (%) of the weighted {k}-NN vote")
    for k in CONFIG.ks for t in (1, 5)
)


def evaluate(ctx, root: Path) -> dict[str, float]:
    transform = EvalTransform(ctx.encoder.preprocess)
    train, val = ImageFolder(root, "train", transform), ImageFolder(root, "val", transform)
    if train.classes != val.classes:
        raise ValueError(f"train and val class folders differ under {root}")
    spec = FeatureSpec(outputs=("cls",), n_last_blocks=1)
    f_train = ctx.features(train, train.identity(), transform.describe(), spec, "train")["cls"][:, -1]
    f_val = ctx.features(val, val.identity(), transform.describe(), spec, "val")["cls"][:, -1]
    ctx.log_params(transform=transform.describe(), n_train=len(train), n_val=len(val),
                   num_classes=len(train.classes),
                   ks_effective=",".join(map(str, effective_ks(CONFIG, len(train)).values())))
    return knn_classify(f_train, torch.tensor(train.targets), f_val, torch.tensor(val.targets),
                        len(train.classes), CONFIG, device=ctx.device.type)


register_task(Task(
    name="synth-cls-knn", group="classification",
    description="kNN on object-category crops of the synthetic scenes (ImageFolder twin of ImageNet)",
    data=SyntheticData("cls"), metrics=METRICS, headline="top1_k20", protocol=PROTOCOL, evaluate=evaluate,
))

register_task(Task(
    name="imagenet-knn", group="classification",
    description="ImageNet-1k kNN, DINO protocol (train -> val)",
    data=IMAGENET,
    metrics=METRICS, headline="top1_k20", protocol=PROTOCOL, evaluate=evaluate, paper_task="imagenet-knn",
))
