"""Procedural indoor scenes rendered offscreen with MuJoCo, with exact ground truth, written in the
native on-disk layouts of real benchmarks (ScanNet-style posed views, NYUv2/BTS, ADE20K, ImageFolder
crops, revisited-Oxford retrieval ground truth).  See docs/synthetic_data.md.

    from bench.data.synth import ensure, generate
    root = ensure("tiny")            # generate once into $BENCH_HOME/data/synth-tiny, then reuse
    manifest = generate("small", out="/tmp/synth-small", seed=0)

Importing this package is cheap: ``mujoco`` is only imported when rendering starts, after
:func:`select_gl_backend` has chosen ``MUJOCO_GL``.
"""
from __future__ import annotations

from .catalog import CATEGORY_NAMES, CLASS_NAMES
from .gl import select_gl_backend
from .pipeline import VERSION, default_root, ensure, generate
from .presets import PRESETS, Preset, get_preset
from .probe import render_depth_probe

__all__ = ["PRESETS", "Preset", "VERSION", "default_root", "ensure", "generate", "get_preset",
           "render_depth_probe", "select_gl_backend", "CLASS_NAMES", "CATEGORY_NAMES"]
