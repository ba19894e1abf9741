"""SpatialBoost training data (paper §3.2, App. C): the three LLaVA-format stages built from posed
RGB-D scenes. See docs/spatialboost_data.md.

    from bench.spatialboost.data import build_recipe
    from bench.vlm.llava import LlavaDataset
    from bench.vlm.collate import ConversationCollator
    from bench.vlm.tokenizer import load_tokenizer
    recipe = build_recipe("tiny")                       # seconds; idempotent
    tok = load_tokenizer(recipe)
    ds = LlavaDataset(recipe.stage3, recipe.image_root, image_transform)
    batch = ConversationCollator(tok, max_length=1024)([ds[0], ds[1]])

The generic pieces live elsewhere: the scene reader and geometry in `bench.data.scenes`, the LLaVA
JSON format, tokenizer and collator in `bench.vlm`.
"""
from __future__ import annotations

from .annotators import (Annotators, BlipCaptioner, Captioner, DepthAnnotator, DepthPoseReconstructor, DepthProDepth,
                         GTCaptioner, GTDepth, GTReconstructor, GTSegmenter, Observation, Reconstruction, Reconstructor,
                         Sam2Segmenter, Segmenter)
from .cot import ORDERS, CotConfig, InsufficientContent, Turn, arrange, spatial_turns, to_conversation
from .recipe import PRESETS, Recipe, RecipePreset, build_recipe, default_out, load_recipe, recipe_status
from .templates import LEVELS

__all__ = [
    "LEVELS", "ORDERS", "PRESETS", "Recipe", "RecipePreset", "build_recipe", "recipe_status", "load_recipe",
    "default_out", "CotConfig", "Turn", "InsufficientContent", "spatial_turns", "arrange", "to_conversation",
    "Annotators", "Observation", "Reconstruction", "DepthAnnotator", "Segmenter", "Reconstructor", "Captioner",
    "GTDepth", "GTSegmenter", "GTReconstructor", "GTCaptioner", "DepthProDepth", "Sam2Segmenter",
    "DepthPoseReconstructor", "BlipCaptioner",
]
