"""`bench sb ...`: the bundled SpatialBoost trainer.

    bench sb train --encoder vit-tiny --stage all          # stages 1-3 -> checkpoints/vit-tiny+sb/
    bench sb train --encoder vit-tiny+sb-lora --stage all  # an ablation, by its name (= --mode lora)
    bench sb train --encoder vit-tiny --stage 3 --mode lora   # the same, resuming from vit-tiny+sb's stage 2
    bench sb data --preset tiny                            # build the training recipe only
    bench sb info vit-tiny+sb                              # what a checkpoint holds

Kept import-light (`bench.spatialboost.config` imports no torch): heavy modules are imported inside
the command functions.
"""
from __future__ import annotations

import json

from bench.spatialboost.config import add_train_arguments


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

    from bench.encoders import check_encoder_name
    from bench.errors import NotTrainedError
    from bench.spatialboost.checkpoint import file_sha256, read_metadata, read_tensors
    from bench.spatialboost.encoder import checkpoint_path

    path = Path(args.weights) if args.weights else checkpoint_path(check_encoder_name(args.name))
    if not path.is_file():
        if (path.parent / "train_log.json").is_file():  # e.g. a stage 3 that failed its health check
            print_diagnostics(path.parent / "train_log.json")
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
    print_diagnostics(path.parent / "train_log.json")
    return 0


def print_diagnostics(log_path) -> None:
    """Stage 3's per-step diagnostics (bench.spatialboost.diagnostics) from train_log.json, with its health."""
    try:
        diag = json.loads(log_path.read_text())["stages"]["3"]["diagnostics"]
    except (OSError, ValueError, KeyError):
        return
    health = diag["health"]
    print(f"  stage 3 health: {'OK' if health['ok'] else 'FAILED: ' + '; '.join(health['failures'])}")
    rows = [("init", diag["initial"])] + [(str(i + 1), h) for i, h in enumerate(diag["history"])]
    drift = "attn_plus_drift" if "attn_plus_drift" in diag["initial"] else "adapter_drift"
    gates = "gate_mean" in diag["initial"]
    head = f"  {'step':>5} " + (f"{'alpha mean':>10} {'min':>7} {'max':>7} {'|a-a0|max':>10} " if gates else "")
    print(head + f"{drift:>16} {'enc grad norm':>13} {'sup. tokens':>11}")
    for step, h in rows:
        g = f"{h['gate_mean']:10.5f} {h['gate_min']:7.4f} {h['gate_max']:7.4f} {h['gate_shift']:10.2e} " if gates else ""
        print(f"  {step:>5} {g}{h[drift]:16.3e} {h['encoder_grad_norm']:13.3e} {int(h['supervised_tokens']):11d}")


def add_subcommands(subparsers) -> None:
    sb = subparsers.add_parser("sb", help="SpatialBoost: train NAME+sb encoders (3 LLaVA-style stages)")
    sub = sb.add_subparsers(dest="sb_cmd", required=True)

    t = sub.add_parser("train", help="train stage 1 | 2 | 3 | all (writes checkpoints/NAME+sb[-TAG]/)",
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
    i.add_argument("name", help="e.g. vit-tiny+sb or vit-tiny+sb-lora")
    i.add_argument("--weights", default=None, help="a checkpoint file instead of the default location")
    i.set_defaults(fn=cmd_info)
