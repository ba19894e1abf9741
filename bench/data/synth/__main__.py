"""`python -m bench.data.synth --preset tiny --out DIR`: generate in a process of its own (see `ensure`)."""
from __future__ import annotations

import argparse
import sys

from bench.errors import BenchError

from .pipeline import generate
from .presets import PRESETS

parser = argparse.ArgumentParser(prog="python -m bench.data.synth")
parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
parser.add_argument("--out", default=None)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--no-progress", action="store_true")
args = parser.parse_args()
try:
    generate(args.preset, args.out, seed=args.seed, progress=not args.no_progress)
except BenchError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
