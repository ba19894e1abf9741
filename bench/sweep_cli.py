"""The command line of runners/sweep (kept out of `runners` so that `bench results`/`table` stay light).

`bench sweep` (run a sweep), `bench sweep status`, `bench sweep sb-train` (multi-node SpatialBoost).

    bench sweep --encoder vit-tiny,vit-tiny+sb --tasks synth-cls-knn,synth-retrieval --seeds 0,1 --jobs 2
    bench sweep --executor slurm --partition gpu --gpus-per-node 1 --time 240 --array-parallelism 32 ...
    bench sweep status [--dir FOLDER | same flags as the run]
    bench sweep sb-train --nodes 2 --gpus-per-node 8 --partition gpu -- --encoder vit-l --stage all --fsdp
"""
from __future__ import annotations

import sys
from pathlib import Path


def _split(values) -> list[str]:
    return [v.strip() for item in values or [] for v in str(item).split(",") if v.strip()]


def _spec(args):
    from bench.config import parse_sets
    from bench.data.sources import default_synth_preset
    from runners.sweep.spec import SweepSpec

    weights = {}
    for w in args.weights or []:
        name, _, path = w.partition("=")
        weights[name.strip()] = path.strip()
    return SweepSpec(encoders=_split(args.encoder), tasks=_split(args.tasks) or ["all"],
                     seeds=[int(s) for s in _split(args.seeds)] or [0],
                     synth_preset=args.synth_preset or default_synth_preset(), batch_size=args.batch_size,
                     device=args.device, threads=args.threads, task_config=parse_sets(args.set or []),
                     weights=weights, name=args.name or "")


def _slurm_options(args):
    from runners.sweep.slurm import SlurmOptions

    return SlurmOptions.from_yaml(args.slurm_config, partition=args.partition, gpus_per_node=args.gpus_per_node,
                                  timeout_min=args.time, array_parallelism=args.array_parallelism,
                                  cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, max_requeue=args.max_requeue)


def cmd_sweep(args) -> int:
    from runners.sweep.driver import run_sweep

    if getattr(args, "sweep_cmd", None):
        return args.sub_fn(args)
    outcome = run_sweep(_spec(args), executor=args.executor, jobs_at_once=args.jobs,
                        slurm=_slurm_options(args) if args.executor in ("slurm", "debug") else None,
                        dry_run=args.dry_run, wait=not args.no_wait)
    return 1 if outcome.failed else 0


def cmd_status(args) -> int:
    from bench.errors import BenchError
    from runners.sweep.driver import status

    folder = Path(args.dir) if args.dir else (_spec(args).folder() if args.encoder else None)
    if folder is None:
        from bench.paths import bench_home

        sweeps = sorted((bench_home() / "sweeps").glob("*/sweep.json"), key=lambda p: p.stat().st_mtime)
        if not sweeps:
            raise BenchError(f"no sweep under {bench_home() / 'sweeps'}: start one with `bench sweep --encoder ...`")
        folder = sweeps[-1].parent
    if not (folder / "sweep.json").exists():
        raise BenchError(f"{folder} is not a sweep folder (no sweep.json)")
    status(folder)
    return 0


def cmd_sb_train(args) -> int:
    from bench.paths import bench_home
    from runners.sweep.slurm import submit_sb_training

    argv = [a for a in args.train_args if a != "--"]
    folder = bench_home() / "sweeps" / "sb-train"
    if args.dry_run:
        from runners.sweep.slurm import sb_train_submission_text

        print(f"python -m bench.spatialboost.train {' '.join(argv)}  (on every task, torchrun env from SLURM)")
        print(sb_train_submission_text(folder, args.nodes, _slurm_options(args)))
        return 0
    job = submit_sb_training(folder, argv, args.nodes, _slurm_options(args), cluster=args.executor)
    print(f"submitted SpatialBoost training job {job.job_id} ({args.nodes} node(s) x {args.gpus_per_node} GPU(s)); "
          f"logs: {folder / 'slurm'}")
    if args.executor == "debug":
        return int(job.result() or 0)
    return 0


def _slurm_flags(p) -> None:
    g = p.add_argument_group("slurm (flags win over --slurm-config YAML)")
    g.add_argument("--slurm-config", default=None, help="YAML: partition, gpus_per_node, timeout_min, ...")
    g.add_argument("--partition", default=None)
    g.add_argument("--gpus-per-node", type=int, default=None)
    g.add_argument("--cpus-per-task", type=int, default=None)
    g.add_argument("--mem-gb", type=int, default=None)
    g.add_argument("--time", type=int, default=None, help="minutes per job (timeout_min)")
    g.add_argument("--array-parallelism", type=int, default=None, help="array tasks running at once (%%CAP)")
    g.add_argument("--max-requeue", type=int, default=None, help="requeues on preemption / timeout")


def _run_flags(p) -> None:
    p.add_argument("--encoder", action="append", help="encoder names (comma-separated or repeated)")
    p.add_argument("--tasks", action="append", help="task names, groups or 'all'")
    p.add_argument("--seeds", action="append", help="seeds, e.g. 0,1,2")
    p.add_argument("--synth-preset", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads per job (0: cores / --jobs)")
    p.add_argument("--set", action="append", help="TASK.key=value protocol overrides (as bench run)")
    p.add_argument("--weights", action="append", help="NAME=FILE")
    p.add_argument("--name", default=None, help="sweep folder name (default: a hash of the sweep)")


def add_subcommands(subparsers) -> None:
    s = subparsers.add_parser("sweep", help="encoders x tasks x seeds as jobs: local pool (default) or SLURM arrays",
                              description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    _run_flags(s)
    s.add_argument("--executor", choices=["local", "slurm", "debug"], default="local",
                   help="local: our bounded pool (default); slurm: submitit job arrays; debug: in-process (tests)")
    s.add_argument("--jobs", type=int, default=2, help="local: jobs at once (parallelism cap)")
    s.add_argument("--dry-run", action="store_true", help="list the jobs (and the sbatch file) and stop")
    s.add_argument("--no-wait", action="store_true", help="slurm: return after submitting")
    _slurm_flags(s)
    s.set_defaults(fn=cmd_sweep)
    sub = s.add_subparsers(dest="sweep_cmd", required=False)
    st = sub.add_parser("status", help="state of each job of a sweep (default: the newest)")
    st.add_argument("--dir", default=None, help="the sweep folder")
    _run_flags(st)
    st.set_defaults(sub_fn=cmd_status)
    tr = sub.add_parser("sb-train", help="multi-node SpatialBoost training as one SLURM job (torchrun env, FSDP)")
    tr.add_argument("--nodes", type=int, default=1)
    tr.add_argument("--executor", choices=["slurm", "debug"], default="slurm")
    tr.add_argument("--dry-run", action="store_true", help="print the sbatch file and stop")
    _slurm_flags(tr)
    tr.add_argument("train_args", nargs="*", help="after --: the arguments of `bench sb train`")
    tr.set_defaults(sub_fn=cmd_sb_train)


if __name__ == "__main__":
    sys.exit(0)
