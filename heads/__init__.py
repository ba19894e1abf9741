"""Probe heads on frozen features (kNN, linear, DPT, segmentation, 3D, behaviour cloning)."""
