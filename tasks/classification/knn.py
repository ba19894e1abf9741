"""kNN classification on frozen CLS features (paper Table 5; DINO protocol)."""
from __future__ import annotations

import torch

from bench.config import ConfigError
from bench.context import EvalContext
from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import FeatureSpec
from bench.task import FeatureProbe, FeatureRequest, TaskResult
from heads.knn import KnnConfig, effective_ks, knn_classify

CLS = FeatureSpec(outputs=("cls",), n_last_blocks=1)


class KnnProbe(FeatureProbe):
    Config = KnnConfig

    def check_config(self, cfg: KnnConfig) -> None:
        declared = {m.name for m in self.meta.metrics}
        wanted = {f"top1_k{k}" for k in cfg.ks}
        if not wanted <= declared or self.meta.headline not in wanted or cfg.temperature <= 0:
            raise ConfigError(f"{self.name}: ks {list(cfg.ks)} must be a subset of the declared "
                              f"{sorted(int(n.split('_k')[1]) for n in declared if n.startswith('top1_'))} "
                              f"that keeps the headline {self.meta.headline} (k={self.meta.headline.split('_k')[1]}), "
                              f"and the temperature > 0")

    def inputs(self, ctx: EvalContext, cfg: KnnConfig) -> dict[str, FeatureRequest]:
        transform = EvalTransform(ctx.encoder.preprocess)
        train, val = ImageFolder(ctx.root, "train", transform), ImageFolder(ctx.root, "val", transform)
        if train.classes != val.classes:
            raise ValueError(f"train and val class folders differ under {ctx.root}")
        return {s: FeatureRequest(d, CLS, d.identity(), transform.describe()) for s, d in (("train", train), ("val", val))}

    def score(self, ctx: EvalContext, cfg: KnnConfig, fitted, inputs, features) -> TaskResult:
        train, val = inputs["train"].dataset, inputs["val"].dataset
        ctx.log_params(transform=inputs["train"].transform, n_train=len(train),
                       n_val=len(val), num_classes=len(train.classes),
                       ks_effective=",".join(map(str, effective_ks(cfg, len(train)).values())))
        metrics = knn_classify(features["train"]["cls"][:, -1], torch.tensor(train.targets),
                               features["val"]["cls"][:, -1], torch.tensor(val.targets), len(train.classes), cfg,
                               device=ctx.device.type)
        return TaskResult(metrics)
