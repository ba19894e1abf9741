"""Entry points of the SpatialBoost trainer: `train(cfg, stages)` and the command line.

One process (CPU or one GPU) or `torchrun` (DDP; FSDP2 with ``fsdp=true``)::

    bench sb train --encoder vit-tiny --stage all                      # offline default (tiny LLM)
    bench sb train --encoder vit-tiny+sb-lora --stage all              # an ablation, by its name
    torchrun --nproc_per_node=4 -m bench.spatialboost.train --encoder dinov3-vitb16 --llm Qwen/Qwen2-7B --stage all

Config (`bench.spatialboost.config`): the typed `TrainConfig` (paper hyperparameters), then the
hyperparameter profile (`hparams`: ``tiny`` overrides for the random-init toy LLM, every override
recorded in ``cfg.overrides``), then a YAML file (``--config``), then the flags, then ``--set
key=value`` (OmegaConf dotlist). The resolved config is saved next to the checkpoint (config.yaml)
and in the checkpoint metadata. The loop is `bench.spatialboost.trainer.Trainer`; the simple-FT
baseline `bench.spatialboost.simple_ft`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.spatialboost.config import (STAGES, TrainConfig, add_train_arguments, config_dict, config_from_args, flatten,
                                       output_name, parse_stages)


def train(cfg: TrainConfig, stages: tuple[int, ...] = STAGES) -> Path | None:
    """Run `stages`; returns the boosted checkpoint path when stage 3 ran (else the last stage file)."""
    from bench.spatialboost.distributed import barrier, init_distributed, shutdown

    if cfg.objective == "simple-ft":
        from bench.spatialboost.simple_ft import train_simple_ft

        return train_simple_ft(cfg)
    env = init_distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    try:
        if env.is_main and cfg.track:
            from bench.tracking import Tracker

            with Tracker().run(f"sb-train {output_name(cfg)}", tags={"bench.kind": "sb-train",
                                                                      "bench.sb.stages": ",".join(map(str, stages))},
                               params=_flat_params(cfg)) as run:
                return _train(cfg, stages, env, run)
        return _train(cfg, stages, env, None)
    finally:
        barrier(env)
        shutdown(env)


def _train(cfg: TrainConfig, stages: tuple[int, ...], env, run) -> Path | None:
    from bench.spatialboost.dual_attention import param_growth
    from bench.spatialboost.trainer import Trainer

    t0 = time.perf_counter()
    tr = Trainer(cfg, env=env, run=run)
    growth = param_growth(tr.encoder) if cfg.mode == "dual" else {}
    tr.log.update({"param_growth": growth, "llm_params": sum(p.numel() for p in tr.llm.parameters()),
                   "wrapped_layers": tr.layers, "stages_run": list(stages), "world_size": env.world_size})
    if run is not None:
        run.log_params(sb_llm=tr.llm_spec, sb_recipe=str(tr.recipe.root), sb_manifest_hash=tr.recipe.manifest_hash,
                       sb_param_growth_pct=round(growth.get("growth_pct", 0.0), 3),
                       sb_llm_params=tr.log["llm_params"], sb_world_size=env.world_size,
                       sb_overrides="; ".join(cfg.overrides) or "none")
    first = stages[0]
    if first > 1:
        tr.resume_from(first - 1)
    tr.write_config()
    result = None
    for stage in stages:
        tr.run_stage(stage)
        if cfg.answer_views:
            from bench.spatialboost.answers import evaluate_stage

            tr.log["stages"][str(stage)]["answers"] = evaluate_stage(tr, stage)
        if stage < 3:
            result = tr.save_stage(stage)
            continue
        health = tr.log["stages"]["3"]["diagnostics"]["health"]
        if not health["ok"]:  # never ship a "+sb" that is the base encoder in disguise
            tr.write_config()
            raise BenchError(f"stage 3 failed its health check ({'; '.join(health['failures'])}); no checkpoint "
                             f"written. Diagnostics: {tr.out / 'train_log.json'}, {tr.out / 'stage3_diagnostics.png'}")
        result = tr.save_boosted()
    tr.log["seconds_total"] = time.perf_counter() - t0
    tr.write_config()
    if run is not None and env.is_main:
        run.log_metrics({"seconds_total": tr.log["seconds_total"]})
        run.log_file(tr.out / "config.yaml", folder="sb")
        run.log_file(tr.out / "train_log.json", folder="sb")
    if env.is_main and cfg.progress:
        print(f"[sb] done in {tr.log['seconds_total']:.0f}s -> {result}", file=sys.stderr, flush=True)
    return result

def _flat_params(cfg: TrainConfig) -> dict[str, Any]:
    out = {k: "; ".join(map(str, v)) if isinstance(v, list) else v for k, v in flatten(config_dict(cfg)).items()}
    out["output_name"] = output_name(cfg)
    return out


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    path = train(cfg, parse_stages(args.stage))
    if path is not None and int(os.environ.get("RANK", "0")) == 0:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.spatialboost.train ...` (what torchrun launches)."""
    from bench.registry import UnknownNameError

    p = argparse.ArgumentParser(prog="python -m bench.spatialboost.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_train(args)
    except (BenchError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
