"""CortexBench behaviour cloning (paper Table 4; eai-vc `mujoco_vc`): MetaWorld's five tasks, Adroit
pen / relocate, DMControl's five (reacher-easy scripted; the other four need a SAC expert made by
`bench robot experts`, their data source says so), and the MetaWorld, Adroit and DMControl suite
means. Each task's `data` (sources.py) says where its demos come from (official pickle or expert). Opt-in: hours of CPU rendering at protocol size, so `--tasks all`
leaves them out; run them by name or with `--tasks robot`. Metadata only (no torch / numpy / mujoco); behaviour in `bc.py`, knobs in
`config.py`, the simulator interface in `env.py`. See docs/robot.md.

Default protocol "small" (CI / laptop): 5 demos, 5 eval episodes, 20 epochs (evals after epochs
5, 10, 15, 19), seeds 100, 200. `--set TASK.protocol=paper`: 25 demos, 25 episodes, 100 epochs
(20 evals), seeds 100, 200, 300 (TaskMeta.notes records these)."""
from __future__ import annotations

from bench.metrics import Metric
from bench.task import AggregateTask, Need, TaskMeta
from tasks import register_aggregate, register_task
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


for _task in METAWORLD_TASKS:
    register_task(TaskMeta(
        name=f"cortexbench-metaworld-{_task}", group="robot",
        description=f"CortexBench MetaWorld {_task}: behaviour cloning on frozen CLS embeddings (success %)",
        metrics=BC_METRICS, headline="success", protocol="cortexbench-bc", paper_task=None,  # Table 4 has suite means only
        reference=REFERENCE, needs=Need.SIMULATOR | Need.ONLINE_ENCODER | Need.OWN_PROCESS, seeds=(100, 200, 300),
        notes=metaworld_notes(_task), opt_in=True, data=CortexBenchDemos("metaworld", _task, "scripted")),
        "tasks.robot.bc:CortexBenchBC", suite="metaworld", env=_task)

register_aggregate(AggregateTask(
    TaskMeta("cortexbench-metaworld", "robot", "CortexBench MetaWorld: mean success of the five tasks (%)",
             (Metric("success_rate", True, "mean over the five MetaWorld tasks of their success (%)", "%"),),
             "success_rate", protocol="cortexbench-bc", paper_task="cortexbench-metaworld", reference=REFERENCE,
             needs=Need.NONE, opt_in=True),
    members=tuple(f"cortexbench-metaworld-{t}" for t in METAWORLD_TASKS), metric="success"))

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


for _task in ADROIT_TASKS:
    register_task(TaskMeta(
        name=f"cortexbench-adroit-{_task}", group="robot",
        description=f"CortexBench Adroit {_task}: behaviour cloning on frozen CLS embeddings (success %)",
        metrics=BC_METRICS, headline="success", protocol="cortexbench-bc", reference=REFERENCE,
        needs=Need.SIMULATOR | Need.ONLINE_ENCODER | Need.OWN_PROCESS, seeds=(100, 200, 300),
        notes=adroit_notes(_task), opt_in=True, data=CortexBenchDemos("adroit", _task, "dapg")),
        "tasks.robot.bc:CortexBenchBC", suite="adroit", env=_task)

register_aggregate(AggregateTask(
    TaskMeta("cortexbench-adroit", "robot", "CortexBench Adroit: mean success of pen and relocate (%)",
             (Metric("success_rate", True, "mean over pen and relocate of their success (%)", "%"),),
             "success_rate", protocol="cortexbench-bc", paper_task="cortexbench-adroit", reference=REFERENCE,
             needs=Need.NONE, opt_in=True),
    members=tuple(f"cortexbench-adroit-{t}" for t in ADROIT_TASKS), metric="success"))

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


for _task in DMC_TASKS:
    register_task(TaskMeta(
        name=f"cortexbench-dmcontrol-{_task}", group="robot",
        description=f"CortexBench DMControl {_task}: behaviour cloning on frozen CLS embeddings (return / 10)",
        metrics=DMC_METRICS, headline="success", protocol="cortexbench-bc", reference=REFERENCE,
        needs=Need.SIMULATOR | Need.ONLINE_ENCODER | Need.OWN_PROCESS, seeds=(100, 200, 300),
        notes=dmc_notes(_task), opt_in=True,
        data=CortexBenchDemos("dmc", _task, "sac" if _task in SAC_ENVS else "scripted")),
        "tasks.robot.bc:CortexBenchBC", suite="dmc", env=_task)

register_aggregate(AggregateTask(
    TaskMeta("cortexbench-dmcontrol", "robot", "CortexBench DMControl: mean normalised return (return / 10) of the five tasks",
             (Metric("normalized_score", True, "mean over the five DMControl tasks of their return / 10", ""),),
             "normalized_score", protocol="cortexbench-bc", paper_task="cortexbench-dmcontrol", reference=REFERENCE,
             needs=Need.NONE, opt_in=True),
    members=tuple(f"cortexbench-dmcontrol-{t}" for t in DMC_TASKS), metric="success"))
