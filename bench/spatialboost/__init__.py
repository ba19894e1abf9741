"""SpatialBoost (arXiv 2603.22057): make a frozen vision encoder spatially aware by fine-tuning
dual-channel attention through a frozen LLM on multi-turn spatial reasoning data.

    data/            the three LLaVA-format training stages, tokenizer and collator (docs/spatialboost_data.md)
    model, train...  the VLM and the 3-stage trainer
"""
