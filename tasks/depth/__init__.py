"""Monocular depth probes on frozen features (paper Table 1; DINOv2 / DINOv3 depth protocol):
NYU Depth v2 and KITTI with a linear or a DPT head bank, and their synthetic twin. Metadata only
(no torch); behaviour in `probe.py`, the protocol knobs in `config.py`. See docs/depth.md."""
from __future__ import annotations

from bench.data.sources import RealData, SyntheticData
from bench.metrics.depth_spec import PROBE_METRICS
from bench.task import Need, TaskMeta
from tasks import register_task

NYU_HOW = ("NYU Depth v2 in the BTS layout: the 'sync' training frames (~24k, from BTS's "
           "sync.zip, https://github.com/cleinc/bts -> pytorch/README 'NYU Depth V2' download) and "
           "'official_splits/test' (654 test frames, made by BTS's utils/extract_official_train_test_set_from_mat.py "
           "from nyu_depth_v2_labeled.mat), plus the split files nyu_train.txt / nyu_test.txt "
           "(= BTS train_test_inputs/nyudepthv2_{train,test}_files_with_gt.txt; either name works). Layout: "
           "<root>/sync/<scene>/rgb_*.jpg + sync_depth_*.png, <root>/official_splits/test/<scene>/..., "
           "<root>/nyu_train.txt, <root>/nyu_test.txt (BENCH_DATA/nyu by default).")
KITTI_HOW = ("KITTI raw (http://www.cvlibs.net/datasets/kitti/raw_data.php, all 2011_* drives; BTS's "
             "utils/kitti_archives_to_download.txt lists them) unpacked as <root>/<date>/<drive>_sync/image_02/data/, "
             "the annotated depth maps (data_depth_annotated.zip from the KITTI depth benchmark) as "
             "<root>/data_depth_annotated/<drive>_sync/proj_depth/groundtruth/image_02/ (its train/ and val/ "
             "folders may stay), and the Eigen split files eigen_train_files_with_gt.txt / "
             "eigen_test_files_with_gt.txt from BTS's train_test_inputs/ in <root> (BENCH_DATA/kitti by default).")

NYU_DATA = RealData("NYU Depth v2 (BTS layout)", "nyu", "BENCH_NYU", ("sync", "official_splits/test"), NYU_HOW)
KITTI_DATA = RealData("KITTI Eigen split (annotated depth)", "kitti", "BENCH_KITTI",
                      ("data_depth_annotated", "eigen_train_files_with_gt.txt", "eigen_test_files_with_gt.txt"),
                      KITTI_HOW)
SYNTH_NYU = SyntheticData("nyu")  # the synthetic scenes in the NYU/BTS layout, read by the NYU loader

EVAL_CROPS = {"nyu": "eigen-45:471x41:601", "kitti": "kb352x1216+garg"}
REFERENCE = "Oquab et al. 2023 (DINOv2) / Simeoni et al. 2025 (DINOv3) depth evaluation"


def notes(dataset: str, head: str) -> dict[str, str]:
    """The fixed protocol facts (the knobs are `DepthProbeConfig` fields)."""
    return {
        "dataset": dataset,
        "head": head,
        "bins": "uniform-linear-norm",
        "loss": "sigloss-sqrt(var(g)+0.15*mean(g)^2)",
        "features": "frozen-patches+cls-last4-blocks-cached",
        "eval_crop": EVAL_CROPS[dataset],
        "averaging": "per-image-then-mean",
        "selection": "bank-best-val-rmse(heldout-groups-of-train)",
    }


# task -> (dataset loader, head, data source, description)
VARIANTS = {
    "nyud-depth-linear": ("nyu", "linear", NYU_DATA,
                          "NYU Depth v2 (Eigen test split), linear head (bank: lrs x {last, last4}), RMSE"),
    "nyud-depth-dpt": ("nyu", "dpt", NYU_DATA, "NYU Depth v2 (Eigen test split), DPT head (bank of lrs), RMSE"),
    "kitti-depth-linear": ("kitti", "linear", KITTI_DATA,
                           "KITTI Eigen split, annotated GT, Garg crop, linear head (bank: lrs x {last, last4}), RMSE"),
    "kitti-depth-dpt": ("kitti", "dpt", KITTI_DATA,
                        "KITTI Eigen split, annotated GT, Garg crop, DPT head (bank of lrs), RMSE"),
    "synth-depth-linear": ("nyu", "linear", SYNTH_NYU,
                           "Synthetic NYU-layout twin (rendered indoor scenes, exact depth), linear head bank, RMSE"),
    "synth-depth-dpt": ("nyu", "dpt", SYNTH_NYU,
                        "Synthetic NYU-layout twin (rendered indoor scenes, exact depth), compact DPT head bank, RMSE"),
}

for _name, (_dataset, _head, _data, _description) in VARIANTS.items():
    _synthetic = isinstance(_data, SyntheticData)
    register_task(TaskMeta(
        name=_name, group="depth", description=_description, data=_data, metrics=PROBE_METRICS, headline="rmse",
        protocol=f"dinov2-depth-{_head}", paper_task=None if _synthetic else _name,
        twin_of=f"nyud-depth-{_head}" if _synthetic else None, reference=REFERENCE, notes=notes(_dataset, _head),
        needs=Need.FEATURES | (Need.GPU if _head == "dpt" and not _synthetic else Need.NONE)),  # 256-channel DPT
        "tasks.depth.probe:DepthProbe", dataset=_dataset, head=_head)
