"""Probe heads of the Lexicon3D 3D-scene tasks (semantic segmentation, registration, grounding, QA)."""
