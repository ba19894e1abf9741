"""`bench study mini`: the paper's ablations at laptop scale (config bench/study/mini.yaml)."""
from __future__ import annotations


def cmd_study(args) -> int:
    from pathlib import Path

    from bench.study.runner import load_config, run_study

    cfg = load_config(Path(args.config) if args.config else None)
    if args.name != cfg["name"]:
        raise ValueError(f"unknown study {args.name!r}; known: {cfg['name']!r}")
    print(run_study(cfg, progress=not args.no_progress, out_doc=Path(args.out) if args.out else None))
    return 0


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("study", help="the paper's ablations at laptop scale (writes docs/mini-study.md)")
    p.add_argument("name", help="mini")
    p.add_argument("--config", default=None, help="a study YAML (default bench/study/mini.yaml)")
    p.add_argument("--out", default=None, help="report path (default docs/mini-study.md)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_study)
