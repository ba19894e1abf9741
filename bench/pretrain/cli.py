"""`bench pretrain NAME`: self-supervised pretraining of an offline encoder on the synthetic scenes.

    bench pretrain vit-tiny-synth                    # DINO on the 'small' scenes' training images
    bench pretrain vit-tiny-synth --set steps=50     # a recipe override (another recipe hash)
    bench pretrain vit-tiny-synth --info             # what the cached weights hold

Resumable (rerun the same command); a finished pretraining of the same recipe and data is reused.
"""
from __future__ import annotations

import json


def _recipe(args):
    from bench.pretrain.recipe import RECIPES
    from bench.registry import UnknownNameError, did_you_mean

    if args.name not in RECIPES:
        raise UnknownNameError("self-pretrained encoder", args.name, did_you_mean(args.name, list(RECIPES)),
                               list(RECIPES))
    over = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        over[key.strip()] = json.loads(value) if value.strip()[:1] in "[{" else value.strip()
    return RECIPES[args.name].with_overrides(**over) if over else RECIPES[args.name]


def cmd_pretrain(args) -> int:
    from pathlib import Path

    recipe = _recipe(args)
    if args.info:
        from bench.pretrain.recipe import weights_path
        from bench.pretrain.trainer import read_metadata

        path = weights_path(args.name)
        if not path.is_file():
            print(f"{args.name}: not pretrained (no {path}); run `bench pretrain {args.name}`")
            return 1
        meta = read_metadata(path)
        print(f"{path}\n  {meta.get('label')}")
        for key in ("objective", "arch", "recipe_hash", "data_hash", "n_images", "steps", "code_version"):
            print(f"  {key}: {meta.get(key)}")
        print(f"  current recipe: {'yes' if meta.get('recipe_hash') == recipe.hash() else 'NO (retrained on use)'}")
        return 0
    from bench.pretrain.trainer import pretrain

    out = Path(args.out) if args.out else None
    if out is None and recipe != _default(args.name):
        raise ValueError("a recipe override writes elsewhere: give --out DIR (the zoo entry loads the default "
                         "recipe's weights; load yours with --weights DIR/encoder.safetensors)")
    print(pretrain(recipe, out=out, progress=not args.no_progress, track=not args.no_track))
    return 0


def _default(name):
    from bench.pretrain.recipe import RECIPES

    return RECIPES[name]


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("pretrain", help="self-supervised pretraining of an offline encoder (vit-tiny-synth)",
                              description=__doc__)
    p.add_argument("name", help="vit-tiny-synth")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe override (bench.pretrain.recipe)")
    p.add_argument("--out", default=None, help="output folder (default: BENCH_HOME/checkpoints/NAME)")
    p.add_argument("--info", action="store_true", help="show the cached weights' recipe and data hash")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-track", action="store_true", help="no MLflow run")
    p.set_defaults(fn=cmd_pretrain)
