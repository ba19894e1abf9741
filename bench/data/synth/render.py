"""Offscreen MuJoCo rendering of a :class:`SceneSpec`: RGB, planar metric depth, geom-id segmentation.

``mujoco`` is imported lazily, after :func:`select_gl_backend` has exported ``MUJOCO_GL``.
Shadows, reflections, skybox and multisampling are off (they cost several times the render time).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .catalog import CLASS_ID
from .gl import select_gl_backend
from .scene import SceneSpec, to_mjcf

# OpenCV camera (x right, y down, z forward) -> MuJoCo camera (x right, y up, looks along -z)
_CV_TO_MJ = np.diag([1.0, -1.0, -1.0])


def fovy_for_focal(focal: float, height: int) -> float:
    """Vertical field of view (degrees) giving focal length ``focal`` (pixels) at image height ``height``."""
    return math.degrees(2.0 * math.atan(height / 2.0 / focal))


def intrinsics(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """3x3 pinhole K for MuJoCo's symmetric frustum. Pixel (u, v) has its centre at integer (u, v),
    so the principal point is ((W-1)/2, (H-1)/2)."""
    f = height / 2.0 / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class ViewRender:
    rgb: np.ndarray  # H x W x 3 uint8
    depth: np.ndarray  # H x W float32, metres along the optical axis, 0 where nothing was hit
    instance: np.ndarray  # H x W uint16, 0 = none (room surfaces), else instance id
    semantic: np.ndarray  # H x W uint8 class ids
    amodal_px: dict[int, float]  # instance -> pixel count it would cover unoccluded (inside the frame)


class Renderer:
    """Owns one GL context; ``load(scene)`` compiles a scene, ``render(pose)`` renders one view."""

    def __init__(self, width: int = 640, height: int = 480, fovy_deg: float | None = None, amodal_downscale: int = 4):
        if fovy_deg is None:  # NYU's focal length (518.8579 px at 640x480)
            fovy_deg = fovy_for_focal(518.8579 * height / 480.0, height)
        self.backend = select_gl_backend()
        import mujoco  # noqa: WPS433 (lazy: after the backend is chosen)

        self.mj = mujoco
        self.width, self.height, self.fovy = width, height, float(fovy_deg)
        self.amodal_downscale = amodal_downscale
        self.ctx = mujoco.GLContext(width, height)
        self.ctx.make_current()
        self.model = self.data = self.con = self.scn = None
        self.opt, self.pert, self.cam = mujoco.MjvOption(), mujoco.MjvPerturb(), mujoco.MjvCamera()
        self.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.cam.fixedcamid = 0
        self._rgb = np.zeros((height, width, 3), np.uint8)
        self._dep = np.zeros((height, width), np.float32)

    # ------------------------------------------------------------------ scene
    def load(self, scene: SceneSpec) -> None:
        mj = self.mj
        self.ctx.make_current()
        if self.con is not None:
            self.con.free()
        m = mj.MjModel.from_xml_string(to_mjcf(scene, self.width, self.height, self.fovy))
        m.cam_fovy[0] = self.fovy
        d = mj.MjData(m)
        mj.mj_forward(m, d)
        self.model, self.data = m, d
        self.con = mj.MjrContext(m, mj.mjtFontScale.mjFONTSCALE_50)
        mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN, self.con)
        self.scn = mj.MjvScene(m, maxgeom=m.ngeom + 50)
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_FOG", "mjRND_HAZE"):
            self.scn.flags[getattr(mj.mjtRndFlag, flag)] = 0
        # geom id -> instance id / class id
        self.geom_instance = np.zeros(m.ngeom + 1, np.int32)
        self.geom_class = np.zeros(m.ngeom + 1, np.int32)
        for gid in range(m.ngeom):
            name = m.geom(gid).name
            if name.startswith("obj"):
                iid = int(name[3:].split("_")[0])
                self.geom_instance[gid] = iid
            elif name.startswith("room_"):
                self.geom_class[gid] = CLASS_ID[name.split("_")[1]]
        cls_of = {o.instance_id: o.class_id for o in scene.objects}
        for gid in range(m.ngeom):
            if self.geom_instance[gid]:
                self.geom_class[gid] = cls_of[int(self.geom_instance[gid])]
        # last entry (index -1) = background
        self.geom_instance[-1] = 0
        self.geom_class[-1] = 0

    def near_far(self) -> tuple[float, float]:
        m = self.model
        return float(m.vis.map.znear * m.stat.extent), float(m.vis.map.zfar * m.stat.extent)

    # ------------------------------------------------------------------ views
    def _set_pose(self, c2w: np.ndarray) -> None:
        mj, m, d = self.mj, self.model, self.data
        R_mj = np.asarray(c2w[:3, :3], float) @ _CV_TO_MJ
        q = np.zeros(4)
        mj.mju_mat2Quat(q, R_mj.reshape(-1))
        m.cam_pos[0] = c2w[:3, 3]
        m.cam_quat[0] = q
        mj.mj_kinematics(m, d)
        mj.mj_camlight(m, d)
        mj.mjv_updateScene(m, d, self.opt, self.pert, self.cam, mj.mjtCatBit.mjCAT_ALL, self.scn)

    def _segment(self, rect) -> np.ndarray:
        """Render segmentation into ``rect``; returns geom ids (-1 = background) as an int array."""
        mj, scn = self.mj, self.scn
        scn.flags[mj.mjtRndFlag.mjRND_SEGMENT] = 1
        scn.flags[mj.mjtRndFlag.mjRND_IDCOLOR] = 1
        mj.mjr_render(rect, scn, self.con)
        buf = np.empty((rect.height, rect.width, 3), np.uint8)
        mj.mjr_readPixels(buf, None, rect, self.con)
        scn.flags[mj.mjtRndFlag.mjRND_SEGMENT] = 0
        scn.flags[mj.mjtRndFlag.mjRND_IDCOLOR] = 0
        segid = buf[..., 0].astype(np.int32) | (buf[..., 1].astype(np.int32) << 8) | (buf[..., 2].astype(np.int32) << 16)
        return np.flipud(self._seg_lut[segid])

    def render(self, c2w: np.ndarray, amodal: bool = True) -> ViewRender:
        mj, scn = self.mj, self.scn
        self.ctx.make_current()
        self._set_pose(c2w)
        # segid (index into scn.geoms, +1; 0 = background) -> model geom id (-1 = none)
        lut = np.full(scn.ngeom + 1, -1, np.int32)
        geoms = [scn.geoms[i] for i in range(scn.ngeom)]
        for i, g in enumerate(geoms):
            if g.objtype == mj.mjtObj.mjOBJ_GEOM and g.segid >= 0:
                lut[g.segid + 1] = g.objid
        self._seg_lut = lut
        full = mj.MjrRect(0, 0, self.width, self.height)
        # colour + depth
        mj.mjr_render(full, scn, self.con)
        mj.mjr_readPixels(self._rgb, self._dep, full, self.con)
        rgb = np.flipud(self._rgb).copy()
        near, far = self.near_far()
        zbuf = np.flipud(self._dep).astype(np.float64)
        depth = near / (1.0 - zbuf * (1.0 - near / far))
        # segmentation
        gid = self._segment(full)
        instance = self.geom_instance[gid].astype(np.uint16)
        semantic = self.geom_class[gid].astype(np.uint8)
        depth[gid < 0] = 0.0
        amodal_px: dict[int, float] = {}
        if amodal:
            amodal_px = self._amodal(geoms, np.unique(instance[instance > 0]))
        return ViewRender(rgb, depth.astype(np.float32), instance, semantic, amodal_px)

    def _amodal(self, geoms, visible: np.ndarray) -> dict[int, float]:
        """Pixel count of each visible instance rendered alone (at 1/amodal_downscale resolution)."""
        mj = self.mj
        s = self.amodal_downscale
        rect = mj.MjrRect(0, 0, self.width // s, self.height // s)
        owner = np.array([self.geom_instance[g.objid] if g.objtype == mj.mjtObj.mjOBJ_GEOM else 0 for g in geoms])
        saved = [g.pos.copy() for g in geoms]
        far = np.array([1e5, 1e5, 1e5])
        for g in geoms:
            g.pos[:] = far
        out = {}
        scale = (self.width * self.height) / float(rect.width * rect.height)
        for iid in visible.tolist():
            idx = np.flatnonzero(owner == iid)
            for i in idx:
                geoms[i].pos[:] = saved[i]
            gid = self._segment(rect)
            out[int(iid)] = float((gid >= 0).sum() * scale)
            for i in idx:
                geoms[i].pos[:] = far
        for g, p in zip(geoms, saved):
            g.pos[:] = p
        return out

    def close(self) -> None:
        if self.con is not None:
            self.ctx.make_current()
            self.con.free()
            self.con = None
        if self.ctx is not None:
            self.ctx.free()
            self.ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
