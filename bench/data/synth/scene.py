"""Procedural room layouts, camera poses, and their MJCF (MuJoCo XML) description.

World frame: metres, z up, floor plane z = 0, room centred on the origin
(x in [-W/2, W/2], y in [-D/2, D/2], ceiling at z = H).
Camera poses are 4x4 camera-to-world matrices in the OpenCV convention (x right, y down, z forward).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import catalog
from .catalog import ObjectSpec

WALL_T = 0.1  # wall / floor / ceiling slab thickness (outside the room)


@dataclass
class Room:
    width: float  # along x
    depth: float  # along y
    height: float
    wall_rgb: tuple[float, float, float]
    floor_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    floor_tile: float
    light_dir: tuple[float, float, float]
    light_level: float


@dataclass
class SceneSpec:
    scene_id: str
    room: Room
    objects: list[ObjectSpec]
    poses: list[np.ndarray] = field(default_factory=list)  # camera-to-world, OpenCV convention

    @property
    def floor_plane(self) -> list[float]:
        """Floor plane (a, b, c, d) with a x + b y + c z + d = 0, normal pointing up."""
        return [0.0, 0.0, 1.0, 0.0]


# --------------------------------------------------------------------------------------------------
# layout sampling


def _sat_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex 2D polygons (N x 2)."""
    for poly in (a, b):
        for i in range(len(poly)):
            e = poly[(i + 1) % len(poly)] - poly[i]
            n = np.array([-e[1], e[0]])
            pa, pb = a @ n, b @ n
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def _inside_room(pts: np.ndarray, room: Room, margin: float) -> bool:
    return bool(np.all(np.abs(pts[:, 0]) <= room.width / 2 - margin) and np.all(np.abs(pts[:, 1]) <= room.depth / 2 - margin))


def sample_room(rng: np.random.Generator) -> Room:
    d = rng.normal(size=3)
    d[2] = -abs(d[2]) - 1.5
    return Room(
        width=float(rng.uniform(4.5, 7.0)),
        depth=float(rng.uniform(4.0, 6.0)),
        height=float(rng.uniform(2.6, 3.0)),
        wall_rgb=tuple(float(c) for c in catalog.WALL_COLOURS[int(rng.integers(len(catalog.WALL_COLOURS)))]),
        floor_rgb=catalog.FLOOR_COLOURS[int(rng.integers(len(catalog.FLOOR_COLOURS)))],
        floor_tile=float(rng.choice([0.3, 0.5, 0.6, 1.0])),
        light_dir=tuple(float(v) for v in d / np.linalg.norm(d)),
        light_level=float(rng.uniform(0.8, 1.1)),
    )


def place_objects(rng: np.random.Generator, room: Room, categories: list[str], gap: float = 0.08,
                  tries: int = 60) -> list[ObjectSpec]:
    """Place objects of the given categories on the floor without overlapping footprints."""
    placed: list[ObjectSpec] = []
    cats = {c.name: c for c in catalog.CATEGORIES}
    for cat_name in categories:
        obj = catalog.build_object(rng, cat_name, instance_id=len(placed) + 1)
        hx, hy = obj.box_size[0] / 2, obj.box_size[1] / 2
        wall = rng.random() < cats[cat_name].against_wall
        for _ in range(tries):
            if wall:
                side = int(rng.integers(4))
                # yaw so that the local +x (front) faces into the room, back against the wall
                yaw = [0.0, math.pi, math.pi / 2, -math.pi / 2][side]
                if side < 2:
                    x = (-1 if side == 0 else 1) * (room.width / 2 - hx - 0.02)
                    y = rng.uniform(-room.depth / 2 + hy + 0.05, room.depth / 2 - hy - 0.05) if room.depth / 2 > hy + 0.05 else 0.0
                else:
                    y = (-1 if side == 2 else 1) * (room.depth / 2 - hx - 0.02)
                    x = rng.uniform(-room.width / 2 + hy + 0.05, room.width / 2 - hy - 0.05) if room.width / 2 > hy + 0.05 else 0.0
            else:
                yaw = float(rng.uniform(-math.pi, math.pi))
                r = math.hypot(hx, hy)
                x = rng.uniform(-room.width / 2 + r, room.width / 2 - r) if room.width / 2 > r else 0.0
                y = rng.uniform(-room.depth / 2 + r, room.depth / 2 - r) if room.depth / 2 > r else 0.0
            obj.position, obj.yaw = (float(x), float(y)), float(yaw)
            fp = obj.footprint()
            if not _inside_room(fp, room, 0.01):
                continue
            if any(_sat_overlap(obj.footprint(gap), o.footprint()) for o in placed):
                continue
            placed.append(obj)
            break
    for i, o in enumerate(placed):  # consecutive instance ids 1..N
        o.instance_id = i + 1
    return placed


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (OpenCV convention) of a camera at ``eye`` looking at ``target``, no roll."""
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = r, d, f, eye
    return T


def sample_cameras(rng: np.random.Generator, room: Room, objects: list[ObjectSpec], n: int,
                   min_dist: float = 1.3, max_dist: float = 4.2, max_pitch_deg: float = 25.0) -> list[np.ndarray]:
    """``n`` camera poses inside the room, each looking at one of the objects (cycled in random order)."""
    poses: list[np.ndarray] = []
    order = list(rng.permutation(len(objects))) if objects else []
    for k in range(n):
        tgt_obj = objects[order[k % len(order)]] if order else None
        tgt = np.array(tgt_obj.box_centre) if tgt_obj else np.array([0.0, 0.0, 0.8])
        tgt = tgt + np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1)])
        best = None
        for attempt in range(80):
            eye = np.array([rng.uniform(-room.width / 2 + 0.35, room.width / 2 - 0.35),
                            rng.uniform(-room.depth / 2 + 0.35, room.depth / 2 - 0.35),
                            rng.uniform(1.0, 1.8)])
            dist = float(np.linalg.norm(eye[:2] - tgt[:2]))
            if not (min_dist <= dist <= max_dist):
                continue
            pt = eye[:2][None]
            if any(_point_in_poly(pt[0], o.footprint(0.3)) for o in objects):
                continue
            best = eye
            break
        if best is None:  # fall back: a point in the room, away from the target
            best = np.array([-np.sign(tgt[0] + 1e-6) * (room.width / 2 - 0.4), -np.sign(tgt[1] + 1e-6) * (room.depth / 2 - 0.4), 1.5])
        # limit the pitch: move the look-at point vertically if the object is too far below/above
        horiz = np.linalg.norm(tgt[:2] - best[:2])
        pitch = math.atan2(tgt[2] - best[2], horiz)
        lo, hi = -math.radians(max_pitch_deg), -math.radians(3.0)
        pitch = min(max(pitch, lo), hi)
        tgt = np.array([tgt[0], tgt[1], best[2] + math.tan(pitch) * horiz])
        poses.append(look_at(best, tgt))
    return poses


def _point_in_poly(p: np.ndarray, poly: np.ndarray) -> bool:
    sign = None
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        c = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
        s = c >= 0
        if sign is None:
            sign = s
        elif s != sign:
            return False
    return True


def sample_scene(rng: np.random.Generator, scene_id: str, n_objects: int, n_views: int) -> SceneSpec:
    room = sample_room(rng)
    names = list(catalog.CATEGORY_NAMES)
    # draw categories without replacement first (diversity), then with replacement
    perm = [names[i] for i in rng.permutation(len(names))]
    cats = (perm * (n_objects // len(perm) + 1))[:n_objects]
    # big pieces first so they find room
    big = {"bed", "sofa", "bookshelf", "cabinet", "table"}
    cats = [c for c in cats if c in big] + [c for c in cats if c not in big]
    objects = place_objects(rng, room, cats)
    poses = sample_cameras(rng, room, objects, n_views)
    return SceneSpec(scene_id, room, objects, poses)


# --------------------------------------------------------------------------------------------------
# MJCF


def _f(*v: float) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def to_mjcf(scene: SceneSpec, width: int, height: int, fovy_deg: float) -> str:
    """MJCF of the scene. Geom names: ``room_<class>_<k>`` and ``obj<instance>_<k>``; one camera ``view``."""
    r = scene.room
    W, D, H, t = r.width, r.depth, r.height, WALL_T
    fa, fb = r.floor_rgb
    L = r.light_level
    parts = [
        f'<mujoco model="{scene.scene_id}">',
        '<compiler angle="radian"/>',
        # fixed extent -> near = 0.01 * 5 = 0.05 m, far = 4 * 5 = 20 m
        '<statistic extent="5" center="0 0 1.4"/>',
        "<visual>",
        f'<global offwidth="{width}" offheight="{height}" fovy="{fovy_deg:.6f}"/>',
        '<quality offsamples="0" shadowsize="0"/>',
        '<map znear="0.01" zfar="4"/>',
        f'<headlight ambient="{_f(*(0.36 * L,) * 3)}" diffuse="{_f(*(0.42 * L,) * 3)}" specular="0.05 0.05 0.05"/>',
        "</visual>",
        "<asset>",
        f'<texture name="floor_tex" type="2d" builtin="checker" rgb1="{_f(*fa)}" rgb2="{_f(*fb)}" width="64" height="64"/>',
        f'<material name="floor_mat" texture="floor_tex" texrepeat="{_f(1 / r.floor_tile, 1 / r.floor_tile)}" texuniform="true" specular="0.1" shininess="0.3"/>',
        f'<material name="wall_mat" rgba="{_f(*r.wall_rgb, 1)}" specular="0.02" shininess="0.1"/>',
        '<material name="ceil_mat" rgba="0.95 0.95 0.95 1" specular="0"/>',
        '<material name="obj_mat" specular="0.15" shininess="0.3"/>',
        "</asset>",
        "<worldbody>",
        f'<light directional="true" castshadow="false" dir="{_f(*r.light_dir)}" diffuse="{_f(*(0.45 * L,) * 3)}" specular="0.1 0.1 0.1"/>',
        f'<light directional="false" castshadow="false" pos="0 0 {H - 0.3:.3f}" diffuse="{_f(*(0.2 * L,) * 3)}" specular="0 0 0" attenuation="1 0.05 0"/>',
        f'<geom name="room_floor_0" type="box" pos="0 0 {-t / 2}" size="{_f(W / 2 + t, D / 2 + t, t / 2)}" material="floor_mat"/>',
        f'<geom name="room_ceiling_0" type="box" pos="0 0 {H + t / 2}" size="{_f(W / 2 + t, D / 2 + t, t / 2)}" material="ceil_mat"/>',
        f'<geom name="room_wall_0" type="box" pos="{_f(-W / 2 - t / 2, 0, H / 2)}" size="{_f(t / 2, D / 2 + t, H / 2)}" material="wall_mat"/>',
        f'<geom name="room_wall_1" type="box" pos="{_f(W / 2 + t / 2, 0, H / 2)}" size="{_f(t / 2, D / 2 + t, H / 2)}" material="wall_mat"/>',
        f'<geom name="room_wall_2" type="box" pos="{_f(0, -D / 2 - t / 2, H / 2)}" size="{_f(W / 2, t / 2, H / 2)}" material="wall_mat"/>',
        f'<geom name="room_wall_3" type="box" pos="{_f(0, D / 2 + t / 2, H / 2)}" size="{_f(W / 2, t / 2, H / 2)}" material="wall_mat"/>',
    ]
    for o in scene.objects:
        cx, cy, _ = o.box_centre
        parts.append(f'<body name="obj{o.instance_id}" pos="{_f(cx, cy, 0)}" euler="0 0 {o.yaw:.9g}">')
        for k, g in enumerate(o.geoms):
            parts.append(
                f'<geom name="obj{o.instance_id}_{k}" type="{g.type}" size="{_f(*g.size)}" pos="{_f(*g.pos)}" '
                f'quat="{_f(*g.quat())}" rgba="{_f(*g.rgb, 1)}" material="obj_mat"/>'
            )
        parts.append("</body>")
    parts += [f'<camera name="view" pos="0 0 1.5" xyaxes="1 0 0 0 0 1" fovy="{fovy_deg:.6f}"/>', "</worldbody>", "</mujoco>"]
    return "\n".join(parts)
