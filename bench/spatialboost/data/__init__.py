"""SpatialBoost training data (paper §3.2, App. C): the three LLaVA-format stages, the project
tokenizer, and the batch collator. See docs/spatialboost_data.md.

    from bench.spatialboost.data import build_recipe, load_tokenizer, LlavaDataset, ConversationCollator
    recipe = build_recipe("tiny")                       # seconds; idempotent
    tok = load_tokenizer(recipe)
    ds = LlavaDataset(recipe.stage3, recipe.image_root, image_transform)
    batch = ConversationCollator(tok, max_length=1024)([ds[0], ds[1]])
"""
from __future__ import annotations

from .annotators import (Annotators, BlipCaptioner, Captioner, DepthAnnotator, DepthPoseReconstructor, DepthProDepth,
                         GTCaptioner, GTDepth, GTReconstructor, GTSegmenter, Observation, Reconstruction, Reconstructor,
                         Sam2Segmenter, Segmenter)
from .collate import IGNORE_INDEX, CollateError, ConversationCollator
from .cot import ORDERS, CotConfig, InsufficientContent, Turn, arrange, spatial_turns, to_conversation
from .llava import IMAGE_TOKEN, LlavaDataset, LlavaFormatError, read_llava, validate_sample, write_llava
from .recipe import PRESETS, Recipe, RecipePreset, build_recipe, default_out, load_recipe, recipe_status
from .templates import LEVELS
from .tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, train_tokenizer
from .tokenizer import load_tokenizer as _load_tokenizer


def load_tokenizer(recipe_or_dir):
    """The recipe's tokenizer (``PreTrainedTokenizerFast`` with the ChatML template); accepts a
    :class:`Recipe` or a folder written by ``save_pretrained``."""
    return _load_tokenizer(recipe_or_dir)


__all__ = [
    "IMAGE_TOKEN", "IGNORE_INDEX", "LEVELS", "ORDERS", "PRESETS", "SPECIAL_TOKENS", "CHAT_TEMPLATE",
    "Recipe", "RecipePreset", "build_recipe", "recipe_status", "load_recipe", "default_out", "load_tokenizer",
    "train_tokenizer", "LlavaDataset", "LlavaFormatError", "read_llava", "write_llava", "validate_sample",
    "ConversationCollator", "CollateError", "CotConfig", "Turn", "InsufficientContent", "spatial_turns", "arrange",
    "to_conversation", "Annotators", "Observation", "Reconstruction", "DepthAnnotator", "Segmenter", "Reconstructor",
    "Captioner", "GTDepth", "GTSegmenter", "GTReconstructor", "GTCaptioner", "DepthProDepth", "Sam2Segmenter",
    "DepthPoseReconstructor", "BlipCaptioner",
]
