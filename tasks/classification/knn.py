"""kNN classification on frozen CLS features (paper Table 5; DINO protocol)."""
from __future__ import annotations

import torch

from bench.config import ConfigError
from bench.context import EvalContext
from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import FeatureSpec
from bench.metrics.classification import topk_accuracy, topk_hits
from bench.search import cosine_topk, resolve_backend
from bench.task import FeatureProbe, FeatureRequest, ItemScores, TaskResult
from heads.knn import KnnConfig, effective_ks, knn_vote
from tasks.classification.linear import LinearProbeConfig, cached_spec


def cls_spec(num_blocks: int) -> FeatureSpec:
    """The linear probe's cache entry at its default depth: one extraction of the same images serves
    both probes; kNN reads the last block's CLS of it."""
    return cached_spec(LinearProbeConfig().n_blocks, num_blocks)


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
        spec = cls_spec(ctx.encoder.num_blocks)
        return {s: FeatureRequest(d, spec, d.identity(), transform.describe()) for s, d in (("train", train), ("val", val))}

    def score(self, ctx: EvalContext, cfg: KnnConfig, fitted, inputs, features) -> TaskResult:
        train, val = inputs["train"].dataset, inputs["val"].dataset
        ctx.log_params(transform=inputs["train"].transform, n_train=len(train),
                       n_val=len(val), num_classes=len(train.classes),
                       ks_effective=",".join(map(str, effective_ks(cfg, len(train)).values())),
                       search_backend=resolve_backend(min(max(cfg.ks), len(train)), ctx.device.type, cfg.search))
        metrics, items = knn_with_items(features["train"]["cls"][:, -1], torch.tensor(train.targets),
                                        features["val"]["cls"][:, -1], torch.tensor(val.targets), len(train.classes),
                                        cfg, device=ctx.device.type)
        return TaskResult(metrics, items=items)


def knn_with_items(train_feats, train_labels, test_feats, test_labels, num_classes: int, cfg: KnnConfig,
                   device: str = "cpu") -> tuple[dict[str, float], dict[str, ItemScores]]:
    """`heads.knn.knn_classify`'s metrics from the same single search, plus each test image's hit
    (x 100, so the mean is the accuracy) for every metric: the intervals bootstrap these."""
    max_k = min(max(cfg.ks), len(train_feats))
    sims, idx = cosine_topk(test_feats, train_feats, max_k, device=device, backend=cfg.search)
    neighbour_labels = train_labels[idx]
    metrics, items = {}, {}
    for k in cfg.ks:
        scores = knn_vote(sims, neighbour_labels, num_classes, min(k, max_k), cfg.temperature)
        for top in (1, 5):
            name = f"top{top}_k{k}"
            metrics[name] = topk_accuracy(scores, test_labels, top)
            items[name] = ItemScores(topk_hits(scores, test_labels, top).double().numpy(), "mean", 100.0)
    return metrics, items
