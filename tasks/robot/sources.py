"""Where a CortexBench task's demonstrations come from, as the task's `TaskMeta.data` (a
`bench.data.sources.DataSource`), so the planner says it before any work starts:

1. the official CortexBench demo pickle when present: `$BENCH_CORTEXBENCH/<env_name>.pickle` or
   `$BENCH_CORTEXBENCH/<suite>-expert-v1.0/<env_name>.pickle` (default root `$BENCH_DATA/cortexbench`;
   env names as eai-vc: `drawer-open-v2-goal-observable`, `dmc_walker_stand-v1`, `pen-v0`), read by
   `tasks/robot/official.py` through a restricted unpickler;
2. else demos generated offline by the suite's expert (scripted, DAPG, or a cached SAC expert that
   `bench robot experts --env X` trains: a missing one blocks the task with that command);
3. TriFinger: the `trifinger-simulation` package must be importable; move-cube has no demonstrator
   here (blocked, `NO_EXPERT` says why).

`name` carries the demo identity (pickle size / SAC steps + weights digest), so results made from
different demos never share a result identity. Light: no numpy / torch / simulator imports."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from bench.data.sources import RealData
from bench.errors import DataMissingError
from bench.paths import cache_root

SAC_ENVS = ("walker-stand", "walker-walk", "cheetah-run", "finger-spin")
SUITE_ZIPS = {"metaworld": "metaworld-expert-v1.0", "dmc": "dmc-expert-v1.0", "adroit": "adroit-expert-v1.0"}
OFFICIAL = RealData(
    "CortexBench expert demos", "cortexbench", "BENCH_CORTEXBENCH", (),
    "Unzip metaworld-expert-v1.0.zip / dmc-expert-v1.0.zip / adroit-expert-v1.0.zip (eai-vc cortexbench/DATASETS.md).")
TRIFINGER_INSTALL = "pip install trifinger-simulation==2.0.0 (or the project's robot extra: pip install -e '.[robot]')"
NO_EXPERT = {  # tasks registered for the table, whose demonstrator is not available here (the reason)
    "trifinger-move-cube": (
        "no TriFinger move-cube demonstrator: eai-vc's scripted grasp-and-move MoveCubePolicy (older "
        "eval/trifinger/.../gen_move_cube_demos.py) is not ported (three-finger grasp state machine, cube "
        "friction/mass tuned on the fork's trifinger_meta robot, which PyPI trifinger-simulation 2.0.0 lacks), "
        "the official trifinger_demos.zip is not available offline, and Theia (rai-opensource/theia#21) could not "
        "reproduce Move-Cube with VC-1's released code; so the cortexbench-trifinger suite mean cannot be "
        "formed here (docs/robot.md)"),
}


def sac_expert_dir(env: str) -> Path:
    """Folder of the DMC SAC expert of `env` (`bench robot experts` writes it)."""
    return cache_root() / "robot-experts" / "dmc" / env


def sac_expert_id(env: str) -> str:
    """"sac<steps>-s<seed>-<sha256[:12] of the weights>" of the cached expert, "" when there is none."""
    folder = sac_expert_dir(env)
    info, weights = folder / "expert.json", folder / "expert.safetensors"
    if not (info.exists() and weights.exists()):
        return ""
    meta = json.loads(info.read_text())
    return f"sac{meta['steps']}-s{meta['seed']}-{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}"


def official_name(suite: str, env: str) -> str:
    """eai-vc's env name (= the pickle's stem) for one of our (suite, env) keys."""
    if suite == "metaworld":
        return f"{env}-v2-goal-observable"
    if suite == "dmc":
        return "dmc_" + env.replace("-", "_") + "-v1"
    if suite == "adroit":
        return f"{env}-v0"
    raise ValueError(f"no official CortexBench pickles for suite {suite!r}")


def find_pickle(root: Path | None, suite: str, env: str) -> Path | None:
    """`root/<env_name>.pickle` or `root/<suite>-expert-v1.0/<env_name>.pickle`, else None."""
    if root is None or suite not in SUITE_ZIPS:
        return None
    stem = official_name(suite, env) + ".pickle"
    return next((p for p in (root / stem, root / SUITE_ZIPS[suite] / stem) if p.is_file()), None)


@dataclass(frozen=True)
class CortexBenchDemos:
    suite: str
    env: str
    expert: str  # "scripted" | "dapg" | "sac" | "trifinger" | "none" (blocked: NO_EXPERT says why)

    def root(self) -> Path:
        return OFFICIAL.root()

    def pickle_path(self) -> Path | None:
        return find_pickle(self.root(), self.suite, self.env)

    @property
    def name(self) -> str:
        pkl = self.pickle_path()
        if pkl is not None:
            return f"official CortexBench demos {pkl.name} ({pkl.stat().st_size} bytes)"
        if self.expert == "sac":
            return f"demos by the SAC expert {sac_expert_id(self.env) or '(not trained)'}"
        return f"demos by the {self.expert} expert"

    def _missing(self) -> tuple[Path, str] | None:
        if self.pickle_path() is not None:
            return None
        if self.expert == "sac" and not (sac_expert_dir(self.env) / "expert.safetensors").exists():
            return (sac_expert_dir(self.env) / "expert.safetensors",
                    f"train the state SAC expert first: `bench robot experts --env {self.env}` (hours on a CPU, "
                    f"docs/robot.md), or place the official pickle {official_name(self.suite, self.env)}.pickle "
                    f"under {self.root()} (BENCH_CORTEXBENCH)")
        if self.expert == "trifinger" and importlib.util.find_spec("trifinger_simulation") is None:
            return Path("trifinger_simulation"), f"the TriFinger simulator is not installed: {TRIFINGER_INSTALL}"
        if self.expert == "none":
            return (Path(f"tasks/robot/{self.suite}.py (no {self.env} demonstrator)"),
                    NO_EXPERT.get(f"{self.suite}-{self.env}", "no expert"))
        return None

    def status(self, preset: str | None = None) -> tuple[bool, str]:
        missing = self._missing()
        if missing is not None:
            return False, missing[1] if self.expert == "none" else f"{missing[0]} not found: {missing[1]}"
        pkl = self.pickle_path()
        if pkl is not None:
            return True, f"official demos {pkl}"
        where = f"no official pickle under {self.root()}" if self.suite in SUITE_ZIPS else "generated offline"
        return True, f"{self.name}, recorded on first use ({where})"

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        missing = self._missing()
        if missing is not None:
            raise DataMissingError(f"CortexBench {self.suite} {self.env} demonstrations", missing[0], missing[1])
        return self.root()


__all__ = ["CortexBenchDemos", "NO_EXPERT", "OFFICIAL", "find_pickle", "sac_expert_id", "SAC_ENVS", "SUITE_ZIPS", "TRIFINGER_INSTALL", "official_name",
           "sac_expert_dir"]
