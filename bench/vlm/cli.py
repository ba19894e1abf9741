"""`bench vlm eval`: evaluate one VLM on VLM benchmark tasks, standalone (answers and scores on disk).

    bench vlm eval --vlm vit-tiny+sb --tasks spatialrgpt-bench-synth,blink-relative-depth-synth
    bench vlm eval --vlm vit-tiny --tasks vlm --set spatialrgpt-bench-synth.region_prompt=masks
    bench vlm eval --vlm llava-hf/llava-1.5-7b-hf --tasks blink-relative-depth      # HF cache only
    bench vlm eval --vlm /models/llava-1.5-7b-hf --tasks spatialrgpt-bench --device cuda

``--vlm``: a zoo encoder name (base or +sb: the VLM its SpatialBoost training built), a LLaVA-1.5
checkpoint in the transformers format (a folder, or a repo id already in the Hugging Face cache).
Writes ``<out>/<task>/answers.jsonl`` (every answer and its verdict) and ``scores.json``; an
interrupted evaluation resumes from ``answers.partial.jsonl``. `bench run --tasks vlm` is the
recorded path (MLflow + leaderboard); this command is for one model at a time.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


class FolderContext:
    """What `tasks.vlm.evaluate.run_on` needs of a run context, kept in a folder."""

    def __init__(self, folder: Path, progress: bool):
        self.folder, self.progress, self.params = folder, progress, {}
        self.state_root = folder
        self.log = logging.getLogger("bench.vlm")

    def state_dir(self, name: str = "") -> Path:
        path = self.folder / name if name else self.folder
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_params(self, **params: Any) -> None:
        self.params.update(params)

    def artifact_path(self, name: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def load_vlm(spec: str, device, weights: str | None = None, *, preset: str = "tiny", train_missing: bool = True,
             progress: bool = True):
    """A zoo encoder's trained VLM, or a transformers-format LLaVA-1.5 (folder or HF cache)."""
    from bench.vlm.generate import LlavaHF

    if Path(spec).expanduser().is_dir() or "/" in spec:  # zoo names have no "/"
        return LlavaHF(spec, device)
    from bench.encoders import check_encoder_name, load_encoder
    from bench.spatialboost.vlm_checkpoint import load_trained_vlm

    encoder = load_encoder(check_encoder_name(spec), weights)
    return load_trained_vlm(encoder, device, preset=preset, train_missing=train_missing, progress=progress)


def _task_names(requested: list[str]) -> list[str]:
    from bench.task import GROUPS
    from tasks import TASKS, task_meta

    names: list[str] = []
    for r in requested:
        if r in GROUPS:
            names += [n for n in TASKS.names() if task_meta(n).group == r]
        else:
            TASKS.entry(r)  # unknown names raise with suggestions
            names.append(r)
    bad = [n for n in names if task_meta(n).group != "vlm"]
    if bad:
        from bench.errors import BenchError

        raise BenchError(f"not VLM tasks: {', '.join(bad)} (see `bench list tasks`, group vlm)")
    return list(dict.fromkeys(names))


def cmd_eval(args) -> int:
    from bench.config import parse_sets, resolve
    from bench.data.sources import default_synth_preset
    from bench.features import resolve_device
    from bench.io import write_json
    from bench.paths import bench_home
    from tasks import get_task
    from tasks.vlm.evaluate import run_on

    names = _task_names([t.strip() for item in args.tasks for t in item.split(",") if t.strip()])
    sets = parse_sets(args.set or [])
    unused = sorted(set(sets) - set(names))
    if unused:
        from bench.errors import BenchError

        raise BenchError(f"--set for tasks not in this evaluation: {', '.join(unused)}")
    device = resolve_device(args.device)
    preset = args.synth_preset or default_synth_preset()
    slug = args.vlm.strip("/").replace("/", "_")
    out_root = Path(args.out) if args.out else bench_home() / "vlm-eval" / slug
    plans = []
    for name in names:  # configs and data checked before the model is loaded
        task = get_task(name)
        cfg = resolve(task.default_config(), sets.get(name, {}), where=f"config of {name}")
        root = task.meta.data.prepare(progress=not args.no_progress, preset=preset)
        plans.append((task, cfg, root))
    vlm = load_vlm(args.vlm, device, args.weights, preset=plans[0][1].vlm_preset, train_missing=not args.no_train,
                   progress=not args.no_progress)
    for task, cfg, root in plans:
        ctx = FolderContext(out_root / task.name, progress=not args.no_progress)
        items = task.items(Path(root), cfg)
        result = run_on(task.kind, vlm, items, cfg, ctx)
        write_json(ctx.folder / "scores.json", {"task": task.name, "vlm": args.vlm, "metrics": result.metrics,
                                                 "breakdown": result.breakdown, "params": ctx.params})
        head = task.meta.headline
        value = f"{result.metrics[head]:.2f}" if head in result.metrics else "n/a (no item of that kind)"
        print(f"{task.name}: {head} = {value}  ({len(items)} items, "
              f"{ctx.params.get('eval.seconds')} s) -> {ctx.folder}")
        for k, v in sorted(result.metrics.items()):
            if k != head:
                print(f"    {k:16} {v:8.2f}")
        for k, row in result.breakdown.items():
            if "accuracy" in row or "score" in row:
                val = row.get("accuracy", row.get("score"))
                print(f"    {k:40} {val:8.2f}  (n={int(row.get('n', row.get('n_images', 0)))})")
    return 0


def add_subcommands(subparsers) -> None:
    vlm = subparsers.add_parser("vlm", help="VLM benchmarks: evaluate a VLM (zoo encoder + projector + LLM, or LLaVA-1.5)")
    sub = vlm.add_subparsers(dest="vlm_cmd", required=True)
    e = sub.add_parser("eval", help="answer and score VLM benchmark tasks (greedy, batched, LLaVA-1.5 prompts)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    e.add_argument("--vlm", required=True, help="zoo encoder (vit-tiny, vit-tiny+sb) or a LLaVA-1.5 folder / HF repo id")
    e.add_argument("--tasks", action="append", required=True, help="VLM task names or the group 'vlm' (comma-separated)")
    e.add_argument("--set", action="append", metavar="TASK.key=value", help="task config override (repeatable)")
    e.add_argument("--weights", default=None, help="encoder weights / +sb checkpoint file")
    e.add_argument("--out", default=None, help="output folder (default BENCH_HOME/vlm-eval/<vlm>)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--synth-preset", default=None, help="synthetic preset of the twins (default BENCH_SYNTH_PRESET or small)")
    e.add_argument("--no-train", action="store_true", help="never train a missing stage-1/2 VLM (error instead)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=cmd_eval)


__all__ = ["FolderContext", "add_subcommands", "cmd_eval", "load_vlm"]
