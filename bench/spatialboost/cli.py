"""`bench sb ...`: the bundled SpatialBoost trainer.

    bench sb train --encoder vit-tiny --stage all          # stages 1-3 -> checkpoints/vit-tiny+sb/
    bench sb train --encoder vit-tiny --stage 3 --mode lora   # an ablation (-> vit-tiny+sb-lora)
    bench sb data --preset tiny                            # build the training recipe only
    bench sb info vit-tiny+sb                              # what a checkpoint holds

Kept import-light: heavy modules are imported inside the command functions.
"""
from __future__ import annotations

import argparse
import json

STAGES = (1, 2, 3)
MODES = ("dual", "lora", "full")
OBJECTIVES = ("llm", "simple-ft")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", default="vit-tiny", help="base encoder of the zoo (the output is NAME+sb)")
    p.add_argument("--stage", default="all", help="1 | 2 | 3 | all")
    p.add_argument("--preset", default=None, help="data recipe preset (tiny | small | full); default tiny")
    p.add_argument("--order", default=None, help="stage-3 turn order: forward | reverse | random (Table 7)")
    p.add_argument("--levels", default=None, help="stage-3 levels, e.g. pixel,object,scene,caption")
    p.add_argument("--recipe", dest="recipe_root", default=None, help="a recipe folder built elsewhere")
    p.add_argument("--llm", default=None, help="qwen2-tiny | local folder | HF repo id in the cache (default auto)")
    p.add_argument("--mode", default=None, choices=MODES, help="stage-3 encoder training (ablation); default dual")
    p.add_argument("--objective", default=None, choices=OBJECTIVES, help="llm (SpatialBoost) | simple-ft (baseline)")
    p.add_argument("--hparams", default=None, choices=["auto", "paper", "tiny"])
    p.add_argument("--encoder-weights", default=None, help="base encoder weights file")
    p.add_argument("--name", default=None, help="output name (default ENCODER+sb)")
    p.add_argument("--config", default=None, help="YAML file merged over the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="OmegaConf dotlist override")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--fsdp", action="store_true", default=None, help="FSDP2 instead of DDP under torchrun")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-track", action="store_true", help="no MLflow run")
    p.add_argument("--no-progress", action="store_true")


def cmd_train(args) -> int:
    from bench.spatialboost.train import cmd_train as run

    return run(args)


def cmd_data(args) -> int:
    from bench.spatialboost.data import build_recipe

    recipe = build_recipe(args.preset, seed=args.seed, order=args.order, progress=not args.no_progress)
    print(f"SpatialBoost recipe ({args.preset}, order {args.order}) at {recipe.root}")
    counts = recipe.manifest.get("counts", {})
    for key in ("stage1", "stage2_instruct", "stage2_multiview", "stage3"):
        if key in counts:
            print(f"  {key}: {counts[key]}")
    print(f"  manifest sha256: {recipe.manifest_hash}")
    return 0


def cmd_info(args) -> int:
    from pathlib import Path

    from bench.encoders.spatialboost import checkpoint_path
    from bench.errors import NotTrainedError
    from bench.spatialboost.checkpoint import file_sha256, read_metadata, read_tensors

    path = Path(args.weights) if args.weights else checkpoint_path(args.name)
    if not path.is_file():
        raise NotTrainedError(f"no checkpoint at {path}")
    meta = read_metadata(path)
    tensors = read_tensors(path)
    n_enc = sum(v.numel() for k, v in tensors.items() if k.startswith("encoder."))
    n_proj = sum(v.numel() for k, v in tensors.items() if k.startswith("projector."))
    cfg = json.loads(meta.get("config", "{}"))
    print(f"{path}\n  sha256: {file_sha256(path)[:16]}")
    for key in ("format", "mode", "objective", "base_encoder", "base_weights_id", "manifest_hash", "vision_layer",
                "projector", "code_version"):
        print(f"  {key}: {meta.get(key)}")
    print(f"  tensors: encoder {n_enc / 1e6:.2f}M params, projector {n_proj / 1e6:.2f}M params")
    print(f"  wrapped layers: {len(json.loads(meta.get('layers', '[]')))}")
    if cfg:
        print(f"  llm: {cfg.get('llm')}  preset: {cfg.get('preset')}  hparams: {cfg.get('hparams')}")
        for line in cfg.get("overrides", []):
            print(f"    override {line}")
    return 0


def add_subcommands(subparsers) -> None:
    sb = subparsers.add_parser("sb", help="SpatialBoost: train NAME+sb encoders (3 LLaVA-style stages)")
    sub = sb.add_subparsers(dest="sb_cmd", required=True)

    t = sub.add_parser("train", help="train stage 1 | 2 | 3 | all (writes checkpoints/NAME+sb/)",
                       description="Stage 1: projector on captions; stage 2: projector + LLM on instructions; "
                                   "stage 3: projector + dual-channel attention through the frozen LLM on spatial "
                                   "chain-of-thought. Multi-GPU: torchrun --nproc_per_node=N -m "
                                   "bench.spatialboost.train (same arguments).")
    add_train_arguments(t)
    t.set_defaults(fn=cmd_train)

    d = sub.add_parser("data", help="build the SpatialBoost training recipe (LLaVA JSON + images + tokenizer)")
    d.add_argument("--preset", default="tiny", help="tiny | small | full")
    d.add_argument("--order", default="forward", help="multi-turn order: forward | reverse | random")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(fn=cmd_data)

    i = sub.add_parser("info", help="show what a NAME+sb checkpoint holds")
    i.add_argument("name", help="e.g. vit-tiny+sb")
    i.add_argument("--weights", default=None, help="a checkpoint file instead of the default location")
    i.set_defaults(fn=cmd_info)
