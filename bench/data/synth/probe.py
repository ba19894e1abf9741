"""A controlled scene with known geometry, rendered and written through the real pipeline.

Used by the tests (and handy for debugging a GL backend): a box whose camera-facing face is exactly
``distance`` metres away along the optical axis of a level camera.  Because the depth is planar
(z-depth), every pixel of that face must read ``distance``, also far from the image centre.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import catalog
from .render import Renderer, fovy_for_focal, intrinsics
from .scene import Room, SceneSpec, look_at
from .writers import encode_depth_png, encode_jpeg, encode_png


def render_depth_probe(out_dir: str | Path, distance: float = 2.0, yaw_deg: float = 30.0,
                       width: int = 640, height: int = 480, focal: float = 518.8579) -> dict:
    """Render a box whose front face is ``distance`` m in front of the camera; write
    ``depth.png`` (uint16 mm), ``color.jpg``, ``instance.png`` into ``out_dir``.

    Returns a dict with the file paths, ``K`` (3x3), ``pose`` (4x4 camera-to-world),
    ``expected_depth_m`` and ``face_pixels``: (u, v) pixels that lie on the face.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    yaw = math.radians(yaw_deg)
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    eye = np.array([0.0, 0.0, 1.2]) - 1.5 * fwd  # camera 1.5 m behind the room centre, level
    pose = look_at(eye, eye + fwd)
    # box 0.6 m deep, 1.6 m wide, 2.2 m tall, its -x face (local) facing the camera
    obj = catalog.custom_box_object(1, (0.6, 1.6, 2.2), colour="red")
    centre = eye + fwd * (distance + 0.3)
    obj.position, obj.yaw = (float(centre[0]), float(centre[1])), float(yaw)
    room = Room(8.0, 8.0, 3.0, (0.8, 0.8, 0.8), ((0.5, 0.4, 0.3), (0.45, 0.35, 0.25)), 0.5,
                (0.3, 0.2, -0.93), 1.0)
    scene = SceneSpec("probe", room, [obj], [pose])
    fovy = fovy_for_focal(focal, height)
    K = intrinsics(width, height, fovy)
    r = Renderer(width, height, fovy)
    try:
        r.load(scene)
        v = r.render(pose, amodal=False)
    finally:
        r.close()
    # face spans +-0.8 m horizontally, z from 0 to 2.2 m: pick pixels well inside it
    pixels = []
    for dx, dz in [(0.0, 0.0), (0.6, 0.5), (-0.6, -0.8), (0.5, 0.9), (-0.7, 0.3)]:
        X = eye + fwd * distance + np.cross([0.0, 0.0, 1.0], fwd) * (-dx) + np.array([0.0, 0.0, dz])
        Xc = np.linalg.inv(pose) @ np.append(X, 1.0)
        u, vv = (K @ Xc[:3])[:2] / Xc[2]
        pixels.append((int(round(u)), int(round(vv))))
    files = {"depth": out_dir / "depth.png", "color": out_dir / "color.jpg", "instance": out_dir / "instance.png"}
    files["depth"].write_bytes(encode_depth_png(v.depth))
    files["color"].write_bytes(encode_jpeg(v.rgb))
    files["instance"].write_bytes(encode_png(v.instance))
    return {**{k: str(p) for k, p in files.items()}, "K": K, "pose": pose, "expected_depth_m": float(distance),
            "face_pixels": pixels, "depth_m": v.depth, "backend": r.backend}
