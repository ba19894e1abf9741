"""Pick an offscreen OpenGL backend for MuJoCo before `mujoco` is imported.

MuJoCo reads ``MUJOCO_GL`` once, when the module is first imported, so the choice has to be made
first.  Rules:

1. ``MUJOCO_GL`` already set -> respected as is.
2. ``mujoco`` already imported -> nothing can be changed; report the backend it picked.
3. otherwise probe ``egl`` then ``osmesa``, each in a subprocess that renders one frame, and export
   the first that works (``MUJOCO_GL`` and ``PYOPENGL_PLATFORM``).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

log = logging.getLogger(__name__)

CANDIDATES = ("egl", "osmesa")

_PROBE = r"""
import numpy as np, mujoco
ctx = mujoco.GLContext(32, 32)
ctx.make_current()
m = mujoco.MjModel.from_xml_string('<mujoco><visual><global offwidth="32" offheight="32"/></visual>'
    '<worldbody><geom type="box" size=".1 .1 .1" pos="0 0 -1"/>'
    '<camera pos="0 0 0" xyaxes="1 0 0 0 1 0"/></worldbody></mujoco>')
d = mujoco.MjData(m); mujoco.mj_forward(m, d)
con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_50)
mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, con)
scn = mujoco.MjvScene(m, 100); cam = mujoco.MjvCamera()
cam.type = mujoco.mjtCamera.mjCAMERA_FIXED; cam.fixedcamid = 0
mujoco.mjv_updateScene(m, d, mujoco.MjvOption(), mujoco.MjvPerturb(), cam, mujoco.mjtCatBit.mjCAT_ALL, scn)
vp = mujoco.MjrRect(0, 0, 32, 32)
mujoco.mjr_render(vp, scn, con)
rgb = np.zeros((32, 32, 3), np.uint8); dep = np.zeros((32, 32), np.float32)
mujoco.mjr_readPixels(rgb, dep, vp, con)
assert dep.min() < 1.0, "depth buffer empty"
con.free(); ctx.free()
print("ok")
"""

_selected: str | None = None


def _backend_of_imported_mujoco() -> str:
    mujoco = sys.modules["mujoco"]
    ctx = getattr(mujoco, "GLContext", None)
    if ctx is None:
        return "disabled"
    return ctx.__module__.rsplit(".", 1)[-1]  # mujoco.egl -> egl, mujoco.glfw -> glfw


def probe(backend: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Render one frame with ``backend`` in a fresh interpreter; returns (ok, stderr tail)."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f}s"
    ok = r.returncode == 0 and r.stdout.strip().endswith("ok")
    return ok, (r.stderr or r.stdout)[-800:]


def select_gl_backend() -> str:
    """Return the MuJoCo GL backend to use (and export it), choosing one if none is set."""
    global _selected
    env = os.environ.get("MUJOCO_GL", "").strip().lower()
    if "mujoco" in sys.modules:
        used = _backend_of_imported_mujoco()
        if env and env != used:
            log.warning("mujoco already imported with backend %s (MUJOCO_GL=%s)", used, env)
        _selected = used
        return used
    if env:
        _selected = env
        return env
    if _selected:
        return _selected
    errors = []
    for cand in CANDIDATES:
        ok, err = probe(cand)
        if ok:
            os.environ["MUJOCO_GL"] = cand
            os.environ["PYOPENGL_PLATFORM"] = cand
            _selected = cand
            log.info("MuJoCo GL backend: %s", cand)
            return cand
        errors.append(f"{cand}: {err.strip().splitlines()[-1] if err.strip() else 'failed'}")
    raise RuntimeError(
        "no offscreen OpenGL backend works for MuJoCo (tried " + ", ".join(CANDIDATES) + "):\n  "
        + "\n  ".join(errors)
        + "\nInstall Mesa EGL (libegl1, libgl1-mesa-dri) or OSMesa (libosmesa6), or set MUJOCO_GL."
    )
