"""LLaVA-style vision-language machinery, shared by the SpatialBoost trainer and VLM / 3D-QA tasks.

    model.py       SpatialVLM (encoder -> projector -> LLM, visual-token splicing, SFT loss), build_projector
    llm.py         TINY_LLM / PAPER_LLM, build_tiny_llm, resolve_llm_path, load_pretrained_llm, MissingLLMError
    tokenizer.py   the project's byte-level BPE tokenizer, ChatML template, IMAGE_TOKEN
    collate.py     ConversationCollator: labels on assistant tokens only (IGNORE_INDEX elsewhere)
    llava.py       LLaVA JSON: validate / read / write, LlavaDataset
    transforms.py  SquareImageTransform (LLaVA-1.5 "pad" preprocessing)

Import the submodule you need (this package imports nothing, so `bench.vlm.llm` stays light).
Nothing here imports `bench.spatialboost`.
"""
