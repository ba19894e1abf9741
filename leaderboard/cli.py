"""`bench table` and `bench leaderboard build|serve` (added to the `bench` CLI by `add_subcommands`)."""
from __future__ import annotations

import sys
from pathlib import Path


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from bench.io import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def load_records(all_runs: bool = False):
    """Records from the store; malformed runs are reported on stderr, never fatal."""
    from leaderboard import tables

    records = tables.load_records(all_runs=all_runs)
    if records.skipped:
        print(records.skipped_message(), file=sys.stderr)
    return records


def cmd_table(args) -> int:
    from bench.errors import BenchError
    from leaderboard import paper, tables

    if args.list:
        for key in paper.table_keys():
            print(f"{key:4} {paper.get_table(key).title}")
        return 0
    records = load_records(all_runs=args.all_runs)
    if args.paper is not None:
        try:
            grid = tables.paper_grid(args.paper, records)
        except KeyError as exc:
            raise BenchError(exc.args[0]) from None
    else:
        grid = tables.measured_grid(records, metrics="all" if args.all_metrics else args.metrics)
    _write(tables.render(grid, args.format), args.out)
    return 0


def cmd_leaderboard_build(args) -> int:
    from leaderboard.site import build_site

    index = build_site(args.out, records=load_records())
    print(f"leaderboard written to {index} (open it in a browser; `bench leaderboard serve` serves it)")
    return 0


def cmd_leaderboard_serve(args) -> int:
    from leaderboard.site import build_site, default_out, serve

    directory = Path(args.dir) if args.dir else default_out()
    if args.build or not (directory / "index.html").exists():
        build_site(directory, records=load_records())
    serve(directory, port=args.port, host=args.host)
    return 0


def add_subcommands(subparsers) -> None:
    t = subparsers.add_parser("table", help="results tables: measured, or a paper table with measured next to reported")
    t.add_argument("--paper", metavar="N", help="render paper table N (1-5, 8, 9, 20; w1-w3 = workshop tables)")
    t.add_argument("--format", choices=["markdown", "latex", "html", "text"], default="markdown")
    t.add_argument("--out", type=Path, help="write to FILE instead of stdout")
    t.add_argument("--metrics", choices=["headline", "scores", "all"], default="headline",
                   help="headline: each task's headline (default); scores: every score metric; all: also the "
                        "reference (floors) and diagnostic metrics, marked")
    t.add_argument("--all-metrics", action="store_true", help="= --metrics all")
    t.add_argument("--all-runs", action="store_true",
                   help="aggregate every finished run (default: the newest run per identity, i.e. per "
                        "encoder/weights/task/version/config/seed)")
    t.add_argument("--list", action="store_true", help="list the paper tables")
    t.set_defaults(fn=cmd_table)

    lb = subparsers.add_parser("leaderboard", help="static leaderboard page (build, serve)")
    lsub = lb.add_subparsers(dest="leaderboard_cmd", required=True)
    b = lsub.add_parser("build", help="write index.html + data.json (default: BENCH_HOME/leaderboard)")
    b.add_argument("--out", type=Path, default=None)
    b.set_defaults(fn=cmd_leaderboard_build)
    s = lsub.add_parser("serve", help="serve the built page on localhost (http.server)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--dir", default=None, help="site folder (default: BENCH_HOME/leaderboard)")
    s.add_argument("--build", action="store_true", help="rebuild before serving (always done when missing)")
    s.set_defaults(fn=cmd_leaderboard_serve)
