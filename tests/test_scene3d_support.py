"""Shared pieces of the 3D-scene tests: the tiny synthetic twin (generated once per session) and a
test-only oracle lifter that keeps the real visibility masks but replaces the lifted features."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures-real"


def generate_tiny(root: Path) -> Path:
    from bench.data.synth.scannet3d import ensure3d

    return ensure3d("tiny", root / "synth-tiny" / "scannet3d", progress=False)  # a child process: GL stays out


def fourier(xyz: torch.Tensor, dim: int = 96, sigma: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Random Fourier features of exact coordinates (the registration oracle)."""
    B = torch.randn(3, dim // 2, generator=torch.Generator().manual_seed(seed)) * sigma
    proj = 2 * math.pi * xyz.float() @ B
    return torch.cat([proj.sin(), proj.cos()], -1)


def oracle_lifter(kind: str, noise: float = 0.2):
    """A SceneLifter whose features are an oracle: 'labels' (one-hot class + noise) or 'coords'."""
    from bench.data.scannet import load_points
    from bench.data.scannet_lift import SceneLifter

    class Oracle(SceneLifter):
        def get(self, scene, points, points_file, subset=None):
            _, seen = super().get(scene, points, points_file, subset)
            if kind == "labels":
                split = Path(points_file).parent.name
                lab = torch.from_numpy(load_points(self.root, split, scene).labels)
                onehot = torch.nn.functional.one_hot(lab.clamp_min(-1) + 1, 21).float()
                g = torch.Generator().manual_seed(len(points))
                feat = onehot + noise * torch.randn(onehot.shape, generator=g)
            else:
                feat = fourier(torch.from_numpy(np.asarray(points)))
            return feat.half(), seen

    return Oracle


def object_oracle_lifter(noise: float = 0.1):
    """Per point: one-hot category and colour of the object it belongs to (zeros elsewhere)."""
    import json

    from bench.data.scannet import load_instances
    from bench.data.scannet_lift import SceneLifter
    from bench.data.synth.catalog import CATEGORY_NAMES, COLOURS

    colours = list(COLOURS)

    class Oracle(SceneLifter):
        def get(self, scene, points, points_file, subset=None):
            _, seen = super().get(scene, points, points_file, subset)
            split = Path(points_file).parent.name
            inst = load_instances(self.root, split, scene, len(points))
            meta = {o["id"]: o for o in json.loads((self.root / "synth_meta" / f"{scene}.json").read_text())["objects"]}
            feat = torch.zeros(len(points), len(CATEGORY_NAMES) + len(colours))
            for iid, o in meta.items():
                m = torch.from_numpy(inst == iid)
                feat[m, CATEGORY_NAMES.index(o["category"])] = 1
                feat[m, len(CATEGORY_NAMES) + colours.index(o["colour"])] = 1
            g = torch.Generator().manual_seed(len(points))
            return (feat + noise * torch.randn(feat.shape, generator=g)).half(), seen

    return Oracle
