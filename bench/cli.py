"""`bench`: run the benchmark, list what is available, read results back, generate data, measure speed."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.errors import BenchError


# Modules exposing `add_subcommands(subparsers)`; each sets `fn` on its parsers. Keep their imports light.
PLUGIN_COMMANDS = ("bench.spatialboost.cli", "bench.pretrain.cli", "bench.study.cli", "leaderboard.cli", "tasks.robot.cli", "bench.vlm.cli", "bench.sweep_cli")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _weights(values: list[str] | None, encoders: list[str]) -> dict[str, str]:
    """`--weights FILE` (one encoder) or `--weights NAME=FILE` (several)."""
    out = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep:
            if len(encoders) != 1:
                raise BenchError("--weights FILE is ambiguous with several encoders: use --weights NAME=FILE")
            name, path = encoders[0], value
        out[name] = path
    return out


def cmd_run(args) -> int:
    from bench.config import load_run_file, parse_sets
    from bench.data.sources import default_synth_preset
    from runners.benchmark import RunConfig, run_benchmark

    file = load_run_file(args.config) if args.config else {}
    if args.encoder is not None and not _split(args.encoder):
        raise BenchError("--encoder is empty: give encoder names (see `bench list encoders`)")
    encoders = _split(args.encoder) or _split(file.get("encoders")) or ["vit-tiny"]
    task_config: dict = {}
    for name, values in (file.get("config") or {}).items():
        task_config.setdefault(name, {}).update(values or {})
    for name, values in parse_sets(args.set or []).items():
        task_config.setdefault(name, {}).update(values)
    tasks = _split([args.tasks]) if args.tasks is not None else (_split(file.get("tasks")) or ["all"])
    if args.tasks is not None and not tasks:
        raise BenchError("--tasks is empty: give 'all' or task names (see `bench list tasks`)")
    weights = {**(file.get("weights") or {}), **_weights(args.weights, encoders)}
    cfg = RunConfig(encoders=encoders, tasks=tasks,
                    seed=args.seed if args.seed is not None else int(file.get("seed", 0)),
                    device=args.device or file.get("device", "auto"),
                    batch_size=args.batch_size if args.batch_size is not None else int(file.get("batch_size", 64)),
                    weights=weights, progress=not args.no_progress,
                    synth_preset=args.synth_preset or file.get("synth_preset") or default_synth_preset(),
                    sb_preset=args.sb_preset or file.get("sb_preset") or "tiny",
                    task_config=task_config, train_missing=not args.no_train, force=args.force,
                    cache_dtype=args.cache_dtype)
    records = run_benchmark(cfg, dry_run=args.dry_run)
    if args.dry_run:
        print("\n(dry run: nothing was trained, generated or extracted)")
        return 0
    from bench.paths import tracking_uri
    from leaderboard.tables import run_summary

    print("\nResults (headline metric per task; mean over seeds):")
    print(run_summary(records))
    print(f"\nAll metrics: `bench results`; MLflow UI: `mlflow ui --backend-store-uri {tracking_uri()}`")
    if records.failures:
        total = len(records) + len(records.failures)
        print(f"\n{len(records.failures)} of {total} task runs failed (recorded as FAILED runs; the others ran):",
              file=sys.stderr)
        for encoder, task, cause in records.failures:
            print(f"  {encoder} / {task}: {cause.splitlines()[0]}", file=sys.stderr)
        return min(len(records.failures), 125)  # the exit status is the number of failed runs
    return 0


def cmd_list(args) -> int:
    if args.what == "encoders":
        from bench.encoders import ENCODERS, encoder_prerequisite, self_pretrainer
        from bench.encoders.naming import tag_table
        from bench.encoders.weights import MissingWeightsError, find_weights

        print(f"{'name':24} {'backend':13} {'family':9} {'weights':8} needs")
        for entry in ENCODERS.entries():
            card = entry.meta["card"]
            if card.random_init:
                ok, needs = True, "nothing (random-init, seeded)"
            elif self_pretrainer(entry.name) is not None:  # weights made here by `bench pretrain NAME`
                step = encoder_prerequisite(entry.name)
                ok, needs = step is None, "pretrained here" if step is None else f"`bench pretrain {entry.name}` (run plans it)"
            else:
                try:
                    ok, needs = True, str(find_weights(card))
                except MissingWeightsError:
                    ok, needs = False, f"HF cache of {card.hf_repo} or --weights FILE.safetensors"
            print(f"{entry.name:24} {card.backend:13} {card.family:9} {'ready' if ok else 'missing':8} {needs}")
        print("\nAliases (the same encoder: one cache entry, one results row, under the name on the right):")
        for alias, target in ENCODERS.aliases().items():
            note = ENCODERS.alias_meta(alias).get("note")
            print(f"  {alias:22} = {target}{f'  ({note})' if note else ''}")
        print("\nNAME+sb = the SpatialBoost version of NAME (needs a trained checkpoint: `bench sb train --encoder NAME`);"
              "\nNAME+sb-TAG = an ablation (`bench sb train --encoder NAME+sb-TAG`). Tags, one per setting, combine"
              " (NAME+sb-lora-reverse):")
        for line in tag_table():
            print(f"  {line}")
    else:
        from tasks import catalog

        print(f"{'name':24} {'group':15} {'data':8} where / description")
        for name, meta in catalog().items():
            ok, where = meta.data.status() if meta.data is not None else (True, "computed from stored results")
            needs = ", ".join(n for n in meta.needs.names() if n != "features")
            if meta.opt_in:
                needs = (needs + "; " if needs else "") + f"opt-in: by name or --tasks {meta.group}"
            print(f"{name:24} {meta.group:15} {'ready' if ok else 'missing':8} {meta.description}"
                  f"{f' (needs: {needs})' if needs else ''}\n{'':49}{where}")
    return 0


def cmd_results(args) -> int:
    from bench.results import RESULT_COLUMNS
    from bench.store import read_records, tidy

    from bench.encoders import check_encoder_name
    from tasks import TASKS

    for name in _split(args.task):
        TASKS.entry(name)  # a typo is an error with suggestions, not an empty table
    encoders = [check_encoder_name(e) for e in _split(args.encoder)]
    records = read_records(encoders=encoders or None, tasks=_split(args.task) or None, all_runs=args.all_runs)
    if records.skipped:
        print(records.skipped_message(), file=sys.stderr)
    df = tidy(records)[RESULT_COLUMNS]
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(df.to_json(orient="records", indent=2))
    else:
        print(df.drop(columns=["parent_run_id", "start_time"]).to_string(index=False) if not df.empty
              else "(no results yet: run `bench run --encoder vit-tiny --tasks all`)")
    return 0


def cmd_data(args) -> int:
    from bench.data.synth import generate

    manifest = generate(args.preset, args.out, seed=args.seed, progress=True)
    print(f"synthetic scenes ({args.preset}) ready at {args.out or manifest.get('root', '')}")
    for key, value in sorted(manifest.get("counts", {}).items()):
        print(f"  {key}: {value}")
    return 0


def cmd_perf(args) -> int:
    from bench.perf import main as perf_main

    return perf_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="evaluate encoders on tasks (logs to MLflow)")
    r.add_argument("--encoder", action="append", help="encoder name(s); repeat or comma-separate")
    r.add_argument("--tasks", default=None, help="'all' (every task whose data is present) or T1,T2 (default: all)")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument("--weights", action="append", help="FILE or NAME=FILE (.safetensors preferred)")
    r.add_argument("--synth-preset", choices=["tiny", "small", "full"], help="size of the synthetic scenes")
    r.add_argument("--sb-preset", choices=["tiny", "small", "full"],
                   help="SpatialBoost recipe preset for +sb checkpoints trained first (default tiny)")
    r.add_argument("--config", help="a run file (YAML): encoders, tasks, seed, ..., config: {TASK: {key: value}}")
    r.add_argument("--set", action="append", metavar="TASK.KEY=VALUE",
                   help="override a task's protocol config, e.g. nyud-depth-linear.train.iterations=200")
    r.add_argument("--dry-run", action="store_true", help="print the plan (what will be generated, trained, "
                                                          "extracted) and stop")
    r.add_argument("--no-train", action="store_true", help="never train a missing +sb checkpoint (error instead)")
    r.add_argument("--cache-dtype", choices=["fp16", "fp32"], default="fp16",
                   help="feature cache storage (fp32 for encoders whose features exceed fp16 range)")
    r.add_argument("--force", action="store_true",
                   help="recompute pairs whose (encoder, weights, task, version, config, seed) already has a result")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(fn=cmd_run)

    ls = sub.add_parser("list", help="list encoders or tasks and whether they can run here")
    ls.add_argument("what", choices=["encoders", "tasks"])
    ls.set_defaults(fn=cmd_list)

    res = sub.add_parser("results", help="tidy results read back from MLflow (one row per metric)")
    res.add_argument("--format", choices=["table", "csv", "json"], default="table")
    res.add_argument("--all-runs", action="store_true",
                     help="every finished run (default: the newest run per identity: encoder, weights, task, "
                          "task version, config, seed)")
    res.add_argument("--latest", action="store_false", dest="all_runs", help="the default (newest run per identity)")
    res.add_argument("--encoder", action="append")
    res.add_argument("--task", action="append")
    res.set_defaults(fn=cmd_results)

    data = sub.add_parser("data", help="datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    synth = dsub.add_parser("synth", help="generate the synthetic scenes (MuJoCo, offscreen)")
    synth.add_argument("--preset", choices=["tiny", "small", "full"], default="small")
    synth.add_argument("--out", type=Path, default=None)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(fn=cmd_data)

    perf = sub.add_parser("perf", help="performance benchmark (prints ratios against targets)")
    perf.add_argument("--quick", action="store_true", help="smaller sizes (for CI)")
    perf.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    perf.add_argument("--only", action="append", help="run only these cases (by name)")
    perf.set_defaults(fn=cmd_perf)

    for module in PLUGIN_COMMANDS:  # areas that add their own subcommands (trainer, tables, leaderboard)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not module.startswith(exc.name or "\0"):
                raise
            continue
        mod.add_subcommands(sub)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, SLURM and `docker stop` send), handled like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal

    from bench.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.fn(args)
    except (BenchError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(("terminated" if isinstance(exc, Terminated) else "interrupted")
              + ": runs in progress are marked KILLED, finished feature shards and results are kept; "
              "run the same command again to resume.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
