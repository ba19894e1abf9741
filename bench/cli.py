"""`bench`: run the benchmark, list what is available, read results back, generate data, measure speed."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path


# Modules exposing `add_subcommands(subparsers)`; each sets `fn` on its parsers. Keep their imports light.
PLUGIN_COMMANDS = ("bench.spatialboost.cli", "leaderboard.cli")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _weights(values: list[str] | None, encoders: list[str]) -> dict[str, str]:
    """`--weights FILE` (one encoder) or `--weights NAME=FILE` (several)."""
    out = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep:
            if len(encoders) != 1:
                raise SystemExit("--weights FILE is ambiguous with several encoders: use --weights NAME=FILE")
            name, path = encoders[0], value
        out[name] = path
    return out


def cmd_run(args) -> int:
    from bench.task import SYNTH_PRESET_ENV
    from leaderboard.table import format_table, headline_table, with_deltas
    from runners.benchmark import RunConfig, run_benchmark

    if args.synth_preset:
        os.environ[SYNTH_PRESET_ENV] = args.synth_preset
    encoders = _split(args.encoder) or ["vit-tiny"]
    cfg = RunConfig(encoders=encoders, tasks=_split([args.tasks]), seed=args.seed, device=args.device,
                    batch_size=args.batch_size, weights=_weights(args.weights, encoders),
                    progress=not args.no_progress)
    results = run_benchmark(cfg)
    import pandas as pd

    tidy = pd.DataFrame([{"encoder": r["encoder"], "task": r["task"], "metric": m, "value": v["value"]}
                         for r in results for m, v in r["metrics"].items()])
    headlines = {r["task"]: r["headline"] for r in results}
    directions = {f"{r['task']}:{r['headline']}": r["metrics"][r["headline"]]["higher_is_better"] for r in results}
    labels = {r["encoder"]: r["encoder_label"] for r in results}  # random-init encoders say so
    table = with_deltas(headline_table(tidy, headlines)).rename(index=labels)
    print("\nResults (headline metric per task; mean over seeds):")
    print(format_table(table, directions))
    print("\nAll metrics: `bench results`; MLflow UI: `mlflow ui --backend-store-uri "
          f"{__import__('bench.paths', fromlist=['x']).tracking_uri()}`")
    return 0


def cmd_list(args) -> int:
    if args.what == "encoders":
        from bench.encoders import ENCODERS
        from bench.encoders.weights import MissingWeightsError, resolve_weights

        print(f"{'name':24} {'backend':13} {'family':9} {'weights':8} needs")
        for entry in ENCODERS.entries():
            card = entry.meta["card"]
            if card.random_init:
                ok, needs = True, "nothing (random-init, seeded)"
            else:
                try:
                    ok, needs = True, str(resolve_weights(card, None).path)
                except MissingWeightsError:
                    ok, needs = False, f"HF cache of {card.hf_repo} or --weights FILE.safetensors"
            print(f"{entry.name:24} {card.backend:13} {card.family:9} {'ready' if ok else 'missing':8} {needs}")
        print("\nNAME+sb = the SpatialBoost version of NAME (needs a trained checkpoint).")
    else:
        from tasks import TASKS

        print(f"{'name':24} {'group':15} {'data':8} where / description")
        for name in TASKS.names():
            task = TASKS.get(name)
            ok, where = task.data.status()
            print(f"{name:24} {task.group:15} {'ready' if ok else 'missing':8} {task.description}\n"
                  f"{'':49}{where}")
    return 0


def cmd_results(args) -> int:
    from bench.tracking import read_results

    df = read_results(only_latest=args.latest)
    if args.encoder:
        df = df[df["encoder"].isin(_split(args.encoder))]
    if args.task:
        df = df[df["task"].isin(_split(args.task))]
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
    r.add_argument("--tasks", default="all", help="'all' (every task whose data is present) or T1,T2")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--weights", action="append", help="FILE or NAME=FILE (.safetensors preferred)")
    r.add_argument("--synth-preset", choices=["tiny", "small", "full"], help="size of the synthetic scenes")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(fn=cmd_run)

    ls = sub.add_parser("list", help="list encoders or tasks and whether they can run here")
    ls.add_argument("what", choices=["encoders", "tasks"])
    ls.set_defaults(fn=cmd_list)

    res = sub.add_parser("results", help="tidy results read back from MLflow")
    res.add_argument("--format", choices=["table", "csv", "json"], default="table")
    res.add_argument("--latest", action="store_true", help="keep only the newest run per encoder/task/seed")
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


def main(argv: list[str] | None = None) -> int:
    from bench.errors import BenchError
    from bench.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (BenchError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished feature shards are kept; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
