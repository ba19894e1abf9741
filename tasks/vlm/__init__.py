"""VLM benchmarks (workshop Table 1): the encoder inside a LLaVA-style VLM, greedy answers scored by
the benchmarks' official rules (judge-free for SpatialRGPT-Bench), and their synthetic twins.

The VLM of encoder E is the one the SpatialBoost trainer built with it: E with the stage-2 projector
and LLM, or E+sb with the stage-3 projector and the stage-2 LLM (`bench.spatialboost.vlm_checkpoint`;
stages 1-2 are trained when missing). Metadata only (no torch); behaviour in `evaluate.py`.
See docs/vlm-eval.md.
"""
from __future__ import annotations

from bench.data.sources import RealData
from bench.data.vlm_twin_source import TwinData
from bench.metrics import Metric, reference
from bench.task import Need, TaskMeta
from tasks import register_task

IMPL = "tasks.vlm.evaluate:VLMBenchmark"
REF = "LLaVA-1.5 evaluation (haotian-liu/LLaVA docs/Evaluation.md); SpatialRGPT-Bench; BLINK; lmms-eval"
NEEDS_REAL = Need.ONLINE_ENCODER | Need.LLM | Need.GPU
NEEDS_TWIN = Need.ONLINE_ENCODER | Need.LLM

SPATIALRGPT = RealData(
    "SpatialRGPT-Bench", "spatialrgpt-bench", "BENCH_SPATIALRGPT", ("SpatialRGPT-Bench_v1.json",),
    "Download SpatialRGPT-Bench_v1.json from the HF dataset a8cheng/SpatialRGPT-Bench and place Omni3D's datasets "
    "folder (the images its image_info.file_path names) next to it.")
BLINK = RealData("BLINK Relative_Depth", "blink", "BENCH_BLINK", ("Relative_Depth",),
                 "Download the HF dataset BLINK-Benchmark/BLINK (at least Relative_Depth/val-*.parquet).")
VQAV2 = RealData("VQAv2 val2014", "vqav2", "BENCH_VQAV2",
                 ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json", "val2014"),
                 "Get the VQAv2 val questions/annotations from visualqa.org and the COCO val2014 images.")
GQA = RealData("GQA testdev-balanced", "gqa", "BENCH_GQA", ("testdev_balanced_questions.json", "images"),
               "Get GQA's testdev_balanced_questions.json and images/ from cs.stanford.edu/people/dorarad/gqa.")
MMBENCH = RealData("MMBench dev (en)", "mmbench", "BENCH_MMBENCH", ("mmbench_dev_20230712.tsv",),
                   "Get mmbench_dev_20230712.tsv (OpenCompass MMBench; the file LLaVA's mmbench.sh reads).")
MME = RealData("MME", "mme", "BENCH_MME", ("MME_Benchmark_release_version",),
               "Get MME_Benchmark_release_version (BradyFU/Awesome-Multimodal-Large-Language-Models, MME).")


def _metrics(kind: str) -> tuple[Metric, ...]:
    blind = reference("text_only", True, "the same VLM without the image (opt-in: text_only_baseline)", "%")
    majority = reference("majority", True, "best constant answer per category (the commonest ground truth)", "%")
    if kind == "spatialrgpt":
        return (Metric("accuracy", True, "the headline setting's success rate (default: quantitative)", "%"),
                Metric("qualitative", True, "predicates and choices answered right (micro-average)", "%"),
                Metric("quantitative", True, "distances/sizes within 25%, directions within 1 hour", "%"),
                Metric("parse_fail", False, "answers with nothing readable (counted wrong)", "%", "diagnostic"),
                majority, blind)
    if kind == "mme":
        return (Metric("score", True, "perception: sum over subtasks of acc + acc+ (max 2000)", ""),
                Metric("perception", True, "sum of acc + acc+ over the 10 perception subtasks", "", "diagnostic"),
                Metric("cognition", True, "sum of acc + acc+ over the 4 cognition subtasks", "", "diagnostic"),
                Metric("other", True, "subtasks outside the official lists", "", "diagnostic"),
                reference("majority", True, "always the better of 'yes' / 'no'", ""),
                reference("text_only", True, "the same VLM without the image", ""))
    extra = ()
    if kind in ("blink", "mmbench"):
        extra += (Metric("parse_fail", False, "answers picking no single option (counted wrong)", "%", "diagnostic"),)
    if kind == "mmbench":
        extra += (Metric("accuracy_single", True, "first rotation only (no CircularEval)", "%", "diagnostic"),)
    desc = {"blink": "strict option parsing, exact match", "vqav2": "VQA accuracy (EvalAI normalisation)",
            "gqa": "exact match (LLaVA's GQA conversion)", "mmbench": "CircularEval accuracy"}[kind]
    return (Metric("accuracy", True, desc, "%"),) + extra + (majority, blind)


def _register(name: str, kind: str, data, description: str, *, twin_of: str | None = None, **options) -> None:
    real = twin_of is None
    notes = {"benchmark": kind, "decoding": "greedy", "prompts": "llava-1.5",
             **({"judge": "regex-v1"} if kind == "spatialrgpt" else {}),
             **({"parser": "blink-strict-v1"} if kind in ("blink", "mmbench") else {})}
    register_task(TaskMeta(
        name=name, group="vlm", description=description, metrics=_metrics(kind),
        headline="score" if kind == "mme" else "accuracy", data=data, protocol=f"vlm-{kind}", version=1,
        paper_task=name if real else None, twin_of=twin_of, reference=REF, needs=NEEDS_REAL if real else NEEDS_TWIN,
        notes=notes), IMPL, kind=kind, **options)


_register("spatialrgpt-bench", "spatialrgpt", SPATIALRGPT,
          "SpatialRGPT-Bench (1,406 region questions, 24 categories), regions drawn as boxes, judge-free scoring")
_register("blink-relative-depth", "blink", BLINK, "BLINK Relative Depth val (124 two-point questions), strict parser")
_register("vqav2", "vqav2", VQAV2, "VQAv2 val2014 (test-dev is server-scored), VQA accuracy")
_register("gqa", "gqa", GQA, "GQA testdev-balanced, exact match")
_register("mmbench", "mmbench", MMBENCH, "MMBench dev (en), CircularEval, no GPT fallback")
_register("mme", "mme", MME, "MME perception score (acc + acc+ over 10 subtasks)")

_register("spatialrgpt-bench-synth", "spatialrgpt", TwinData("spatialrgpt"),
          "Synthetic SpatialRGPT-Bench twin: two marked regions, exact metric answers (24 categories)",
          twin_of="spatialrgpt-bench", image_folder="images", max_new_tokens=32)
_register("blink-relative-depth-synth", "blink", TwinData("blink"),
          "Synthetic BLINK Relative Depth twin: two circled points, exact depth order", twin_of="blink-relative-depth",
          max_new_tokens=24)
_register("vqav2-synth", "vqav2", TwinData("vqav2"),
          "Synthetic VQAv2 twin: colours, existence and counts of objects", twin_of="vqav2", max_new_tokens=24)
