"""SLURM through submitit: one job array per sweep (`map_array`), capped by `--array-parallelism`
(`#SBATCH --array=0-N%CAP`), per-job logs in `<sweep>/slurm/%A_%a_*`, requeue on preemption or
timeout (`SweepJob.checkpoint` -> `DelayedSubmission`, up to `max_requeue` times; preemption needs
`SlurmctldParameters=preempt_send_user_signal`), and partition / GPUs / time / CPUs / memory from
flags or a YAML file (`--slurm-config`). Multi-node SpatialBoost training is one job with
`nodes=N, tasks_per_node=G, gpus_per_node=G`: submitit's `TorchDistributedEnvironment().export()`
sets the torchrun variables `bench/spatialboost/distributed.py` reads, and `--fsdp` shards it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from bench.errors import BenchError


@dataclass
class SlurmOptions:
    partition: str = ""
    gpus_per_node: int = 1
    cpus_per_task: int = 10
    mem_gb: int = 0  # 0: submitit default (the partition's)
    timeout_min: int = 240
    array_parallelism: int = 16
    max_requeue: int = 5  # submitit slurm_max_num_timeout: requeues on preemption / timeout
    signal_delay_s: int = 120  # the checkpoint signal this long before the time limit
    account: str = ""
    qos: str = ""
    constraint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # more #SBATCH options (slurm_additional_parameters)

    @classmethod
    def from_yaml(cls, path: str | Path | None, **overrides: Any) -> "SlurmOptions":
        data: dict[str, Any] = {}
        if path:
            import yaml

            data = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(data, dict):
                raise BenchError(f"{path}: a SLURM config is a mapping (partition: ..., gpus_per_node: ...)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib

            hints = [f"{u} (did you mean {', '.join(difflib.get_close_matches(u, known, 2)) or '?'})" for u in unknown]
            raise BenchError(f"{path}: unknown SLURM option(s): {'; '.join(hints)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def parameters(self) -> dict[str, Any]:
        """submitit SlurmExecutor parameters (its native names: time, ntasks_per_node, mem, ...)."""
        p: dict[str, Any] = {"time": self.timeout_min, "gpus_per_node": self.gpus_per_node,
                             "cpus_per_task": self.cpus_per_task, "ntasks_per_node": 1, "nodes": 1,
                             "array_parallelism": self.array_parallelism, "signal_delay_s": self.signal_delay_s}
        if self.mem_gb:
            p["mem"] = f"{self.mem_gb}GB"
        if self.partition:
            p["partition"] = self.partition
        if self.constraint:
            p["constraint"] = self.constraint
        extra = {k: getattr(self, k) for k in ("account", "qos") if getattr(self, k)}
        extra.update(self.extra)
        if extra:
            p["additional_parameters"] = extra
        return p


def make_executor(folder: Path, opts: SlurmOptions, cluster: str = "slurm", name: str = "bench-sweep"):
    """submitit's SlurmExecutor (built directly: AutoExecutor refuses to build one where `srun` is
    missing, and the submission is checked without a cluster), or its in-process DebugExecutor."""
    import submitit

    if cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=str(folder / "slurm" / "%j"), max_num_timeout=opts.max_requeue)
        executor.update_parameters(job_name=name, **opts.parameters())
        return executor
    if cluster == "debug":
        executor = submitit.AutoExecutor(folder=str(folder / "slurm" / "%j"), cluster="debug")
        executor.update_parameters(name=name, timeout_min=opts.timeout_min)
        return executor
    raise BenchError(f"unknown submitit cluster {cluster!r}: slurm | debug")


def preview_executor(folder: Path, opts: SlurmOptions, name: str = "bench-sweep"):
    """The SlurmExecutor a submission would use, built where `srun` may be missing (dry runs, tests):
    submitit refuses to construct one off-cluster, so its cluster probe is answered for this call
    only. Nothing is ever submitted with it."""
    from submitit.slurm import slurm

    probe = slurm.SlurmExecutor.__dict__["affinity"]
    slurm.SlurmExecutor.affinity = classmethod(lambda cls: 2)
    try:
        return make_executor(folder, opts, "slurm", name)
    finally:
        slurm.SlurmExecutor.affinity = probe


def submission_text(folder: Path, n_jobs: int, opts: SlurmOptions, name: str = "bench-sweep") -> str:
    """The sbatch file submitit writes for an array of `n_jobs` (shown by --dry-run, checked in tests)."""
    from submitit.slurm import slurm

    inner = preview_executor(folder, opts, name)
    params = {**inner.parameters, "map_count": n_jobs}  # what `map_array` sets on its array copy
    return slurm._make_sbatch_string(command=inner._submitit_command_str, folder=inner.folder, **params)


def submit_array(folder: Path, job_dirs: Sequence[Path], opts: SlurmOptions, cluster: str = "slurm"):
    """One array job of every job folder (returns the submitit jobs; the driver waits on them)."""
    from runners.sweep.job import SweepJob

    executor = make_executor(folder, opts, cluster)
    return executor.map_array(SweepJob(), [str(d) for d in job_dirs])


class SBTrainJob:
    """Multi-node SpatialBoost training: every task of the job exports the torchrun environment from
    SLURM and runs the trainer's own entry point (`python -m bench.spatialboost.train ARGS`)."""

    def __call__(self, argv: list[str]) -> int:
        import submitit

        env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        print(f"rank {env.rank}/{env.world_size} (local {env.local_rank}) master {env.master_addr}:{env.master_port}",
              flush=True)
        from bench.spatialboost.train import main

        return main(list(argv))

    def checkpoint(self, argv: list[str]):  # the trainer resumes from its stage checkpoints
        import submitit

        return submitit.helpers.DelayedSubmission(SBTrainJob(), argv)


def sb_train_parameters(nodes: int, opts: SlurmOptions) -> dict[str, Any]:
    """One job of `nodes` nodes with one task per GPU (torchrun's layout: a rank per GPU)."""
    return {"nodes": nodes, "ntasks_per_node": opts.gpus_per_node, "gpus_per_node": opts.gpus_per_node}


def sb_train_submission_text(folder: Path, nodes: int, opts: SlurmOptions) -> str:
    """The sbatch file of a multi-node training job (shown by `bench sweep sb-train --dry-run`)."""
    from submitit.slurm import slurm

    inner = preview_executor(folder, opts, "bench-sb-train")
    inner.update_parameters(**sb_train_parameters(nodes, opts))
    params = {k: v for k, v in inner.parameters.items() if k != "array_parallelism"}  # one job, no array
    return slurm._make_sbatch_string(command=inner._submitit_command_str, folder=inner.folder, **params)


def submit_sb_training(folder: Path, argv: list[str], nodes: int, opts: SlurmOptions, cluster: str = "slurm"):
    executor = make_executor(folder, opts, cluster, name="bench-sb-train")
    if cluster == "slurm":
        executor.update_parameters(**sb_train_parameters(nodes, opts))
    return executor.submit(SBTrainJob(), list(argv))


__all__ = ["SBTrainJob", "SlurmOptions", "make_executor", "preview_executor", "sb_train_parameters",
           "sb_train_submission_text", "submission_text", "submit_array", "submit_sb_training"]
