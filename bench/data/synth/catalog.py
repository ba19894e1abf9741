"""Object categories, colours, sizes and the class list of the synthetic indoor scenes.

Every category is a composite of MuJoCo primitives built in an object-local frame: x = the object's
front, z up, origin at the centre of its floor footprint (the builder output is re-centred so that
the local axis-aligned bounding box is centred on x = y = 0 and starts at z = 0).  The object's 3D
box is that local box, placed at the object's floor position and rotated by its yaw about z.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

# --------------------------------------------------------------------------------------------------
# colours and sizes

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.78, 0.12, 0.12),
    "orange": (0.93, 0.50, 0.10),
    "yellow": (0.93, 0.83, 0.20),
    "green": (0.20, 0.60, 0.25),
    "teal": (0.10, 0.55, 0.55),
    "blue": (0.15, 0.30, 0.80),
    "navy": (0.10, 0.13, 0.40),
    "purple": (0.50, 0.22, 0.62),
    "pink": (0.93, 0.55, 0.70),
    "brown": (0.45, 0.28, 0.14),
    "beige": (0.85, 0.78, 0.62),
    "white": (0.93, 0.93, 0.91),
    "grey": (0.50, 0.50, 0.52),
    "black": (0.09, 0.09, 0.10),
}

SIZES: dict[str, float] = {"small": 0.85, "medium": 1.0, "large": 1.15}

WALL_COLOURS = [(0.86, 0.84, 0.78), (0.80, 0.84, 0.86), (0.88, 0.82, 0.76), (0.78, 0.82, 0.74),
                (0.90, 0.88, 0.86), (0.74, 0.76, 0.80), (0.86, 0.78, 0.78)]
FLOOR_COLOURS = [((0.55, 0.40, 0.25), (0.48, 0.34, 0.20)), ((0.70, 0.62, 0.50), (0.64, 0.56, 0.45)),
                 ((0.45, 0.45, 0.47), (0.40, 0.40, 0.42)), ((0.62, 0.48, 0.36), (0.36, 0.26, 0.18)),
                 ((0.80, 0.78, 0.74), (0.70, 0.68, 0.64)), ((0.35, 0.25, 0.18), (0.30, 0.21, 0.15))]


# --------------------------------------------------------------------------------------------------
# geometry specs


@dataclass
class Geom:
    """One MuJoCo primitive in the object's local frame. ``size`` uses MuJoCo's half-size convention."""

    type: str  # box | cylinder | sphere | capsule | ellipsoid
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    rgb: tuple[float, float, float]
    part: str = ""
    axis: str = "z"  # long axis of cylinders/capsules: x, y or z

    def half_extents(self) -> np.ndarray:
        t, s = self.type, self.size
        if t in ("box", "ellipsoid"):
            h = np.array(s[:3], float)
        elif t == "sphere":
            h = np.array([s[0]] * 3, float)
        elif t == "cylinder":
            h = np.array([s[0], s[0], s[1]], float)
        elif t == "capsule":
            h = np.array([s[0], s[0], s[1] + s[0]], float)
        else:
            raise ValueError(t)
        if self.axis == "x":
            h = h[[2, 1, 0]]
        elif self.axis == "y":
            h = h[[0, 2, 1]]
        return h

    def quat(self) -> tuple[float, float, float, float]:
        r = np.sqrt(0.5)
        return {"z": (1.0, 0.0, 0.0, 0.0), "x": (r, 0.0, r, 0.0), "y": (r, r, 0.0, 0.0)}[self.axis]


def _shade(rgb, f: float) -> tuple[float, float, float]:
    return tuple(float(np.clip(c * f, 0.0, 1.0)) for c in rgb)


def _box(part, centre, half, rgb) -> Geom:
    return Geom("box", tuple(map(float, half)), tuple(map(float, centre)), rgb, part)


def _cyl(part, centre, radius, half_len, rgb, axis="z") -> Geom:
    return Geom("cylinder", (float(radius), float(half_len)), tuple(map(float, centre)), rgb, part, axis)


# --------------------------------------------------------------------------------------------------
# category builders: (rng, scale, rgb) -> list[Geom]


def _table(rng, s, c):
    L, W, H = rng.uniform(1.0, 1.6) * s, rng.uniform(0.6, 0.9) * s, rng.uniform(0.70, 0.78) * s ** 0.5
    t, leg = 0.04, 0.03
    g = [_box("top", (0, 0, H - t / 2), (L / 2, W / 2, t / 2), c)]
    lc = _shade(c, 0.8)
    for sx in (-1, 1):
        for sy in (-1, 1):
            g.append(_box("leg", (sx * (L / 2 - 0.07), sy * (W / 2 - 0.07), (H - t) / 2), (leg, leg, (H - t) / 2), lc))
    return g


def _chair(rng, s, c):
    W, D, h = rng.uniform(0.42, 0.52) * s, rng.uniform(0.42, 0.52) * s, rng.uniform(0.43, 0.48) * s ** 0.5
    back_h, t, leg = rng.uniform(0.40, 0.55) * s, 0.05, 0.022
    lc = _shade(c, 0.7)
    g = [_box("seat", (0, 0, h - t / 2), (D / 2, W / 2, t / 2), c)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            g.append(_box("leg", (sx * (D / 2 - 0.04), sy * (W / 2 - 0.04), (h - t) / 2), (leg, leg, (h - t) / 2), lc))
    g.append(_box("back", (-D / 2 + 0.02, 0, h + back_h / 2), (0.02, W / 2, back_h / 2), c))
    return g


def _sofa(rng, s, c):
    W, D = rng.uniform(1.6, 2.2) * s, rng.uniform(0.80, 0.95) * s
    seat_h, back_h, arm_h, arm_w = 0.42, rng.uniform(0.78, 0.9), 0.60, 0.16
    cushion = _shade(c, 1.15)
    g = [_box("base", (0, 0, 0.12), (D / 2, W / 2, 0.12), _shade(c, 0.85)),
         _box("cushion", (0.08, 0, (0.24 + seat_h) / 2), (D / 2 - 0.08, W / 2 - arm_w, (seat_h - 0.24) / 2), cushion),
         _box("back", (-D / 2 + 0.1, 0, back_h / 2), (0.1, W / 2, back_h / 2), c)]
    for sy in (-1, 1):
        g.append(_box("arm", (0.0, sy * (W / 2 - arm_w / 2), arm_h / 2), (D / 2, arm_w / 2, arm_h / 2), c))
    return g


def _bed(rng, s, c):
    L, W = rng.uniform(1.95, 2.15), rng.uniform(1.0, 1.8) * s
    frame_h, matt_h, head_h = 0.30, 0.22, rng.uniform(0.9, 1.2)
    sheet = COLOURS["white"] if rng.random() < 0.6 else COLOURS["beige"]
    g = [_box("frame", (0.0, 0, frame_h / 2), (L / 2, W / 2, frame_h / 2), c),
         _box("mattress", (0.02, 0, frame_h + matt_h / 2), (L / 2 - 0.06, W / 2 - 0.04, matt_h / 2), sheet),
         _box("headboard", (-L / 2 + 0.04, 0, head_h / 2), (0.04, W / 2, head_h / 2), _shade(c, 0.85))]
    n_pillows = 2 if W > 1.3 else 1
    for k in range(n_pillows):
        y = 0.0 if n_pillows == 1 else (k - 0.5) * W / 2
        g.append(Geom("ellipsoid", (0.16, min(0.3, W / (2 * n_pillows) - 0.05), 0.07),
                      (-L / 2 + 0.3, y, frame_h + matt_h + 0.05), sheet, "pillow"))
    return g


def _cabinet(rng, s, c):
    W, D, H = rng.uniform(0.6, 1.1) * s, rng.uniform(0.40, 0.55), rng.uniform(0.8, 1.5) * s
    g = [_box("body", (0, 0, H / 2), (D / 2, W / 2, H / 2), c),
         _box("seam", (D / 2 + 0.003, 0, H / 2), (0.004, 0.006, H / 2 - 0.04), _shade(c, 0.45))]
    hc = COLOURS["grey"] if np.mean(c) < 0.4 else COLOURS["black"]
    for sy in (-1, 1):
        g.append(_box("handle", (D / 2 + 0.015, sy * 0.06, H * 0.6), (0.015, 0.012, 0.07), hc))
    return g


def _lamp(rng, s, c):
    H, r = rng.uniform(1.35, 1.7) * s ** 0.5, rng.uniform(0.17, 0.24) * s
    metal = COLOURS["grey"] if rng.random() < 0.5 else COLOURS["black"]
    shade_h = rng.uniform(0.25, 0.32)
    return [_cyl("base", (0, 0, 0.015), 0.15, 0.015, metal),
            _cyl("pole", (0, 0, (H - shade_h) / 2 + 0.015), 0.015, (H - shade_h) / 2, metal),
            _cyl("shade", (0, 0, H - shade_h / 2), r, shade_h / 2, c)]


def _box_obj(rng, s, c):
    sx, sy, sz = (rng.uniform(0.35, 0.6) * s for _ in range(3))
    return [_box("box", (0, 0, sz / 2), (sx / 2, sy / 2, sz / 2), c),
            _box("tape", (0, 0, sz + 0.002), (sx / 2 + 0.001, 0.04, 0.003), _shade(c, 0.6))]


def _ball(rng, s, c):
    r = rng.uniform(0.14, 0.24) * s
    return [Geom("sphere", (r,), (0.0, 0.0, r), c, "ball")]


def _vase(rng, s, c):
    r, h = rng.uniform(0.13, 0.18) * s, rng.uniform(0.20, 0.28) * s
    nr, nh = r * rng.uniform(0.4, 0.55), rng.uniform(0.10, 0.16) * s
    return [_cyl("foot", (0, 0, 0.02), r * 0.6, 0.02, _shade(c, 0.8)),
            Geom("ellipsoid", (r, r, h), (0.0, 0.0, 0.02 + h), c, "body"),
            _cyl("neck", (0, 0, 0.02 + 2 * h - 0.03 + nh / 2), nr, nh / 2, c)]


def _bottle(rng, s, c):
    r, h = rng.uniform(0.06, 0.085) * s, rng.uniform(0.24, 0.32) * s
    nh = rng.uniform(0.08, 0.12) * s
    cap = COLOURS["white"] if rng.random() < 0.5 else COLOURS["black"]
    return [_cyl("body", (0, 0, h / 2), r, h / 2, c),
            Geom("sphere", (r,), (0.0, 0.0, h), c, "shoulder"),
            _cyl("neck", (0, 0, h + r * 0.6 + nh / 2), r * 0.38, nh / 2, c),
            _cyl("cap", (0, 0, h + r * 0.6 + nh + 0.02), r * 0.42, 0.02, cap)]


def _monitor(rng, s, c):
    W, Hs = rng.uniform(0.55, 0.75) * s, rng.uniform(0.34, 0.45) * s
    stand_h = rng.uniform(0.12, 0.20)
    screen = (0.03, 0.04, 0.06)
    z0 = 0.02 + stand_h + Hs / 2
    return [_box("base", (0, 0, 0.01), (0.11, 0.14, 0.01), c),
            _box("stand", (-0.02, 0, 0.02 + stand_h / 2 + 0.02), (0.02, 0.03, stand_h / 2 + 0.02), c),
            _box("bezel", (0.01, 0, z0), (0.025, W / 2, Hs / 2), c),
            _box("screen", (0.037, 0, z0 + 0.005), (0.003, W / 2 - 0.02, Hs / 2 - 0.025), screen)]


def _plant(rng, s, c):
    pr, ph = rng.uniform(0.13, 0.2) * s, rng.uniform(0.22, 0.35) * s
    leaf = COLOURS["green"] if rng.random() < 0.5 else (0.16, 0.45, 0.18)
    g = [_cyl("pot", (0, 0, ph / 2), pr, ph / 2, c),
         _cyl("soil", (0, 0, ph + 0.005), pr * 0.9, 0.006, (0.25, 0.17, 0.1)),
         _cyl("stem", (0, 0, ph + 0.15), 0.02, 0.15, (0.30, 0.22, 0.12))]
    n = int(rng.integers(3, 6))
    for k in range(n):
        a = 2 * np.pi * k / n + rng.uniform(-0.3, 0.3)
        rr = rng.uniform(0.12, 0.2) * s
        d = rng.uniform(0.05, 0.14) * s
        g.append(Geom("ellipsoid", (rr, rr, rr * 0.8), (d * np.cos(a), d * np.sin(a), ph + 0.22 + rng.uniform(0, 0.25) * s),
                      _shade(leaf, rng.uniform(0.85, 1.15)), "foliage"))
    return g


def _bookshelf(rng, s, c):
    W, D, H = rng.uniform(0.8, 1.2) * s, rng.uniform(0.28, 0.36), rng.uniform(1.5, 2.0) * s
    t = 0.025
    g = [_box("side", (0, -W / 2 + t / 2, H / 2), (D / 2, t / 2, H / 2), c),
         _box("side", (0, W / 2 - t / 2, H / 2), (D / 2, t / 2, H / 2), c),
         _box("back", (-D / 2 + 0.006, 0, H / 2), (0.006, W / 2 - t, H / 2), _shade(c, 0.8))]
    n_shelves = int(rng.integers(4, 6))
    names = list(COLOURS)
    for k in range(n_shelves + 1):
        z = 0.04 + k * (H - 0.06) / n_shelves
        g.append(_box("shelf", (0, 0, min(z, H - t / 2)), (D / 2, W / 2 - t, t / 2), c))
        if k == n_shelves:
            break
        gap = (H - 0.06) / n_shelves - t
        y = -W / 2 + t + 0.01
        while True:
            bw = rng.uniform(0.03, 0.07)
            if y + bw > W / 2 - t - 0.01:
                break
            if rng.random() < 0.8:
                bh = gap * rng.uniform(0.6, 0.9)
                bd = D * rng.uniform(0.6, 0.85)
                g.append(_box("book", (-D / 2 + 0.012 + bd / 2, y + bw / 2, z + t / 2 + bh / 2), (bd / 2, bw / 2, bh / 2),
                              COLOURS[names[int(rng.integers(len(names)))]]))
            y += bw + 0.004
    return g


def _mug(rng, s, c):
    r, h = rng.uniform(0.075, 0.095) * s, rng.uniform(0.15, 0.2) * s
    t = 0.018
    return [_cyl("body", (0, 0, h / 2), r, h / 2, c),
            _cyl("inside", (0, 0, h - 0.004), r - 0.012, 0.0045, _shade(c, 0.45)),
            _box("handle", (0, r + 0.045, h / 2), (t / 2, t / 2, h * 0.3), c),
            _box("handle", (0, r + 0.02, h / 2 + h * 0.3 - t / 2), (t / 2, 0.025, t / 2), c),
            _box("handle", (0, r + 0.02, h / 2 - h * 0.3 + t / 2), (t / 2, 0.025, t / 2), c)]


def _stool(rng, s, c):
    r, h = rng.uniform(0.16, 0.2) * s, rng.uniform(0.45, 0.7) * s ** 0.5
    n = 3 if rng.random() < 0.5 else 4
    lc = _shade(c, 0.7)
    g = [_cyl("seat", (0, 0, h - 0.025), r, 0.025, c)]
    for k in range(n):
        a = 2 * np.pi * k / n + np.pi / 4
        g.append(_cyl("leg", (0.7 * r * np.cos(a), 0.7 * r * np.sin(a), (h - 0.05) / 2), 0.017, (h - 0.05) / 2, lc))
    g.append(_cyl("ring", (0, 0, h * 0.35), 0.62 * r, 0.012, lc))
    return g


@dataclass(frozen=True)
class Category:
    name: str
    build: object
    colours: tuple[str, ...]
    against_wall: float = 0.0  # probability of being placed with its back against a wall


_WOOD = ("brown", "beige", "white", "black", "grey")
_FABRIC = ("red", "blue", "navy", "grey", "beige", "green", "teal", "brown", "purple", "orange")
_BRIGHT = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "white", "black")

CATEGORIES: tuple[Category, ...] = (
    Category("table", _table, _WOOD),
    Category("chair", _chair, _WOOD + ("red", "blue", "green")),
    Category("sofa", _sofa, _FABRIC, 0.7),
    Category("bed", _bed, _WOOD + ("navy", "red"), 0.9),
    Category("cabinet", _cabinet, _WOOD + ("blue", "green"), 0.8),
    Category("lamp", _lamp, ("white", "beige", "yellow", "orange", "red", "black")),
    Category("box", _box_obj, ("brown", "beige", "white", "red", "blue", "green")),
    Category("ball", _ball, _BRIGHT),
    Category("vase", _vase, _BRIGHT + ("beige",)),
    Category("bottle", _bottle, ("green", "blue", "teal", "red", "brown", "white", "orange")),
    Category("monitor", _monitor, ("black", "grey", "white")),
    Category("plant", _plant, ("brown", "white", "grey", "orange", "black", "teal", "red")),
    Category("bookshelf", _bookshelf, _WOOD, 0.9),
    Category("mug", _mug, _BRIGHT),
    Category("stool", _stool, _WOOD + ("red", "blue", "green", "yellow")),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
_BY_NAME = {c.name: c for c in CATEGORIES}

#: semantic classes, id = index; 0 = "other" (unlabelled; reduce_zero_label ignores it)
STUFF_CLASSES = ("wall", "floor", "ceiling")
CLASS_NAMES: tuple[str, ...] = ("other",) + STUFF_CLASSES + CATEGORY_NAMES
CLASS_ID = {n: i for i, n in enumerate(CLASS_NAMES)}


def palette() -> list[list[int]]:
    """One distinct RGB colour per class (index 0 black), for visualising label maps."""
    pal = [[0, 0, 0]]
    n = len(CLASS_NAMES) - 1
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        v = 0.95 if i % 2 == 0 else 0.7
        pal.append([int(round(255 * x)) for x in colorsys.hsv_to_rgb(h, 0.75, v)])
    return pal


# --------------------------------------------------------------------------------------------------
# object instances


@dataclass
class ObjectSpec:
    instance_id: int
    category: str
    colour: str
    size_name: str
    geoms: list[Geom]
    box_size: tuple[float, float, float]  # full extents of the local box (x, y, z)
    position: tuple[float, float] = (0.0, 0.0)  # floor position of the box centre (world x, y)
    yaw: float = 0.0  # rotation about world z (radians)

    @property
    def class_id(self) -> int:
        return CLASS_ID[self.category]

    @property
    def box_centre(self) -> tuple[float, float, float]:
        return (float(self.position[0]), float(self.position[1]), float(self.box_size[2] / 2))

    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def box_corners(self) -> np.ndarray:
        """8 x 3 world coordinates of the 3D box corners."""
        h = np.asarray(self.box_size) / 2
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        return (signs * h) @ self.rotation().T + np.asarray(self.box_centre)

    def footprint(self, margin: float = 0.0) -> np.ndarray:
        """4 x 2 floor-plane corners of the box, optionally grown by ``margin``."""
        hx, hy = self.box_size[0] / 2 + margin, self.box_size[1] / 2 + margin
        pts = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        return pts @ self.rotation()[:2, :2].T + np.asarray(self.position)


def build_object(rng: np.random.Generator, category: str, instance_id: int) -> ObjectSpec:
    """Sample colour, size and shape of one object; geoms re-centred so the local box is at the origin."""
    cat = _BY_NAME[category]
    colour = cat.colours[int(rng.integers(len(cat.colours)))]
    size_name = list(SIZES)[int(rng.integers(len(SIZES)))]
    geoms = cat.build(rng, SIZES[size_name], COLOURS[colour])
    return _finish(ObjectSpec(instance_id, category, colour, size_name, geoms, (0.0, 0.0, 0.0)))


def _finish(obj: ObjectSpec) -> ObjectSpec:
    lo = np.min([np.asarray(g.pos) - g.half_extents() for g in obj.geoms], axis=0)
    hi = np.max([np.asarray(g.pos) + g.half_extents() for g in obj.geoms], axis=0)
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    geoms = [replace(g, pos=tuple(float(v) for v in np.asarray(g.pos) + shift)) for g in obj.geoms]
    size = tuple(float(v) for v in (hi - lo))
    return replace(obj, geoms=geoms, box_size=size)


def custom_box_object(instance_id: int, size: tuple[float, float, float], colour: str = "red",
                      category: str = "box") -> ObjectSpec:
    """A plain box object of a given full size (used by the controlled depth probe)."""
    g = [_box("box", (0, 0, size[2] / 2), (size[0] / 2, size[1] / 2, size[2] / 2), COLOURS[colour])]
    return _finish(ObjectSpec(instance_id, category, colour, "medium", g, (0.0, 0.0, 0.0)))
