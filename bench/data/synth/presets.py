"""Dataset sizes of the synthetic generator."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    n_scenes: int
    views_per_scene: int
    min_objects: int = 8
    max_objects: int = 12
    val_every: int = 4  # scene i is a val/test scene when i % val_every == val_every - 1
    query_views_per_scene: int = 1  # retrieval queries drawn from each scene
    width: int = 640
    height: int = 480
    focal: float = 518.8579  # NYU's focal length (pixels) at 640x480
    min_crop_pixels: int = 1200  # classification crops: minimum visible pixels of the object
    min_crop_side: int = 28  # ... and minimum side of its 2D box (pixels)
    min_crop_visibility: float = 0.35  # ... and minimum (unoccluded x in-frame) fraction

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # unit tests: a few seconds
    "tiny": Preset("tiny", n_scenes=6, views_per_scene=6, min_objects=9, max_objects=12, val_every=3),
    # the demo: about a minute on 2 CPU cores
    "small": Preset("small", n_scenes=64, views_per_scene=10, min_objects=8, max_objects=14, query_views_per_scene=2),
    # larger studies
    "full": Preset("full", n_scenes=400, views_per_scene=12, min_objects=5, max_objects=15, val_every=5,
                   query_views_per_scene=2),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown synthetic preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
