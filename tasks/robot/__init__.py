"""CortexBench behaviour cloning (paper Table 4; eai-vc `mujoco_vc` and `trifinger_vc`): MetaWorld's five
tasks, Adroit pen / relocate, DMControl's five (reacher-easy scripted; the other four need a SAC expert made by
`bench robot experts`, their data source says so), TriFinger reach-cube (move-cube registered, blocked: no
demonstrator), the four suite means and `cortexbench-average` (the mean of the suite means, Tables 4/8/9). Each task's `data` (sources.py) says where its demos come from (official pickle or expert). Opt-in: hours of CPU rendering at protocol size, so `--tasks all`
leaves them out; run them by name or with `--tasks robot`. Metadata only (no torch / numpy / mujoco); behaviour in `bc.py`, knobs in
`config.py`, the simulator interface in `env.py`. See docs/robot.md.

Default protocol "small" (CI / laptop): 5 demos, 5 eval episodes, 20 epochs (evals after epochs
5, 10, 15, 19), seeds 100, 200. `--set TASK.protocol=paper`: 25 demos, 25 episodes, 100 epochs
(20 evals), seeds 100, 200, 300 (TaskMeta.notes records these)."""
from __future__ import annotations

from bench.metrics import Metric
from bench.task import AggregateTask, Need, TaskMeta
from tasks import register_aggregate, register_task
from tasks.robot.average import MeanOfSuites
from tasks.robot.sources import SAC_ENVS, CortexBenchDemos

METAWORLD_TASKS = ("assembly", "bin-picking", "button-press-topdown", "drawer-open", "hammer")
REFERENCE = ("Majumdar et al. 2023, CortexBench (facebookresearch/eai-vc cortexbench/mujoco_vc "
             "visual_imitation/train_loop.py, config/Metaworld_BC_config.yaml)")

BC_METRICS = (
    Metric("success", True, "best-over-evaluations success rate at the last of 500 steps, mean over seeds (%)", "%"),
    Metric("success_std", False, "std over protocol seeds of the success rate", "%", "diagnostic"),
    Metric("best_epoch", False, "0-based epoch of the best evaluation, mean over seeds", "", "diagnostic"),
    Metric("expert", True, "the demonstrator's score on the same evaluation episodes (reference row)", "%", "reference"),
)

NEEDS = Need.SIMULATOR | Need.ONLINE_ENCODER | Need.OWN_PROCESS
DISPLAY = {"metaworld": "MetaWorld", "adroit": "Adroit", "dmcontrol": "DMControl", "trifinger": "TriFinger"}


def register_suite(suite: str, title: str, tasks, metrics, notes, data, aggregate: tuple[str, str, str],
                   reference: str = REFERENCE, impl: str = "tasks.robot.bc:CortexBenchBC",
                   score: str = "success %") -> tuple[str, tuple[str, ...]]:
    """One suite: its per-environment tasks (`cortexbench-<title>-<task>`) and its suite-mean aggregate
    (`cortexbench-<title>`, the Table 4 column); `aggregate` = (metric name, description, unit).
    Returns (aggregate name, member names) for `cortexbench-average`."""
    for task in tasks:
        register_task(TaskMeta(
            name=f"cortexbench-{title}-{task}", group="robot",
            description=f"CortexBench {DISPLAY[title]} {task}: behaviour cloning on frozen embeddings ({score})",
            metrics=metrics, headline="success", protocol="cortexbench-bc", paper_task=None,  # Table 4: suite means only
            reference=reference, needs=NEEDS, seeds=(100, 200, 300), notes=notes(task), opt_in=True,
            data=data(task)), impl, suite=suite, env=task)
    metric, description, agg_unit = aggregate
    register_aggregate(AggregateTask(
        TaskMeta(f"cortexbench-{title}", "robot", f"CortexBench {DISPLAY[title]}: {description}",
                 (Metric(metric, True, description, agg_unit),), metric, protocol="cortexbench-bc",
                 paper_task=f"cortexbench-{title}", reference=reference, needs=Need.NONE, opt_in=True),
        members=tuple(f"cortexbench-{title}-{t}" for t in tasks), metric="success"))
    return f"cortexbench-{title}", tuple(f"cortexbench-{title}-{t}" for t in tasks)


def metaworld_notes(task: str) -> dict[str, str]:
    return {
        "env": f"{task}-v3-goal-observable (metaworld 3.1.1; paper: {task}-v2-goal-observable)",
        "camera": "top_cap2 as a free camera: lookat (0,0.6,0), distance 0.6708, azimuth -90, elevation -63.43; 256x256",
        "embedding": "CLS after the final norm, encoder's own resize/centre-crop (256 -> 224 for 224 models)",
        "history": "FLARE 3: [e(t-1)-e(t-2), e(t)-e(t-1), e(t)], clamped at 0; proprio obs[:4] appended",
        "policy": "BatchNorm1d(input) -> 256-256-256 ReLU -> 4; last layer x0.01; MSE, Adam 1e-3, batch 256",
        "eval": "deterministic; episode seeds base_seed+ep (base_seed = protocol seed); success at step 500",
        "score": "max over evaluations, mean over seeds",
        "experts": "metaworld.policies scripted v3 policies; demos kept only if successful at step 500",
        "paper_counts": "25 demos, 25 eval episodes, 100 epochs, eval after epochs 5,10,...,95,99 (20), seeds 100/200/300",
        "small_counts": "5 demos, 5 eval episodes, 20 epochs, eval after epochs 5,10,15,19, seeds 100/200",
    }


SUITES = [register_suite("metaworld", "metaworld", METAWORLD_TASKS, BC_METRICS, metaworld_notes,
                         lambda t: CortexBenchDemos("metaworld", t, "scripted"),
                         ("success_rate", "mean over the five MetaWorld tasks of their success (%)", "%"))]

ADROIT_TASKS = {"pen": (24, 100, 20), "relocate": (30, 200, 25)}  # proprio dims, horizon, goal steps needed


def adroit_notes(task: str) -> dict[str, str]:
    proprio, horizon, steps = ADROIT_TASKS[task]
    return {
        "env": f"AdroitHand{task.capitalize()}-v1 (gymnasium-robotics 1.4.2; paper: mj_envs {task}-v0)",
        "camera": "vil_camera (mj_envs pose), 256x256, upright in MuJoCo 3 (no flip)",
        "embedding": "CLS after the final norm, encoder's own resize/centre-crop",
        "history": f"FLARE 3, proprio obs[:{proprio}] appended",
        "policy": "BatchNorm1d(input) -> 256-256-256 ReLU -> actions; last layer x0.01; MSE, Adam 1e-3, batch 256",
        "eval": f"deterministic; episode seeds base_seed+ep; horizon {horizon}",
        "score": f"success if the goal is achieved on > {steps} steps; max over evaluations, mean over seeds",
        "experts": "DAPG policies (aravindr93/hand_dapg, Apache-2.0) converted to safetensors (tasks/robot/experts/adroit)",
        "paper_counts": "100 demos, 25 eval episodes, 100 epochs (20 evals), seeds 100/200/300",
        "small_counts": "10 demos, 5 eval episodes, 20 epochs, seeds 100/200",
    }



SUITES.append(register_suite("adroit", "adroit", tuple(ADROIT_TASKS), BC_METRICS, adroit_notes,
                             lambda t: CortexBenchDemos("adroit", t, "dapg"),
                             ("success_rate", "mean over pen and relocate of their success (%)", "%")))

DMC_TASKS = {"walker-stand": "side", "walker-walk": "side", "reacher-easy": "fixed", "cheetah-run": "side",
             "finger-spin": "cam0"}  # camera 0 of each domain
DMC_METRICS = (Metric("success", True, "best-over-evaluations normalised return (return / 10), mean over seeds", ""),
               Metric("success_std", False, "std over protocol seeds of the normalised return", "", "diagnostic"),
               BC_METRICS[2],
               Metric("expert", True, "the demonstrator's return / 10 on the same evaluation episodes (reference row)",
                      "", "reference"))


def dmc_notes(task: str) -> dict[str, str]:
    domain, sub = task.split("-")
    expert = ("scripted reacher controller (measured return/10 98.5 on seeds 0-9)" if task == "reacher-easy" else
              f"state SAC (stable-baselines3), trained by `bench robot experts --env {task}`; its identity is the data id")
    return {"env": f"dm_control suite {domain}/{sub}, 1000 control steps, task seeded per episode (documented deviation)",
            "camera": f"camera 0 ('{DMC_TASKS[task]}'), 256x256", "history": "FLARE 3, no proprio",
            "score": "return / 10 (eai-vc#14); max over evaluations, mean over seeds", "experts": expert,
            "paper_counts": "100 demos, 10 eval episodes, 100 epochs (20 evals), seeds 100/200/300",
            "small_counts": "5 demos, 3 eval episodes, 20 epochs, seeds 100/200"}



SUITES.append(register_suite("dmc", "dmcontrol", tuple(DMC_TASKS), DMC_METRICS, dmc_notes,
                             lambda t: CortexBenchDemos("dmc", t, "sac" if t in SAC_ENVS else "scripted"),
                             ("normalized_score", "mean over the five DMControl tasks of their return / 10", ""),
                             score="return / 10"))

TRIFINGER_TASKS = ("reach-cube", "move-cube")
TRIFINGER_REFERENCE = ("Majumdar et al. 2023, CortexBench (facebookresearch/eai-vc cortexbench/trifinger_vc "
                       "algos/bc_finetune.py, config/bc_default.yaml, trifinger_envs/cube_reach.py)")
TRIFINGER_METRICS = (
    Metric("success", True, "best-over-evaluations mean scaled_success at the last step x100, mean over seeds (%)", "%"),
    *BC_METRICS[1:])


def trifinger_notes(task: str) -> dict[str, str]:
    steps, max_a = {"reach-cube": (5, 5), "move-cube": (10, 8)}[task]
    return {
        "env": f"trifinger-simulation 2.0.0 (PyBullet), robot trifingeredu (paper: fork-only trifinger_meta), {task}, "
               f"{steps} policy steps of 0.4 s (100 sim steps of 0.004 s)",
        "camera": "camera60 of TriFingerCameras (default view), 270x270, FOV 52, TinyRenderer, no shadows",
        "embedding": "CLS after the final norm, encoder's own resize/centre-crop (270 -> 256 -> 224)",
        "history": "none; ft_pos_cur (9, cm) appended",
        "policy": "Linear(in, 2000) -> ReLU -> Linear(2000, 2000) -> ReLU -> actions (cm, clipped +-%d); "
                  "MSE, AdamW 1e-4 wd 0, batch 32; rep_to_policy none" % max_a,
        "eval": "before training and after every 5th epoch; one episode per test start (seeds test_seed+ep, "
                "fixed across protocol seeds)",
        "score": "100 x scaled_success after the last step, mean over episodes; max over evaluations, mean over seeds",
        "experts": "scripted ReachCubePolicy path (eai-vc gen_demos) at 0.4 s steps; demos kept if scaled_success >= 0.9"
                   if task == "reach-cube" else "none available (blocked: sources.NO_EXPERT)",
        "paper_counts": "100 train demos, 25 test episodes, 100 epochs (21 evals), seeds 100/200/300",
        "small_counts": "20 demos, 10 test episodes, 20 epochs (evals before, after 5, 10, 15, 20), seeds 100/200",
    }


SUITES.append(register_suite("trifinger", "trifinger", TRIFINGER_TASKS, TRIFINGER_METRICS, trifinger_notes,
                             lambda t: CortexBenchDemos("trifinger", t, "trifinger" if t == "reach-cube" else "none"),
                             ("success_rate", "mean over reach-cube and move-cube of their scaled success (%)", "%"),
                             reference=TRIFINGER_REFERENCE, impl="tasks.robot.trifinger_bc:TriFingerBC",
                             score="scaled success %"))

register_aggregate(MeanOfSuites(
    TaskMeta("cortexbench-average", "robot",
             "CortexBench average (Tables 4, 8, 9): mean of the four suite scores, each suite weighted equally",
             (Metric("score", True, "mean of the MetaWorld, Adroit, DMControl and TriFinger suite means", ""),),
             "score", protocol="cortexbench-bc", paper_task="cortexbench-average", reference=REFERENCE,
             needs=Need.NONE, opt_in=True),
    members=tuple(m for _, members in SUITES for m in members), metric="success", suites=tuple(SUITES)))
