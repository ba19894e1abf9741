"""The VLM a SpatialBoost training leaves behind, rebuilt for evaluation (docs/vlm-eval.md).

The trainer keeps everything a VLM needs (``BENCH_HOME/checkpoints/<NAME>+sb/``):

    stage2.safetensors   projector + LLM after stage 2 (visual instruction tuning of g_P + f_L)
    boosted.safetensors  encoder adapters + projector after stage 3 (f_L frozen in stage 3)

so encoder E gets two VLMs: **E** = base encoder (stages 1-2 run on the wrapped encoder, which is
exactly the base encoder at initialisation) + the stage-2 projector and LLM; **E+sb** = boosted
encoder + the stage-3 projector + the stage-2 LLM. The tiny LLM's tokenizer is the recipe's (found
from the config recorded in the checkpoint; its manifest hash must match). A base encoder without a
stage-2 checkpoint gets one trained (stages 1-2 only) when `train_missing` and it is random-init
(the offline toy case; anything else is an error saying how to train it).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.errors import NotTrainedError
from bench.paths import checkpoints_root
from bench.spatialboost.checkpoint import CheckpointError, file_sha256, read_metadata, read_tensors


def _base_name(encoder) -> str:
    from bench.encoders.naming import parse_encoder_name

    return parse_encoder_name(encoder.name).base


def stage2_path(encoder) -> Path:
    """Where the stage-2 VLM of `encoder` (base or +sb) is: its own folder first, then the method's."""
    own = checkpoints_root() / encoder.name / "stage2.safetensors"
    method = checkpoints_root() / f"{_base_name(encoder)}+sb" / "stage2.safetensors"
    return next((p for p in (own, method) if p.is_file()), method)


def ensure_stage2(encoder, preset: str = "tiny", train_missing: bool = True, progress: bool = True) -> Path:
    """The stage-2 checkpoint of `encoder`'s VLM; trained (stages 1-2) when missing and allowed."""
    path = stage2_path(encoder)
    if path.is_file():
        return path
    base = _base_name(encoder)
    how = (f"train it with `bench sb train --encoder {base} --stage 1` then `--stage 2` (or `--stage all`, which "
           f"also makes {base}+sb)")
    # only the offline case trains here: a random-init or self-pretrained (made here) base with the toy LLM
    # (a minute); a downloaded encoder needs a pretrained LLM and its own training run (hours), started on purpose
    from bench.encoders import self_pretrainer

    offline = encoder.random_init or self_pretrainer(base) is not None
    if not train_missing or getattr(encoder, "sb_metadata", None) is not None or not offline:
        raise NotTrainedError(f"no VLM for {encoder.name}: {path} (projector + LLM after stage 2) does not exist; {how}")
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    cfg = resolve_config(encoder=f"{base}+sb", preset=preset, progress=progress, track=False)
    written = train(cfg, (1, 2))
    if written is None or not Path(written).is_file():
        raise NotTrainedError(f"no VLM for {encoder.name}: stages 1-2 wrote no checkpoint; {how}")
    return Path(written)


def _tokenizer(meta: dict, llm_spec: str, path: Path):
    from bench.spatialboost.data import default_out, load_recipe
    from bench.vlm.tokenizer import load_tokenizer

    conf = json.loads(meta.get("config", "{}"))
    levels = tuple(x for x in str(conf.get("levels", "")).replace("+", ",").split(",") if x)
    root = conf.get("recipe_root") or default_out(conf.get("preset", "tiny"), conf.get("order", "forward"), levels,
                                                  int(conf.get("data_seed", 0)))
    try:
        recipe = load_recipe(root)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: its LLM {llm_spec} uses the tokenizer of the recipe at {root}, which is gone; "
                              f"rebuild it (`bench sb train` builds it) or retrain") from None
    if recipe.manifest_hash != meta.get("manifest_hash"):
        raise CheckpointError(f"{path} was trained on recipe {meta.get('manifest_hash', '?')[:12]}, but {root} holds "
                              f"{recipe.manifest_hash[:12]}: its tokenizer may differ; retrain")
    return load_tokenizer(recipe)


def load_trained_vlm(encoder, device: torch.device, *, preset: str = "tiny", train_missing: bool = True,
                     progress: bool = True):
    """A `bench.vlm.generate.ProjectVLM` for a zoo encoder (base or +sb) from its training's checkpoints."""
    from bench.vlm.generate import ProjectVLM
    from bench.vlm.llm import TINY_LLM, TinyLLMConfig, build_tiny_llm, load_pretrained_llm, prepare_for_images
    from bench.vlm.model import SpatialVLM
    from bench.vlm.tokenizer import IMAGE_TOKEN
    from bench.vlm.transforms import SquareImageTransform

    sb = getattr(encoder, "sb_metadata", None)
    path = ensure_stage2(encoder, preset, train_missing, progress)
    meta = read_metadata(path)
    base_id = sb["base_weights_id"] if sb else encoder.weights_id
    if meta.get("base_weights_id") != base_id:
        raise CheckpointError(f"{path} was trained on {meta.get('base_encoder')} weights {meta.get('base_weights_id')}, "
                              f"but {encoder.name} has {base_id}: that VLM does not belong to this encoder")
    if sb and sb.get("manifest_hash") != meta.get("manifest_hash"):
        raise CheckpointError(f"{path} and {encoder.name}'s boosted checkpoint come from different recipes: retrain")
    spec = meta.get("llm", TINY_LLM)
    if spec == TINY_LLM:
        tok = _tokenizer(meta, spec, path)
        llm = build_tiny_llm(len(tok), TinyLLMConfig(**json.loads(meta.get("tiny_llm", "{}"))),
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    else:
        llm, tok = load_pretrained_llm(spec)  # MissingLLMError names the LLM and how to provide it
        prepare_for_images(llm, tok)
    llm_sd = read_tensors(path, "llm.")
    if not llm_sd:
        raise CheckpointError(f"{path} holds no LLM weights (a stage-1 checkpoint?): the VLM needs stage 2")
    result = llm.load_state_dict(llm_sd, strict=False)
    if [k for k in result.missing_keys if not k.endswith("lm_head.weight")] or result.unexpected_keys:
        raise CheckpointError(f"{path}: LLM weights do not fit {spec}: missing {result.missing_keys[:3]}, "
                              f"unexpected {result.unexpected_keys[:3]}")
    llm.tie_weights()
    conf = json.loads(meta.get("config", "{}"))
    proj_file = Path(getattr(encoder, "sb_checkpoint", "")) if sb else path
    proj = read_tensors(proj_file, "projector.")
    first = proj.get("0.weight", proj.get("weight"))
    if first is None:
        raise CheckpointError(f"{proj_file} holds no projector")
    if first.shape[1] != encoder.embed_dim:
        raise CheckpointError(f"{proj_file}: its projector takes {first.shape[1]}-d vision features, but {encoder.name} "
                              f"gives {encoder.embed_dim}-d ones: the checkpoint was trained for another encoder")
    vlm = SpatialVLM(encoder, llm, tok.convert_tokens_to_ids(IMAGE_TOKEN), vision_layer=int(conf.get("vision_layer", -1)),
                     projector=conf.get("projector", "mlp2x_gelu"))
    vlm.projector.load_state_dict(proj, strict=True)
    pp = encoder.preprocess
    transform = SquareImageTransform(int(conf.get("train_resolution") or pp.resolution), pp.mean, pp.std,
                                     pp.interpolation)
    info = {"name": encoder.name, "kind": "trainer", "llm": spec, "stage2": str(path),
            "stage2_sha256": file_sha256(path)[:16], "projector_from": str(proj_file),
            "projector_stage": 3 if sb else 2, "resolution": transform.resolution, "transform": transform.describe()}
    return ProjectVLM(vlm, tok, transform, device, info)


__all__ = ["ensure_stage2", "load_trained_vlm", "stage2_path"]
