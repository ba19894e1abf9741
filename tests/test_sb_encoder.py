"""`NAME+sb[-TAG]` names: one grammar for the trainer's ablations, loading that never trains, and the
prerequisite a planner asks for. Fast: nothing here trains."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.encoders.naming import (SB_DEFAULTS, SB_LEVELS, SB_TAGS, EncoderName, parse_encoder_name, sb_base, tag_for,
                                   tag_overrides)
from bench.registry import UnknownNameError


def _all_names(base="vit-tiny"):
    """The method, every single-tag ablation and some combinations."""
    yield f"{base}+sb"
    for tag in SB_TAGS:
        yield f"{base}+sb-{tag}"
    yield f"{base}+sb-simpleft-lora"
    yield f"{base}+sb-full-reverse-pixel-scene"
    yield f"{base}+sb-lora-random-caption"


@pytest.mark.parametrize("name", list(_all_names()))
def test_every_ablation_name_round_trips_through_the_trainer(name):
    from bench.spatialboost.config import output_name, resolve_config

    parsed = parse_encoder_name(name)
    assert str(parsed) == name and parsed.base == "vit-tiny" and parsed.variant == "sb"
    cfg = resolve_config(encoder=name)  # the name sets the trainer's settings...
    assert cfg.encoder == "vit-tiny"
    for axis, value in tag_overrides(parsed).items():
        assert str(getattr(cfg, axis)) == value
    assert output_name(cfg) == name  # ...and the trainer writes exactly that folder
    settings = {axis: getattr(cfg, axis) for axis in SB_DEFAULTS}
    assert tag_for(settings) == parsed.tag


def test_grammar_canonicalises_and_knows_defaults():
    assert parse_encoder_name("vit-tiny") == EncoderName("vit-tiny")
    assert parse_encoder_name("DINOv3+SB") == EncoderName("DINOv3", "sb")
    assert str(parse_encoder_name("x+sb-reverse-lora")) == "x+sb-lora-reverse"  # canonical atom order
    assert str(parse_encoder_name("x+sb-scene-pixel")) == "x+sb-pixel-scene"  # levels in their own order
    assert str(parse_encoder_name("x+sb-caption-scene-object-pixel")) == "x+sb"  # all levels = the method
    assert tag_overrides("x+sb-pixel-object") == {"levels": "pixel,object"}
    assert tag_for({"mode": "dual", "levels": "caption+scene+object+pixel"}) is None  # the method's defaults
    assert tag_for({"levels": "scene,pixel"}) == "pixel-scene"
    assert sb_base("DINOv3+SB") == "DINOv3" and sb_base("x+sb-lora") == "x" and sb_base("x") is None
    assert SB_LEVELS == __import__("bench.spatialboost.data", fromlist=["LEVELS"]).LEVELS
    from bench.spatialboost.config import MODES, OBJECTIVES, TrainConfig
    from bench.spatialboost.data import ORDERS

    assert {ov["mode"] for ov in SB_TAGS.values() if "mode" in ov} | {SB_DEFAULTS["mode"]} == set(MODES)
    assert {ov["objective"] for ov in SB_TAGS.values() if "objective" in ov} | {"llm"} == set(OBJECTIVES)
    assert {ov["order"] for ov in SB_TAGS.values() if "order" in ov} | {"forward"} == set(ORDERS)
    cfg = TrainConfig()
    assert {axis: str(getattr(cfg, axis)) for axis in SB_DEFAULTS} == SB_DEFAULTS


@pytest.mark.parametrize("bad,suggestion", [("vit-tiny+sb-lroa", "vit-tiny+sb-lora"),
                                            ("vit-tiny+sb-simplft", "vit-tiny+sb-simpleft"),
                                            ("vit-tiny+sv", "vit-tiny+sb"),
                                            ("vit-tiny+sb-lora-full", "vit-tiny+sb-full"),
                                            ("vit-tinyy+sb-lora", "vit-tiny+sb-lora")])
def test_unknown_tag_or_variant_suggests(bad, suggestion):
    from bench.encoders import check_encoder_name, load_encoder

    with pytest.raises(UnknownNameError) as err:
        check_encoder_name(bad)
    assert suggestion in err.value.suggestions and suggestion in str(err.value)
    with pytest.raises(UnknownNameError):
        load_encoder(bad)


def test_names_parse_without_torch():
    code = ("import sys; from bench.encoders.naming import parse_encoder_name as p; "
            "assert str(p('dinov3+sb-lora')) == 'dinov3+sb-lora'; "
            "import bench.encoders, bench.spatialboost.config, bench.spatialboost.encoder; "
            "bench.encoders.check_encoder_name('dinov3+sb'); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aliases_resolve_to_the_canonical_name():
    from bench.encoders import ENCODERS, base_name, check_encoder_name, encoder_card

    assert check_encoder_name("dinov3+sb") == "dinov3-vit7b16+sb"
    assert check_encoder_name("dinov3+sb-lora") == "dinov3-vit7b16+sb-lora"
    assert check_encoder_name("dinov3") == "dinov3-vit7b16" and base_name("dinov3+sb") == "dinov3-vit7b16"
    assert encoder_card("dinov3").name == "dinov3-vit7b16"
    assert "dinov3" not in ENCODERS.names() and "dinov3" in ENCODERS
    from bench.spatialboost.config import output_name, resolve_config

    assert output_name(resolve_config(encoder="dinov3", mode="lora")) == "dinov3-vit7b16+sb-lora"


def test_load_without_checkpoint_raises_and_trains_nothing():
    from bench.encoders import load_encoder
    from bench.errors import NotTrainedError
    from bench.paths import checkpoints_root

    load_encoder("vit-tiny")  # warm up imports (timm, the checkpoint reader, omegaconf)
    with pytest.raises(NotTrainedError):
        load_encoder("vit-tiny+sb-full")
    for name, command in (("vit-tiny+sb", "bench sb train --encoder vit-tiny+sb --stage all"),
                          ("vit-tiny+sb-lora", "bench sb train --encoder vit-tiny+sb-lora --stage all")):
        t0 = time.perf_counter()
        with pytest.raises(NotTrainedError) as err:
            load_encoder(name)
        assert time.perf_counter() - t0 < 0.5
        assert command in str(err.value) and "--weights FILE" in str(err.value)
        assert not (checkpoints_root() / name).exists()
    assert not checkpoints_root().exists() or not any(checkpoints_root().iterdir())
    with pytest.raises(NotTrainedError, match="does not exist"):
        load_encoder("vit-tiny+sb", weights="/nonexistent/boosted.safetensors")


def test_prerequisite_plans_training(monkeypatch):
    from bench.encoders import encoder_prerequisite
    from bench.paths import checkpoints_root

    t0 = time.perf_counter()
    step = encoder_prerequisite("vit-tiny+sb")
    assert time.perf_counter() - t0 < 2.0  # a planner's call: nothing is built
    assert step.encoder == "vit-tiny+sb" and step.ready and callable(step.run) and not step.reason
    assert "3 stages" in step.action and "qwen2-tiny" in step.detail and "tiny" in step.detail
    assert str(checkpoints_root() / "vit-tiny+sb" / "boosted.safetensors") in step.detail
    assert step.estimate_seconds and 30 < step.estimate_seconds < 600
    assert "vit-tiny+sb" in step.describe()
    assert encoder_prerequisite("vit-tiny") is None  # a base encoder needs nothing
    lora = encoder_prerequisite("vit-tiny+sb-lora", preset="small")
    assert lora.ready and "mode lora" in lora.detail and "preset small" in lora.detail
    assert lora.estimate_seconds is None  # no measurement for the small preset
    assert not checkpoints_root().exists() or not any(checkpoints_root().iterdir())


def test_prerequisite_not_ready_names_what_is_missing():
    from bench.encoders import encoder_prerequisite

    step = encoder_prerequisite("dinov2-vits14+sb")  # pretrained base without its weights
    assert not step.ready and step.run is None
    assert "base encoder weights" in step.reason and "timm/vit_small_patch14_dinov2.lvd142m" in step.reason
    assert "LLM weights" in step.reason and "--llm" in step.reason  # and no Qwen2-7B here
    assert "cannot run here" in step.describe()


def _fake_checkpoint(name: str, mode: str = "dual"):
    import torch

    from bench.encoders import load_encoder
    from bench.spatialboost.checkpoint import apply_mode, save_boosted
    from bench.spatialboost.dual_attention import is_adapter_param
    from bench.spatialboost.encoder import checkpoint_path
    from bench.vlm.model import build_projector

    enc = load_encoder("vit-tiny")
    layers = apply_mode(enc, mode)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in enc.named_parameters():
            if is_adapter_param(n, mode):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    path = checkpoint_path(name)
    save_boosted(path, enc, build_projector(enc.embed_dim, 16), mode=mode, objective="llm", base_name="vit-tiny",
                 base_weights_id=enc.weights_id, base_random_init=True, base_seed=0, base_weights_path=None,
                 config={}, manifest_hash="abc", layers=layers)
    return path


def test_ablation_checkpoint_loads_by_its_name():
    from bench.encoders import encoder_prerequisite, load_encoder

    path = _fake_checkpoint("vit-tiny+sb-lora", mode="lora")
    assert encoder_prerequisite("vit-tiny+sb-lora") is None
    assert encoder_prerequisite("vit-tiny+sb") is not None  # another name, another checkpoint
    enc = load_encoder("vit-tiny+sb-lora")
    assert enc.name == "vit-tiny+sb-lora" and enc.sb_metadata["mode"] == "lora"
    assert enc.identity()["encoder"] == "vit-tiny+sb-lora"
    assert encoder_prerequisite("vit-tiny+sb", weights=path) is None  # an explicit checkpoint file


def test_sb_info_and_help():
    from bench.cli import main

    _fake_checkpoint("vit-tiny+sb")
    assert main(["sb", "info", "vit-tiny+sb"]) == 0
    out = subprocess.run([sys.executable, "-m", "bench.spatialboost.train", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--encoder" in out and "+sb-lora" in out
