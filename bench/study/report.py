"""The study's numbers and docs/mini-study.md: mean +- std over seeds per arm and task, and for every
comparison a paired bootstrap interval of the delta (bench.stats) on the items of all seeds pooled
(row = (seed, test item); both arms scored on the same items with the same probe seed)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.study.arms import arm_name, checkpoint

DOC = Path(__file__).resolve().parents[2] / "docs" / "mini-study.md"


def _weights_id(cfg: dict, arm: str, seed: int) -> str | None:
    if arm == "base":
        return None
    from bench.spatialboost.checkpoint import file_sha256

    return "sb-" + file_sha256(checkpoint(cfg, arm, seed))[:16]


def collect(cfg: dict) -> dict:
    """{(arm, seed, task): {"value", "higher", "items": ItemScores | None, "metric"}} from the store."""
    from bench.store import read_items, read_records

    arms = ["base", *cfg["arms"]]
    names = sorted({arm_name(cfg, a) for a in arms})
    records = read_records(kinds=("task",), encoders=names, tasks=cfg["tasks"])
    out = {}
    for arm in arms:
        for seed in cfg["seeds"]:
            wid = _weights_id(cfg, arm, seed)
            for task in cfg["tasks"]:
                hits = [r for r in records if r.encoder == arm_name(cfg, arm) and r.task == task and r.seed == seed
                        and (wid is None or r.weights_id == wid)]
                if not hits:
                    continue
                rec = max(hits, key=lambda r: r.start_time)
                m = rec.metrics[rec.headline]
                out[(arm, seed, task)] = {"value": m.value, "higher": m.higher_is_better, "metric": rec.headline,
                                          "items": read_items(rec).get(rec.headline)}
    return out


def _pooled(results: dict, arm: str, seeds, task: str):
    items = [results[(arm, s, task)]["items"] for s in seeds if (arm, s, task) in results]
    if len(items) != len(seeds) or any(i is None for i in items):
        return None
    return np.concatenate([np.asarray(i.values) for i in items]), items[0]


def comparisons(cfg: dict, results: dict) -> list[dict]:
    from bench.stats import item_statistic, paired_bootstrap_delta

    rows = []
    for a, b, claim in cfg["comparisons"]:
        for task in cfg["tasks"]:
            pa, pb = _pooled(results, a, cfg["seeds"], task), _pooled(results, b, cfg["seeds"], task)
            va = [results[(a, s, task)]["value"] for s in cfg["seeds"] if (a, s, task) in results]
            vb = [results[(b, s, task)]["value"] for s in cfg["seeds"] if (b, s, task) in results]
            if not va or not vb:
                continue
            higher = results[(b, cfg["seeds"][0], task)]["higher"]
            row = {"a": a, "b": b, "claim": claim, "task": task, "metric": results[(b, cfg["seeds"][0], task)]["metric"],
                   "higher": higher, "delta_seeds": float(np.mean(vb) - np.mean(va)), "lo": math.nan, "hi": math.nan,
                   "significant": False}
            if pa is not None and pb is not None and len(pa[0]) == len(pb[0]):
                scores = pa[1]
                stat = item_statistic(scores.statistic)
                d = paired_bootstrap_delta(pa[0], pb[0], statistic=lambda x, f=stat, k=scores.scale: k * f(x))
                row.update(delta=d.delta, lo=d.lo, hi=d.hi, significant=d.significant)
            better = row.get("delta", row["delta_seeds"]) * (1 if higher else -1)
            row["held"] = bool(row["significant"] and better > 0)
            row["reversed"] = bool(row["significant"] and better < 0)
            rows.append(row)
    return rows


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _plot(cfg: dict, results: dict, folder: Path) -> list[Path]:
    from bench.viz import _pyplot

    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    arms = ["base", *cfg["arms"]]
    paths = []
    fig, axes = plt.subplots(1, len(cfg["tasks"]), figsize=(4.2 * len(cfg["tasks"]), 3.3), squeeze=False)
    for ax, task in zip(axes[0], cfg["tasks"]):
        for i, arm in enumerate(arms):
            vals = [results[(arm, s, task)]["value"] for s in cfg["seeds"] if (arm, s, task) in results]
            if vals:
                ax.bar(i, np.mean(vals), yerr=np.std(vals), alpha=0.7, capsize=3)
                ax.scatter([i] * len(vals), vals, c="k", s=8, zorder=3)
        metric = next((results[(a, s, task)]["metric"] for a in arms for s in cfg["seeds"] if (a, s, task) in results), "")
        ax.set_xticks(range(len(arms)), arms, rotation=30, fontsize=8)
        ax.set_title(f"{task}\n{metric}", fontsize=9)
    fig.tight_layout()
    p = folder / "arms.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def write_report(cfg: dict, results: dict, out: Path | None = None, minutes: float | None = None) -> Path:
    out = out or DOC
    rows = comparisons(cfg, results)
    plots = _plot(cfg, results, out.parent / out.stem)
    arms = ["base", *cfg["arms"]]
    lines = [f"# Mini study: the paper's ablations at laptop scale (`bench study {cfg['name']}`)", "",
             f"Base encoder `{cfg['base']}` (self-pretrained on synthetic scenes), SpatialBoost recipe preset "
             f"`{cfg['sb_preset']}`, evaluation on the synthetic `{cfg['synth_preset']}` twins, seeds "
             f"{cfg['seeds']} (stage-3 training seed and probe seed). Configuration: `bench/study/mini.yaml`, fixed "
             f"before the run; config and seeds are the params of the MLflow run `study {cfg['name']}`."
             + (f" Wall time: {minutes:.1f} min on the 2-core machine." if minutes else ""), "",
             "## Arms (headline metric, mean +- std over seeds)", "",
             "| arm | encoder | " + " | ".join(cfg["tasks"]) + " |", "|---|---|" + "---|" * len(cfg["tasks"])]
    for arm in arms:
        cells = []
        for task in cfg["tasks"]:
            vals = [results[(arm, s, task)]["value"] for s in cfg["seeds"] if (arm, s, task) in results]
            cells.append(f"{np.mean(vals):.3f} +- {np.std(vals):.3f} (n={len(vals)})" if vals else "missing")
        lines.append(f"| {arm} | `{arm_name(cfg, arm)}` | " + " | ".join(cells) + " |")
    lines += ["", "Metrics: " + "; ".join(sorted({f"{t}: {results[k]['metric']} ({'higher' if results[k]['higher'] else 'lower'} is better)"
                                                  for t in cfg["tasks"] for k in results if k[2] == t})), "",
              "## Deltas (b - a): paired bootstrap 95% interval over (seed, test item), 2000 resamples", "",
              "| claim | a | b | task | delta | 95% CI | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        verdict = "held" if r["held"] else "reversed" if r["reversed"] else "not significant"
        lines.append(f"| {r['claim']} | {r['a']} | {r['b']} | {r['task']} | {_fmt(r.get('delta', r['delta_seeds']))} | "
                     f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}] | {verdict} |")
    lines += ["", "## Which of the paper's claims held at this scale", ""]
    for a, b, claim in cfg["comparisons"]:
        mine = [r for r in rows if r["a"] == a and r["b"] == b]
        held = [r["task"] for r in mine if r["held"]]
        rev = [r["task"] for r in mine if r["reversed"]]
        status = ("HELD on " + ", ".join(held) if held else "did NOT hold (no significant improvement)") + \
                 (f"; REVERSED on {', '.join(rev)}" if rev else "")
        lines.append(f"* {claim}: {status}.")
    ft = cfg.get("forgetting_task")
    if ft:
        def mean_of(arm):
            v = [results[(arm, s, ft)]["value"] for s in cfg["seeds"] if (arm, s, ft) in results]
            return float(np.mean(v)) if v else math.nan
        lines += ["", f"Forgetting (Table 17) on `{ft}`: base {_fmt(mean_of('base'))}, dual-channel (+sb) "
                      f"{_fmt(mean_of('sb'))}, full fine-tuning (+sb-full) {_fmt(mean_of('full'))}."]
    lines += ["", "## Not run", ""] + [f"* {v}" for v in cfg.get("not_run", {}).values()]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({out.stem}/{p.name})" for p in plots] + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out


__all__ = ["collect", "comparisons", "write_report"]
