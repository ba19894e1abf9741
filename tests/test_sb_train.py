"""End-to-end SpatialBoost training on the tiny synthetic recipe (slow: ~1-3 min on 2 CPU cores).

Stages 1-3 with the tiny random-init Qwen2 LLM; stage 3 must lower the loss on a fixed set of
stage-3 samples, and the checkpoint must load as `vit-tiny+sb`. Sizes are trimmed further than the
tiny profile (max_length 512 keeps the first turns of each conversation, step caps) to stay fast.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.conftest import module_home

pytestmark = pytest.mark.slow

FAST = ["max_length=512", "eval_samples=8", "threads=1",
        "stage1.max_steps=3", "stage2.max_steps=6",
        "stage3.micro_batch=4", "stage3.global_batch=4", "stage3.max_steps=8", "stage3.lr=1e-3"]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    with module_home(tmp_path_factory, "sb_home") as home:
        yield home


@pytest.fixture(scope="module")
def trained(shared_home):
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    cfg = resolve_config(FAST, encoder="vit-tiny", preset="tiny", progress=False)
    path = train(cfg)
    log = json.loads((path.parent / "train_log.json").read_text())
    return path, log


def test_three_stages_lower_the_stage3_loss(trained):
    path, log = trained
    assert path.name == "boosted.safetensors" and path.is_file()
    assert (path.parent / "config.yaml").is_file()
    s1, s2, s3 = (log["stages"][k] for k in "123")
    assert s1["trainable"] == 4  # projector: 2 weights + 2 biases
    assert s2["loss_last"] < s2["loss_first"]
    assert s3["eval_loss_after"] < s3["eval_loss_before"], s3
    assert s3["loss_last"] < s3["loss_first"], s3["losses"]
    gates = s3["gates"]
    assert len(gates) == 12 and any(g["min"] < 0.5 or g["max"] > 0.5 for g in gates), "gates never moved"
    assert 25 < log["param_growth"]["growth_pct"] < 40
    assert any(o.startswith("stage2.lr") for o in log["config"]["overrides"])


def test_checkpoint_loads_as_sb_encoder(trained, shared_home):
    from bench.encoders import load_encoder
    from bench.spatialboost.checkpoint import read_metadata

    path, _ = trained
    boosted = load_encoder("vit-tiny+sb")
    base = load_encoder("vit-tiny")
    assert boosted.name == "vit-tiny+sb" and boosted.weights_id != base.weights_id
    meta = read_metadata(path)
    assert meta["base_encoder"] == "vit-tiny" and meta["mode"] == "dual"
    assert json.loads(meta["config"])["llm"] == "qwen2-tiny"
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = boosted(x).patches, base(x).patches
        assert not torch.equal(a, b)  # trained: it is not the base encoder
        assert torch.equal(a, load_encoder("vit-tiny+sb")(x).patches)


def test_prerequisite_trains_a_missing_checkpoint(trained, shared_home, monkeypatch):
    """No checkpoint: load_encoder refuses (trains nothing); the prerequisite's run() trains (stubbed: copy)."""
    import bench.spatialboost.train as train_mod
    from bench.encoders import encoder_prerequisite, load_encoder
    from bench.errors import NotTrainedError
    from bench.spatialboost.encoder import checkpoint_path

    path, _ = trained
    calls = []

    def fake_train(cfg, stages=(1, 2, 3)):
        calls.append((cfg.encoder, cfg.llm, cfg.preset, stages))
        dst = checkpoint_path("vit-tiny+sb")
        shutil.copy(backup, dst)
        return dst

    assert encoder_prerequisite("vit-tiny+sb") is None  # the checkpoint exists
    backup = path.with_suffix(".bak")
    shutil.move(path, backup)
    monkeypatch.setattr(train_mod, "train", fake_train)
    try:
        with pytest.raises(NotTrainedError, match="bench sb train --encoder vit-tiny\\+sb --stage all"):
            load_encoder("vit-tiny+sb")
        assert calls == []
        step = encoder_prerequisite("vit-tiny+sb")
        assert step.ready and step.run is not None and step.estimate_seconds > 0
        # the estimate is the wall time the earlier training recorded for its three stages
        log = json.loads((path.parent / "train_log.json").read_text())
        assert step.estimate_seconds == pytest.approx(sum(log["stages"][k]["seconds"] for k in "123"))
        step.run()
        enc = load_encoder("vit-tiny+sb")
    finally:
        if backup.exists():
            shutil.move(backup, path)  # restore the original (identical) file
    assert calls == [("vit-tiny", "qwen2-tiny", "tiny", (1, 2, 3))] and enc.name == "vit-tiny+sb"


def test_ablation_modes_resume_from_stage2(trained, shared_home):
    from bench.encoders import encoder_prerequisite, load_encoder
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    step = encoder_prerequisite("vit-tiny+sb-lora")  # plans stage 3 only, on top of vit-tiny+sb's stage 2
    assert step.ready and "stage 3" in step.action and "vit-tiny+sb/stage2.safetensors" in step.action
    cfg = resolve_config(FAST + ["stage3.max_steps=1", "eval_samples=0"], encoder="vit-tiny", mode="lora",
                         progress=False, track=False)
    path = train(cfg, (3,))
    assert path.parent.name == "vit-tiny+sb-lora"
    log = json.loads((path.parent / "train_log.json").read_text())
    assert log["resumed_from"].endswith("vit-tiny+sb/stage2.safetensors")
    enc = load_encoder("vit-tiny+sb-lora")  # an ablation checkpoint loads by its name
    assert enc.name == "vit-tiny+sb-lora" and enc.sb_metadata["mode"] == "lora"
    assert encoder_prerequisite("vit-tiny+sb-lora") is None

    cfg = resolve_config(FAST + ["stage3.max_steps=2"], encoder="vit-tiny+sb-simpleft", progress=False,
                         track=False)
    path = train(cfg)
    assert path.parent.name == "vit-tiny+sb-simpleft"
    enc = load_encoder("vit-tiny+sb-simpleft")
    assert enc.name == "vit-tiny+sb-simpleft" and enc.sb_metadata["objective"] == "simple-ft"


def test_training_is_tracked(trained, shared_home):
    from bench.tracking import EXPERIMENT, _client

    client = _client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`bench.kind` = 'sb-train'")
    run = next(r for r in runs if r.info.run_name == "sb-train vit-tiny+sb")
    m = run.data.metrics
    for key in ("stage1_loss", "stage2_loss", "stage3_loss", "stage3_lr", "stage3_tokens_per_s", "alpha_mean_l00",
                "alpha_min_l11", "alpha_max_l05", "seconds_total"):
        assert key in m, key
    assert len(client.get_metric_history(run.info.run_id, "stage3_loss")) == 8
    assert run.data.params["sb_llm"] == "qwen2-tiny" and float(run.data.params["sb_param_growth_pct"]) > 20


def test_singleview_stage2_drops_the_multiview_samples(trained, shared_home):
    """Table 7's single- vs multi-view arm: ``+sb-singleview`` trains stage 2 on single-image samples only."""
    from types import SimpleNamespace

    from bench.spatialboost.build import load_recipe_for
    from bench.spatialboost.config import output_name, resolve_config
    from bench.spatialboost.trainer import Trainer
    from bench.vlm.llava import sample_images

    counts = {}
    for views in ("multi", "single"):
        cfg = resolve_config(FAST, encoder="vit-tiny", views=views, progress=False, track=False)
        fake = SimpleNamespace(cfg=cfg, recipe=load_recipe_for(cfg, build=False), transform=None)
        ds = Trainer.dataset(fake, 2)
        parts = ds.datasets if hasattr(ds, "datasets") else [ds]
        n_images = [len(sample_images(s)) for part in parts for s in part.samples]
        counts[views] = (len(n_images), max(n_images))
        if views == "single":
            assert output_name(cfg) == "vit-tiny+sb-singleview"
            assert Trainer.dataset(fake, 3).samples == parts[-1].samples  # stage 3 untouched
    manifest = load_recipe_for(cfg, build=False).manifest["counts"]["stage2_multiview"]
    assert counts["multi"][1] > 1 and counts["single"][1] == 1
    assert counts["multi"][0] - counts["single"][0] == sum(manifest.values()) > 0
    assert resolve_config(encoder="vit-tiny+sb-singleview").views == "single"
