"""CortexBench behaviour cloning (tasks/robot): the eai-vc loop's pieces checked by hand, the
MetaWorld port (camera, seeding, success rule), a state-oracle learning test, and one end-to-end
run through `bench run`. Budget: <= 3 minutes on 2 cores (see docs/robot.md for timings)."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

import importlib.util

# find_spec, not importorskip: importing metaworld imports mujoco, which must come after the GL choice
if importlib.util.find_spec("metaworld") is None:
    pytest.skip("metaworld is not installed (pip install -e '.[robot]')", allow_module_level=True)


# ------------------------------------------------------------------------------------ pure pieces
def test_flare_fusion_hand_computed_with_clamping():
    from tasks.robot.fusion import History, flare_sequence

    emb = np.array([[1.0], [3.0], [7.0], [15.0]])
    proprio = np.array([[9.0], [8.0], [7.0], [6.0]])
    out = flare_sequence(emb, proprio)
    expected = np.array([[0, 0, 1, 9], [0, 2, 3, 8], [2, 4, 7, 7], [4, 8, 15, 6]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    assert flare_sequence(emb).shape == (4, 3)  # no proprio: 3 x D
    h = History()  # the eval buffer (two lockstep episodes) gives the same rows
    for t in range(4):
        h.push(np.stack([emb[t], 2 * emb[t]]))
        rows = h.fused(np.stack([proprio[t], proprio[t]]))
        np.testing.assert_array_equal(rows[0], expected[t])
        np.testing.assert_array_equal(rows[1][:3], 2 * expected[t][:3])


def test_eval_schedule_seeds_and_counts():
    from tasks.robot.config import BCConfig, eval_epochs

    paper = eval_epochs(100, 5)
    assert paper == [*range(5, 100, 5), 99] and len(paper) == 20
    assert eval_epochs(20, 5) == [5, 10, 15, 19] and eval_epochs(1, 5) == [0]
    p = BCConfig(protocol="paper").counts("metaworld")
    assert (p.demos, p.eval_episodes, p.epochs, p.eval_every, p.seeds) == (25, 25, 100, 5, (100, 200, 300))
    s = BCConfig().counts("metaworld")
    assert (s.demos, s.eval_episodes, s.seeds) == (5, 5, (100, 200)) and len(s.seeds) < len(p.seeds)
    assert BCConfig(protocol="paper", demos=3, seeds=(7,)).counts("metaworld").demos == 3
    from bench.config import ConfigError, resolve

    assert resolve(BCConfig(), {"protocol": "paper"}).counts("metaworld").seeds == (100, 200, 300)
    with pytest.raises(ConfigError):
        BCConfig(protocol="huge")


def test_task_seeds_come_from_the_config():
    from tasks import get_task, task_meta
    from tasks.robot.config import BCConfig

    task = get_task("cortexbench-metaworld-drawer-open")
    assert task_meta("cortexbench-metaworld-drawer-open").seeds == (100, 200, 300)
    task._counts = BCConfig().counts("metaworld")
    assert task.seeds(None) == (100, 200)
    task._counts = BCConfig(protocol="paper").counts("metaworld")
    assert task.seeds(None) == (100, 200, 300)


def test_best_over_evaluations():
    from tasks.robot.policy import best_over

    assert best_over([(5, 10.0), (10, 40.0), (15, 40.0), (19, 30.0)]) == (40.0, 10)
    assert best_over([(5, math.nan), (10, 0.0)]) == (0.0, 10)
    with pytest.raises(ValueError):
        best_over([])


def test_policy_architecture_and_last_layer_init():
    from tasks.robot.policy import BCPolicy, train_epoch, make_optimizer

    p = BCPolicy(20, 4, seed=0)
    bns = [m for m in p.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 1 and bns[0] is p.input_bn and bns[0].num_features == 20
    linears = [m for m in p.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 256), (256, 256), (256, 256), (256, 4)]
    with torch.random.fork_rng():  # the same seed without the scale: exactly 100x larger
        ref = BCPolicy(20, 4, seed=0, last_layer_scale=1.0)
    torch.testing.assert_close(p.last.weight, 0.01 * ref.last.weight)
    torch.testing.assert_close(p.last.bias, 0.01 * ref.last.bias)
    bound = 1 / math.sqrt(256)  # PyTorch default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert p.last.weight.abs().max() <= 0.01 * bound and p.last.bias.abs().max() <= 0.01 * bound
    torch.testing.assert_close(BCPolicy(20, 4, seed=0).last.weight, p.last.weight)  # seeded
    x, y = torch.randn(600, 20), torch.randn(600, 4)
    opt, gen = make_optimizer(p, 1e-3), torch.Generator().manual_seed(0)
    first = train_epoch(p, opt, x, y, 256, gen)
    assert math.isfinite(first) and p.act(x[:3].numpy()).shape == (3, 4)


# ------------------------------------------------------------------------------------- MetaWorld
def test_top_cap2_free_camera_reproduces_the_targetbody_camera():
    from tasks.robot.metaworld import TOP_CAP2, free_camera_position, top_cap2_camera  # picks MUJOCO_GL first

    import mujoco

    np.testing.assert_allclose(free_camera_position(**TOP_CAP2), (0.0, 0.9, 0.6), atol=2e-4)
    xml = """<mujoco><visual><global offwidth="64" offheight="64"/></visual><worldbody>
      <light pos="0 0.6 2"/><geom type="plane" size="1 1 .1" rgba=".3 .5 .3 1"/>
      <body name="tablelink" pos="0 0.6 0"><geom type="box" size=".2 .1 .05" rgba=".8 .2 .2 1"/>
        <geom type="sphere" pos=".1 .05 .1" size=".04" rgba=".2 .2 .9 1"/></body>
      <body pos="-.15 .45 .05"><geom type="cylinder" size=".03 .05" rgba=".9 .9 .1 1"/></body>
      <camera name="top_cap2" mode="targetbody" target="tablelink" pos="0 0.9 0.6"/></worldbody></mujoco>"""
    m = mujoco.MjModel.from_xml_string(xml)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    with mujoco.Renderer(m, 64, 64) as r:
        r.update_scene(d, camera="top_cap2")
        fixed = r.render().astype(float)
        r.update_scene(d, camera=top_cap2_camera())
        free = r.render().astype(float)
        eye = np.mean([r.scene.camera[i].pos for i in range(2)], axis=0)
    np.testing.assert_allclose(eye, (0.0, 0.9, 0.6), atol=2e-4)
    assert fixed.std() > 5 and np.abs(fixed - free).mean() < 0.5


@pytest.fixture(scope="module")
def drawer_env():
    from tasks.robot.metaworld import MetaWorldEnv

    env = MetaWorldEnv("drawer-open", shadowsize=1024)
    yield env
    env.close()


def test_metaworld_env_seeding_render_and_camera(drawer_env):
    from tasks.robot.env import SuiteEnv

    env = drawer_env
    assert isinstance(env, SuiteEnv) and (env.horizon, env.action_dim, env.proprio_dim) == (500, 4, 4)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    env.reset(100)
    a = env.state()
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # the global stream is untouched
    env.reset(101)
    b = env.state()
    env.reset(100)
    np.testing.assert_array_equal(env.state(), a)  # a layout is a function of the episode seed
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(env.proprio(), a[:4])
    img = env.render()
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.std() > 10
    assert env.env.model.vis.quality.shadowsize == 1024
    eye = np.mean([env._renderer.scene.camera[i].pos for i in range(2)], axis=0)
    np.testing.assert_allclose(eye, (0.0, 0.9, 0.6), atol=2e-4)


def test_metaworld_success_is_scored_at_the_last_step():
    from tasks.robot.metaworld import MetaWorldEnv

    ok, no = {"success": 1.0}, {"success": 0.0}
    assert MetaWorldEnv.score([(0.0, ok)] * 499 + [(0.0, no)]) == 0.0  # succeeded earlier, not at the end
    assert MetaWorldEnv.score([(0.0, no)] * 499 + [(0.0, ok)]) == 100.0


# ---------------------------------------------------------------------------- learning (oracle)
from tests.robot_oracle import oracle_ctx as _ctx, oracle_task as _oracle_task  # noqa: E402


ORACLE = dict(demos=10, eval_episodes=5, epochs=30, eval_every=10, seeds=(100,))  # evals after epochs 10, 20, 29


@pytest.mark.parametrize("task", ["drawer-open", "button-press-topdown"])
def test_bc_on_state_oracle_beats_random(task, tmp_path, counting_encoder, one_thread):
    from tasks.robot.config import BCConfig
    from tasks.robot.metaworld import MetaWorldEnv
    from tasks.robot.rollout import evaluate

    bc = _oracle_task(f"cortexbench-metaworld-{task}")
    cfg = BCConfig(**ORACLE)
    ctx = _ctx(tmp_path, counting_encoder)
    result = bc.run(ctx, cfg)
    result.validate(bc.meta)
    envs = [MetaWorldEnv(task, render=False) for _ in range(ORACLE["eval_episodes"])]
    rng = np.random.default_rng(0)
    scores, _ = evaluate(envs, 100, lambda e: e.state(), lambda o: o,
                         lambda x: rng.uniform(-1, 1, (len(x), 4)))
    for e in envs:
        e.close()
    floor = statistics.fmean(scores)
    print(f"ORACLE {task}: success {result.metrics['success']:.0f}% (best epoch {result.metrics['best_epoch']:.0f}),"
          f" random floor {floor:.0f}%, params {ctx.params.get('demos.expert_success')}")
    assert result.metrics["success"] >= 60.0 and result.metrics["success"] >= floor + 50, (result.breakdown, floor)
    # resumable: a finished (env, seed) is read back, not retrained
    again = bc.run(ctx, cfg)
    assert again.metrics == result.metrics


def test_training_resumes_at_the_last_saved_epoch(tmp_path, counting_encoder):
    from tasks.robot.config import BCConfig

    bc = _oracle_task("cortexbench-metaworld-drawer-open")
    cfg = BCConfig(demos=1, eval_episodes=1, epochs=3, eval_every=5, seeds=(100,))
    ctx = _ctx(tmp_path, counting_encoder)
    bc._cfg, bc._counts, bc._shadowsize, bc._eval_envs = cfg, cfg.counts("metaworld"), 1024, []
    demos = bc.demos(ctx, cfg, "drawer-open")
    state = ctx.state_dir("drawer-open/seed100")
    full = bc.train_policy(ctx, cfg, "drawer-open", demos, 100, state)
    saved = torch.load(state / "train.pt", weights_only=False)
    assert saved["epoch"] == 2 and len(saved["losses"]) == 3 and [e for e, _ in saved["evals"]] == [2]
    # pretend the run died after epoch 1: resuming reruns epoch 2 only, with the same result
    state2 = ctx.state_dir("drawer-open/seed100-copy")
    cfg2 = BCConfig(demos=1, eval_episodes=1, epochs=2, eval_every=5, seeds=(100,))
    bc._counts = cfg2.counts("metaworld")
    bc.train_policy(ctx, cfg2, "drawer-open", demos, 100, state2)  # epochs 0, 1 (eval at 1)
    ck = torch.load(state2 / "train.pt", weights_only=False)
    ck["evals"] = []
    torch.save(ck, state2 / "train.pt")
    bc._counts = cfg.counts("metaworld")
    resumed = bc.train_policy(ctx, cfg, "drawer-open", demos, 100, state2)
    again = torch.load(state2 / "train.pt", weights_only=False)
    assert again["losses"] == saved["losses"] and resumed["evals"] == full["evals"]
    for env in bc._eval_envs:
        env.close()


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_bench_run_drawer_open_end_to_end(capsys):
    from bench.cli import main
    from bench.store import read_results

    name = "cortexbench-metaworld-drawer-open"
    sets = [f"{name}.demos=1", f"{name}.eval_episodes=1", f"{name}.epochs=2", f"{name}.seeds=[100,200]",
            f"{name}.reflection=false"]  # reflections cost ~4x on a CPU renderer
    argv = ["run", "--encoder", "vit-tiny", "--tasks", name, "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0, capsys.readouterr()
    rows = read_results().query(f"task == '{name}'")
    success = rows[rows.metric == "success"]
    assert len(success) == 1 and 0.0 <= float(success.value.iloc[0]) <= 100.0
    assert set(rows.metric) >= {"success", "success_std", "best_epoch"}
    import json
    import os
    from pathlib import Path

    home = Path(os.environ["BENCH_HOME"])  # each seed's result is stored (and resumable) in the task state
    per_seed = {s: json.loads(next(home.rglob(f"drawer-open/seed{s}/result.json")).read_text()) for s in (100, 200)}
    assert all(set(r) == {"success", "best_epoch", "expert"} for r in per_seed.values())  # expert: the reference row
    mean = statistics.fmean(r["success"] for r in per_seed.values())
    assert float(success.value.iloc[0]) == pytest.approx(mean)
    assert list(home.rglob("drawer-open/seed100/train.pt")) and list(home.rglob("*embeddings/*vit-tiny*.npz"))
