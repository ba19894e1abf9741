"""Behaviour of the VLM benchmark tasks: get the encoder's VLM, read the benchmark, answer, score.

The runner hands a task its encoder (`ctx.encoder`); a VLM task turns it into the VLM trained with
it (`bench.spatialboost.vlm_checkpoint.load_trained_vlm`: base -> stage-2 projector + LLM, +sb ->
stage-3 projector + stage-2 LLM; stages 1-2 trained first when missing and `train_missing`). Every
answer with its verdict is an artifact (``answers.jsonl``); answers in progress live in the task's
state folder, so a killed run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.config import RUNTIME, ConfigError
from bench.task import Task, TaskResult


@dataclass(frozen=True)
class VLMEvalConfig:
    max_new_tokens: int = 128  # LLaVA-1.5's model_vqa_loader default
    limit: int = 0  # first N records only (0: all); a smoke-test knob, recorded
    split: str = ""  # "" = the benchmark's default (val / val2014 / testdev_balanced)
    region_prompt: str = "boxes"  # SpatialRGPT-Bench: boxes | masks | none (how regions are shown)
    headline: str = "quantitative"  # SpatialRGPT-Bench: quantitative | qualitative | mean (what "accuracy" is)
    image_folder: str = ""  # SpatialRGPT-Bench: images root relative to the data root ("" = the root)
    circular: bool = True  # MMBench: CircularEval over option rotations
    text_only_baseline: bool = False  # also answer without the image (metric text_only)
    vlm_preset: str = "tiny"  # recipe preset when the encoder's stage-1/2 VLM has to be trained
    train_missing: bool = field(default=True, metadata=RUNTIME)
    batch_size: int = field(default=16, metadata=RUNTIME)

    def __post_init__(self) -> None:
        from bench.vlm.benchmarks import HEADLINES
        from bench.vlm.regions import REGION_PROMPTS

        if self.region_prompt not in REGION_PROMPTS:
            raise ConfigError(f"region_prompt must be one of {REGION_PROMPTS}, got {self.region_prompt!r}")
        if self.headline not in HEADLINES:
            raise ConfigError(f"headline must be one of {HEADLINES}, got {self.headline!r}")
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.limit < 0:
            raise ConfigError("max_new_tokens and batch_size must be >= 1, limit >= 0")


DEFAULT_SPLIT = {"spatialrgpt": "val", "blink": "val", "vqav2": "val2014", "gqa": "testdev_balanced",
                 "mmbench": "dev", "mme": "all"}


class VLMBenchmark(Task):
    Config = VLMEvalConfig

    @property
    def kind(self) -> str:
        return self.options["kind"]

    def default_config(self) -> VLMEvalConfig:
        known = {k: v for k, v in self.options.items() if k in VLMEvalConfig.__dataclass_fields__}
        return replace(VLMEvalConfig(), **known)

    def items(self, root: Path, cfg: VLMEvalConfig):
        from bench.vlm import readers as r

        split = cfg.split or DEFAULT_SPLIT[self.kind]
        if self.kind == "spatialrgpt":
            return r.read_spatialrgpt(root / "SpatialRGPT-Bench_v1.json", root / cfg.image_folder, cfg.limit)
        if self.kind == "blink":
            return r.read_blink(root, "Relative_Depth", split, cfg.limit)
        if self.kind == "vqav2":
            return r.read_vqav2(root, split, cfg.limit)
        if self.kind == "gqa":
            return r.read_gqa(root, split, cfg.limit)
        if self.kind == "mmbench":
            return r.read_mmbench(root / "mmbench_dev_20230712.tsv", cfg.circular, cfg.limit)
        return r.read_mme(root / "MME_Benchmark_release_version", cfg.limit)

    def run(self, ctx, cfg: VLMEvalConfig) -> TaskResult:
        from bench.spatialboost.vlm_checkpoint import load_trained_vlm

        if ctx.root is None:
            raise ConfigError(f"{self.name}: no data root")
        items = self.items(Path(ctx.root), cfg)
        key = (id(ctx.encoder), ctx.encoder.weights_id, str(ctx.device), cfg.vlm_preset)
        if _LAST.get("key") != key:  # the encoder's other VLM tasks of this run reuse the loaded VLM
            _LAST.clear()
            _LAST.update(key=key, vlm=load_trained_vlm(ctx.encoder, ctx.device, preset=cfg.vlm_preset,
                                                       train_missing=cfg.train_missing, progress=ctx.progress))
        return run_on(self.kind, _LAST["vlm"], items, cfg, ctx)


_LAST: dict[str, Any] = {}  # one VLM at a time (a 7B LLM is ~28 GB in fp32)


def run_on(kind: str, vlm, items, cfg: VLMEvalConfig, ctx: Any) -> TaskResult:
    """Evaluate `vlm` on `items`, log what the run needs to be read later, return the result."""
    import time

    from bench.vlm.evaluate import evaluate, write_rows

    t0 = time.perf_counter()
    state = ctx.state_dir("answers") if getattr(ctx, "state_root", None) is not None else None
    out = evaluate(kind, vlm, items, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                   region_prompt=cfg.region_prompt, headline=cfg.headline,
                   text_only_baseline=cfg.text_only_baseline, state=state, progress=ctx.progress)
    seconds = time.perf_counter() - t0
    ctx.log_params(**{f"vlm.{k}": v for k, v in vlm.info.items()}, **{
        "vlm.prompt_template": vlm.prompt_template, "eval.items": len(items),
        "eval.split": cfg.split or DEFAULT_SPLIT[kind], "eval.seconds": round(seconds, 1),
        "eval.region_prompt_drawn": cfg.region_prompt if kind == "spatialrgpt" else "n/a"})
    path = ctx.artifact_path("answers.jsonl")
    if path is not None:
        write_rows(path, out.rows)
    if state is not None:
        write_rows(state / "answers.jsonl", out.rows)
    if kind == "spatialrgpt" and ctx.artifact_path("regions_example.jpg") is not None and items:
        from bench.vlm.evaluate import prepared_image

        prepared_image(kind, items[0], cfg.region_prompt).save(ctx.artifact_path("regions_example.jpg"))
    import math

    # a sub-score with no item (e.g. no qualitative question under --set limit) is left out, never NaN
    metrics = {k: v for k, v in out.metrics.items() if math.isfinite(v)}
    return TaskResult(metrics, out.breakdown, headline_items(kind, cfg, items, out.rows, metrics))


def headline_items(kind: str, cfg: VLMEvalConfig, items, rows: list[dict], metrics: dict) -> dict:
    """Per-item scores of the metrics (reports bootstrap intervals over them), in the benchmark's own
    unit of resampling: correctness x 100 per question for accuracies (per question over all its
    rotations for MMBench, VQA accuracy for VQAv2); for SpatialRGPT's `mean` headline, (correct,
    qualitative or quantitative) per question, so each resample recomputes both micro-averages;
    for MME, one row per image (`mme_items`: acc+ pairs an image's two questions)."""
    import numpy as np

    from bench.task import ItemScores
    from bench.vlm.spatial_scoring import QUALITATIVE, QUANTITATIVE

    if kind == "mme":
        return mme_items(items, rows, metrics)
    if "accuracy" not in metrics:
        return {}
    out = {}
    if kind == "spatialrgpt":
        def hits(cats) -> np.ndarray:
            return np.asarray([float(r["correct"]) for r, it in zip(rows, items) if it.category in cats])

        out = {name: ItemScores(hits(cats), "mean", 100.0) for name, cats in
               (("qualitative", QUALITATIVE), ("quantitative", QUANTITATIVE)) if name in metrics}
        if cfg.headline == "mean":  # (qualitative + quantitative) / 2 = the mean of the two groups' means
            both = [(float(r["correct"]), float(it.category in QUANTITATIVE)) for r, it in zip(rows, items)
                    if it.category in QUALITATIVE or it.category in QUANTITATIVE]
            return {**out, "accuracy": ItemScores(np.asarray(both, dtype=np.float64), "mean_per_class", 100.0)}
        return {**out, "accuracy": out[cfg.headline]}
    if kind == "mmbench":
        groups: dict[int, bool] = {}
        for r, it in zip(rows, items):
            q = it.extra["index"] % 1_000_000
            groups[q] = groups.get(q, True) and bool(r["correct"])
        values = [float(v) for _, v in sorted(groups.items())]
    elif kind == "vqav2":
        values = [float(r["score"]) for r in rows]
    else:
        values = [float(r["correct"]) for r in rows]
    return {"accuracy": ItemScores(np.asarray(values, dtype=np.float64), "mean", 100.0)}


def mme_items(items, rows: list[dict], metrics: dict) -> dict:
    """MME's sums as per-image rows: (acc + acc+ of the image, subtask). An image's acc is the mean of
    its two answers' correctness and its acc+ whether both are right, so a subtask's acc + acc+ is
    the mean of its rows and a sum over K subtasks is 100 K x the mean over subtasks of their row
    means (`mean_per_class`, scale 100 K). Resampling images keeps each image's pair together; a
    resample that misses a subtask counts the mean of the others for it (MME's smallest perception
    subtask has 20 of 1,187 images: about e^-20 of resamples)."""
    import numpy as np

    from bench.task import ItemScores
    from bench.vlm.vqa_metrics import COGNITION, PERCEPTION

    per_image: dict[tuple[str, str], list[bool]] = {}
    for r, it in zip(rows, items):
        per_image.setdefault((it.category, it.extra["image_id"]), []).append(bool(r["correct"]))
    known = set(PERCEPTION) | set(COGNITION)
    present = sorted({sub for sub, _ in per_image})
    sets = {"perception": [s for s in present if s in PERCEPTION], "cognition": [s for s in present if s in COGNITION],
            "other": [s for s in present if s not in known]}
    sets["score"] = sets["perception"] or sets["other"]  # as `mme_scores`: perception, else the unofficial ones
    out = {}
    for name, subs in sets.items():
        if not subs or name not in metrics:
            continue
        label = {s: i for i, s in enumerate(subs)}
        values = [(sum(v) / len(v) + float(all(v)), label[sub]) for (sub, _), v in sorted(per_image.items())
                  if sub in label]
        out[name] = ItemScores(np.asarray(values, dtype=np.float64), "mean_per_class", 100.0 * len(subs))
    return out


__all__ = ["DEFAULT_SPLIT", "VLMBenchmark", "VLMEvalConfig", "headline_items", "mme_items", "run_on"]
