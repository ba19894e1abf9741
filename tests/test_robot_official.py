"""Official CortexBench demo pickles (tasks/robot/official.py, sources.py): read in eai-vc's layout
through the restricted unpickler, used by the BC task instead of generated demos (and named in the
data identity); a hostile pickle is refused before anything runs; a corrupt or malformed one is a
clear error naming the file."""
from __future__ import annotations

import importlib.util
import os
import pickle

import numpy as np
import pytest
import torch

if importlib.util.find_spec("metaworld") is None:
    pytest.skip("metaworld is not installed (pip install -e '.[robot]')", allow_module_level=True)

from bench.errors import DataError, RefusedPickleError  # noqa: E402


def _paths(n: int, t: int = 12, size: int = 64, proprio_key: str = "gripper_proprio"):
    rng = np.random.default_rng(0)
    return [{"images": rng.integers(0, 255, (t, size, size, 3), dtype=np.uint8),
             "actions": rng.uniform(-1, 1, (t, 4)).astype(np.float32),
             "rewards": np.zeros(t), "observations": rng.normal(size=(t, 39)),
             "env_infos": {proprio_key: rng.normal(size=(t, 4)).astype(np.float32), "success": np.ones(t)}}
            for _ in range(n)]


@pytest.fixture
def cortexbench_root(tmp_path, monkeypatch):
    root = tmp_path / "cortexbench"
    (root / "metaworld-expert-v1.0").mkdir(parents=True)
    monkeypatch.setenv("BENCH_CORTEXBENCH", str(root))
    return root


def test_official_pickle_feeds_the_bc_task(cortexbench_root, tmp_path, counting_encoder):
    from bench.context import EvalContext
    from bench.features import FeatureCache
    from tasks import get_task, task_meta
    from tasks.robot.config import BCConfig

    meta = task_meta("cortexbench-metaworld-drawer-open")
    assert meta.data.status()[0] and meta.data.pickle_path() is None
    generated_name = meta.data.name
    path = cortexbench_root / "metaworld-expert-v1.0" / "drawer-open-v2-goal-observable.pickle"
    path.write_bytes(pickle.dumps(_paths(3), protocol=4))
    ok, where = meta.data.status()
    assert ok and str(path) in where and meta.data.name != generated_name  # a different data identity
    assert meta.data.prepare() == cortexbench_root

    task = get_task("cortexbench-metaworld-drawer-open")
    cfg = BCConfig(demos=2)
    task._cfg, task._counts, task._shadowsize = cfg, cfg.counts("metaworld"), 1024
    ctx = EvalContext(counting_encoder, torch.device("cpu"), 0, FeatureCache(tmp_path / "cache" / "features"),
                      root=meta.data.prepare(), state_root=tmp_path / "state")
    demos = task.demos(ctx, cfg, "drawer-open")
    assert demos["x"].shape == (2 * 12, 3 * counting_encoder.embed_dim + 4) and demos["y"].shape == (24, 4)
    want = _paths(3)
    np.testing.assert_allclose(demos["y"][:12], want[0]["actions"])
    np.testing.assert_allclose(demos["x"][:12, -4:], want[0]["env_infos"]["gripper_proprio"])  # proprio appended
    assert "official" in ctx.params["demos.source"] and not (tmp_path / "cache" / "robot-demos").exists()
    seen = counting_encoder.images_seen
    task.demos(ctx, cfg, "drawer-open")  # embeddings cached per (demo set, encoder): nothing re-encoded
    assert counting_encoder.images_seen == seen


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/robot-official-pwned",))


def test_hostile_corrupt_and_malformed_pickles_are_refused(tmp_path):
    from tasks.robot.official import load_official_demos

    sentinel = "/tmp/robot-official-pwned"
    if os.path.exists(sentinel):
        os.unlink(sentinel)
    hostile = tmp_path / "drawer-open-v2-goal-observable.pickle"
    hostile.write_bytes(pickle.dumps([{"images": _Exploit()}]))
    with pytest.raises(RefusedPickleError, match=r"drawer-open-v2-goal-observable\.pickle.*(posix|os)\.system"):
        load_official_demos(hostile, "metaworld", 1, 4, 4)
    assert not os.path.exists(sentinel)

    corrupt = tmp_path / "corrupt.pickle"
    corrupt.write_bytes(pickle.dumps(_paths(1))[:500])
    with pytest.raises(DataError, match=r"corrupt\.pickle: .*(truncated|corrupt)"):
        load_official_demos(corrupt, "metaworld", 1, 4, 4)

    cases = [
        ({"not": "a list"}, "list of path dicts"),
        ([{"actions": np.zeros((3, 4))}], r"missing key\(s\) \['images'\]"),
        ([{**_paths(1)[0], "actions": np.zeros((12, 7))}], r"expected \(T, 4\)"),
        ([{**_paths(1)[0], "env_infos": {}}], r"env_infos\['gripper_proprio'\]"),
        ([{**_paths(1)[0], "images": np.zeros((12, 8, 8, 3), np.float32)}], "uint8"),
    ]
    for i, (obj, match) in enumerate(cases):
        bad = tmp_path / f"bad{i}.pickle"
        bad.write_bytes(pickle.dumps(obj))
        with pytest.raises(DataError, match=match):
            load_official_demos(bad, "metaworld", 1, 4, 4)
    few = tmp_path / "few.pickle"
    few.write_bytes(pickle.dumps(_paths(1)))
    with pytest.raises(DataError, match="holds 1 demos, the protocol needs 5"):
        load_official_demos(few, "metaworld", 5, 4, 4)
    dmc = load_official_demos(few, "dmc", 1, 4, 0)  # DMC: no proprioception
    assert dmc[0]["proprio"].shape == (12, 0)
