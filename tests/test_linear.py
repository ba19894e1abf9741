"""Linear classification: the head bank against independently trained heads, the metrics by hand,
the split / batch rules, the task on a separable folder, and the vit-tiny end-to-end run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics.classification import (ClassificationMeter, chance_top1, mean_per_class_accuracy, topk_accuracy)
from heads.linear import (CachedFeatures, HeadSpec, LinearBank, LinearConfig, cosine_factor, effective_batch_size,
                          evaluate_bank, head_grid, init_head, linear_input, stratified_split, train_bank)


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_features(n=120, blocks=4, dim=6, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, dim, generator=g) * 2
    cls = torch.randn(n, blocks, dim, generator=g) + centres[y][:, None]
    avg = torch.randn(n, blocks, dim, generator=g) + 0.5 * centres[y][:, None]
    return {"cls": cls.half(), "avgpool": avg.half()}, y


# ----------------------------------------------------------------------------------- the bank
def test_bank_equals_independently_trained_heads():
    """Each head of the bank = an nn.Linear trained alone with torch.optim.SGD + CosineAnnealingLR on
    the same batches from the same initialisation."""
    feats, y = _toy_features()
    dim, classes, bs, seed = 6, 4, 16, 3
    specs = head_grid(lrs=(1e-3, 3e-2, 0.1), blocks=(1, 4))  # 12 heads, 4 weight groups
    cfg = LinearConfig(epochs=3, batch_size=bs, momentum=0.9, weight_decay=1e-4)
    data = CachedFeatures(feats, y, 4, True, torch.device("cpu"))
    steps = math.ceil(len(data) / bs)
    bank = LinearBank(specs, dim, classes, seed=seed)
    train_bank(bank, lambda e: data.epoch(bs, seed, e), steps, cfg, bs)

    for h, spec in enumerate(specs):
        w0, b0 = init_head(spec, dim, classes, seed)
        head = nn.Linear(spec.in_dim(dim), classes)
        with torch.no_grad():
            head.weight.copy_(w0)
            head.bias.copy_(b0)
        opt = torch.optim.SGD(head.parameters(), lr=spec.lr * cfg.lr_scale(bs), momentum=0.9, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
        for epoch in range(cfg.epochs):
            for cls, avg, target in data.epoch(bs, seed, epoch):  # same order: a function of (seed, epoch)
                loss = F.cross_entropy(head(linear_input(cls, avg, spec.n_blocks, spec.avgpool)), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        w, b = bank.head_state(h)
        torch.testing.assert_close(w, head.weight.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b, head.bias.detach(), atol=1e-5, rtol=1e-4)


def test_bank_logits_match_per_head_linear_maps():
    feats, y = _toy_features(n=10)
    specs = [HeadSpec(4, True, 0.1), HeadSpec(1, False, 0.1), HeadSpec(4, True, 0.01)]  # groups interleaved
    bank = LinearBank(specs, 6, 4, seed=0)
    cls, avg = feats["cls"].float(), feats["avgpool"].float()
    logits = bank(cls, avg)
    for h, spec in enumerate(specs):
        w, b = bank.head_state(h)
        torch.testing.assert_close(logits[:, h], linear_input(cls, avg, spec.n_blocks, spec.avgpool) @ w.T + b)


def test_linear_input_follows_dinov2():
    cls = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)  # (B, L, D), block -1 is the last
    avg = -cls
    assert torch.equal(linear_input(cls, avg, 1, False), cls[:, -1])
    # last 4 blocks' CLS oldest first, then the last block's avgpool
    expected = torch.cat([cls[:, 0], cls[:, 1], cls[:, 2], cls[:, 3], avg[:, 3]], 1)
    assert torch.equal(linear_input(cls, avg, 4, True), expected)


def test_grid_and_schedule():
    specs = head_grid()
    assert len(specs) == 52 and len({s.name for s in specs}) == 52
    assert min(s.lr for s in specs) == 1e-5 and max(s.lr for s in specs) == 0.1
    assert cosine_factor(0, 10) == 1.0 and math.isclose(cosine_factor(5, 10), 0.5) and cosine_factor(10, 10) < 1e-12
    # init is a function of (seed, spec): the same head starts the same in any bank
    a = LinearBank(specs, 8, 3, seed=1).head_state(17)
    b = LinearBank([specs[17]], 8, 3, seed=1).head_state(0)
    assert torch.equal(a[0], b[0])


def test_batch_size_and_split_rules():
    assert effective_batch_size(1_281_167) == 1024
    assert effective_batch_size(51) == 8 and effective_batch_size(1278) == 128
    labels = np.repeat(np.arange(5), [1, 2, 10, 30, 7])
    train, held = stratified_split(labels, 0.1, seed=0)
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(labels)
    counts = np.bincount(labels[held], minlength=5)
    assert counts.tolist() == [0, 1, 1, 3, 1]  # singletons stay in train; round(0.1 n), at least 1
    assert np.array_equal(held, stratified_split(labels, 0.1, seed=0)[1])
    assert not np.array_equal(held, stratified_split(labels, 0.1, seed=1)[1])


# ------------------------------------------------------------------------------------ metrics
def test_classification_metrics_by_hand():
    # 4 samples, 6 classes
    scores = torch.tensor([
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # target 0: top-1 hit
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # target 4: 5th best -> top-5 hit, top-1 miss
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # target 5: worst -> miss both
        [0.0, 0.0, 0.1, 0.9, 0.0, 0.0],  # target 3: hit
    ])
    targets = torch.tensor([0, 4, 5, 3])
    assert topk_accuracy(scores, targets, 1) == 50.0
    assert topk_accuracy(scores, targets, 5) == 75.0
    pred = scores.argmax(1)  # 0, 0, 0, 3
    # per class present: class 0 1/1, class 3 1/1, class 4 0/1, class 5 0/1 -> mean 50%
    assert mean_per_class_accuracy(pred, targets, 6) == 50.0
    # imbalance: 3 samples of class 0 all right, 1 of class 1 wrong -> top-1 75%, mean-per-class 50%
    assert mean_per_class_accuracy(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]), 2) == 50.0
    assert math.isclose(chance_top1(14), 100 / 14)

    meter = ClassificationMeter(num_heads=2, num_classes=6)
    both = torch.stack([scores, -scores], 1)  # head 1 ranks everything backwards
    meter.update(both[:2], targets[:2])
    meter.update(both[2:], targets[2:])
    r = meter.results()
    assert r[0] == {"top1": 50.0, "top5": 75.0, "mean_per_class": 50.0}
    # head 1: argmin -> 5, 5, 5, 0 (first of the zeros ties... compute with torch for the tie order)
    assert r[1]["top1"] == topk_accuracy(-scores, targets, 1) and r[1]["top5"] == topk_accuracy(-scores, targets, 5)


def test_evaluate_bank_on_separable_features():
    feats, y = _toy_features(n=200, seed=1)
    data = CachedFeatures(feats, y, 4, True, torch.device("cpu"))
    bank = LinearBank(head_grid(lrs=(1e-4, 0.1)), 6, 4, seed=0)
    train_bank(bank, lambda e: data.epoch(32, 0, e), math.ceil(200 / 32), LinearConfig(epochs=5), 32)
    res = evaluate_bank(bank, data)
    assert len(res) == 8 and max(r["top1"] for r in res) > 90.0


# ----------------------------------------------------------------------------------- the task
def test_linear_task_on_a_separable_folder(tmp_path, counting_encoder, monkeypatch):
    """synth-cls-linear's evaluate on a colour-coded ImageFolder: the chosen head beats chance by far,
    its config is in the params and every head's scores land in the JSON artifact."""
    from tasks import get_task
    from tests.conftest import run_task, write_image_folder

    root = write_image_folder(tmp_path / "cls", {"red": 30, "green": 30, "blue": 30, "yellow": 30}, size=(32, 32))
    task = get_task("synth-cls-linear")
    result, ctx = run_task("synth-cls-linear", counting_encoder, root, artifacts_dir=tmp_path / "art")
    metrics = result.metrics
    assert set(metrics) == {m.name for m in task.meta.metrics}
    assert metrics["chance_top1"] == 25.0 and metrics["top1"] > 90.0 and metrics["top5"] == 100.0
    result.validate(task.meta)  # per-image items reproduce top1, top5 and the mean per-class accuracy
    assert set(result.items) == {"top1", "top5", "mean_per_class"}
    p = ctx.params
    assert p["n_heads"] == 52 and p["batch_size"] == 8
    assert p["n_train"] + p["n_heldout"] == 120 and p["n_heldout"] == 12
    assert p["best_head"] == HeadSpec(p["best_n_blocks"], p["best_avgpool"], p["best_lr"]).name
    art = json.loads((tmp_path / "art" / "linear_heads.json").read_text())
    assert len(art["heads"]) == 52 and art["chosen"] == p["best_head"]
    assert {"heldout", "val", "lr", "n_blocks", "avgpool"} <= set(art["heads"][0])

    aug, ctx2 = run_task("synth-cls-linear", counting_encoder, root, mode="augmented")
    assert ctx2.params["train_transform"] == "random-resized-crop+hflip" and aug.metrics["top1"] > 50.0


# --------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_end_to_end_vit_tiny_synth():
    pytest.importorskip("bench.encoders.zoo.vit_tiny")
    from bench.data.synth import ensure  # noqa: F401  (the synthetic generator must exist)
    from bench.tracking import DIR_TAG, Tracker
    from runners.benchmark import RunConfig, run_benchmark
    from tasks import get_task

    results = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["synth-cls-linear", "synth-retrieval"],
                                      progress=False, synth_preset="tiny"))
    by_task = {r.task: r for r in results}
    client = Tracker().client
    for name, r in by_task.items():
        meta = get_task(name).meta
        assert set(r.metrics) == {m.name for m in meta.metrics}
        tags = client.get_run(r.run_id).data.tags
        logged = client.get_run(r.run_id).data.metrics
        for m in meta.metrics:
            assert tags[DIR_TAG + m.name] == m.direction and r.metrics[m.name].higher_is_better
            assert tags["bench.role." + m.name] == m.role == r.metrics[m.name].role
            assert m.name in logged

    lin = {k: v.value for k, v in by_task["synth-cls-linear"].metrics.items()}
    params = by_task["synth-cls-linear"].params
    assert math.isclose(lin["chance_top1"], 100 / int(params["num_classes"]))
    assert 0.0 <= lin["top1"] <= lin["top5"] <= 100.0 and params["n_heads"] == "52"
    # NOTE: "top1 > chance_top1" is asserted strictly by the separable-folder test above (same evaluate
    # code). On the tiny preset (51 train / 33 val crops of unseen object instances, random-init
    # vit-tiny) top-1 is at chance level (3.0% vs 7.1% with seed 0); on the small preset it is 16.9% vs
    # 6.7%. So here only the bookkeeping is checked.
    assert lin["heldout_top1"] >= 0.0 and params["best_head"] in {s.name for s in head_grid()}

    ret = {k: v.value for k, v in by_task["synth-retrieval"].metrics.items()}
    assert ret["mAP_medium"] > ret["mAP_medium_random"]
    assert ret["mAP_hard"] > ret["mAP_hard_random"]
