"""SpatialBoost (arXiv 2603.22057): make a frozen vision encoder spatially aware by fine-tuning
dual-channel attention through a frozen LLM on multi-turn spatial reasoning data.

    data/              the three LLaVA-format training stages built from posed scenes (docs/spatialboost_data.md)
    config.py          TrainConfig, the tiny profile, output names (NAME+sb[-TAG]), the train flags
    build.py           recipe, base encoder + adapters, LLM + tokenizer, trainable parameters per stage
    trainer.py         Trainer: the three-stage loop (one process, DDP or FSDP2: distributed.py)
    simple_ft.py       the simple-FT baseline (Table 8)
    train.py           train(cfg, stages), `python -m bench.spatialboost.train` (torchrun)
    dual_attention.py  dual-channel attention, LoRA; checkpoint.py: boosted / stage checkpoints
    encoder.py         the `+sb` encoder variant: load a checkpoint, plan its training (never trains on load)
    cli.py             `bench sb train | data | info`

The VLM itself (projector, LLMs, tokenizer, collator, LLaVA JSON) is `bench.vlm`; scene geometry is
`bench.data.scenes`. Nothing below `bench.spatialboost` imports it.
"""
