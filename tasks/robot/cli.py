"""`bench robot ...`: the explicit, long-running steps of the CortexBench suites.

    bench robot experts                               # status of the four DMC SAC experts
    bench robot experts --env walker-stand            # train it to its default budget (200k steps)
    bench robot experts --env walker-walk --steps 50000 --checkpoint-every 5000

Training is cached and resumable (tasks/robot/sac.py); asking again for as many steps is a no-op,
for more steps continues the same run. Import-light: SB3 / torch load inside the command.
"""
from __future__ import annotations

import difflib

from bench.errors import BenchError
from tasks.robot.sources import SAC_ENVS, sac_expert_dir


def _envs(names: list[str] | None) -> list[str]:
    out = []
    for raw in names or []:
        for name in (n.strip() for n in raw.split(",") if n.strip()):
            key = name.lower().replace("_", "-").removeprefix("cortexbench-dmcontrol-").removeprefix("dmc-")
            if key not in SAC_ENVS:
                near = difflib.get_close_matches(key, SAC_ENVS, n=3, cutoff=0.4)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                scripted = " (reacher-easy has a scripted expert: nothing to train)" if key == "reacher-easy" else ""
                raise BenchError(f"unknown SAC expert env {name!r}{scripted}: one of {', '.join(SAC_ENVS)}{hint}")
            out.append(key)
    return out


def cmd_experts(args) -> int:
    import json

    envs = _envs(args.env)
    if not envs:  # status only
        print("DMControl SAC experts (bench robot experts --env NAME [--steps N] trains one):")
        for env in SAC_ENVS:
            info = sac_expert_dir(env) / "expert.json"
            ckpt = sac_expert_dir(env) / "checkpoint.pt"
            if info.exists():
                m = json.loads(info.read_text())
                print(f"  {env:13} {m['steps']:>8} steps, seed {m['seed']}, {m['wall_s'] / 60:.1f} min, "
                      f"return/10 {m.get('eval_score_mean')}  {sac_expert_dir(env)}")
            else:
                print(f"  {env:13} not trained{' (checkpoint to resume from)' if ckpt.exists() else ''}  "
                      f"{sac_expert_dir(env)}")
        return 0
    from tasks.robot.sac import DEFAULT_STEPS, EVAL_SEEDS, train_expert

    eval_seeds = [s + ep for s in (100, 200, 300) for ep in range(args.eval_episodes)] \
        if args.eval_episodes is not None else EVAL_SEEDS
    for env in envs:
        train_expert(env, args.steps or DEFAULT_STEPS[env], seed=args.seed, checkpoint_every=args.checkpoint_every,
                     progress=not args.no_progress, eval_seeds=eval_seeds)
    return 0


def add_subcommands(subparsers) -> None:
    robot = subparsers.add_parser("robot", help="CortexBench robot suites: train the DMControl SAC experts")
    sub = robot.add_subparsers(dest="robot_cmd", required=True)
    e = sub.add_parser("experts", help="train (cached, resumable) state SAC experts for DMControl demos",
                       description="Without --env: the status of each expert. Writes "
                                   "$BENCH_HOME/cache/robot-experts/dmc/ENV/{checkpoint.pt,expert.safetensors,expert.json}.")
    e.add_argument("--env", action="append", help=f"one of {', '.join(SAC_ENVS)} (repeat or comma-separate)")
    e.add_argument("--steps", type=int, default=None,
                   help="total env steps (default per env: walker-stand 200k, walker-walk 500k, cheetah-run 1M, "
                        "finger-spin 500k)")
    e.add_argument("--seed", type=int, default=0, help="training seed (recorded; extending needs the same seed)")
    e.add_argument("--checkpoint-every", type=int, default=10_000, help="steps between resumable checkpoints")
    e.add_argument("--eval-episodes", type=int, default=None,
                   help="expert eval episodes per protocol seed 100/200/300 (default 10, the paper's DMC count)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=cmd_experts)


__all__ = ["add_subcommands", "cmd_experts"]
