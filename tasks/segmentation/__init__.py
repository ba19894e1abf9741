"""Semantic segmentation probes on frozen patch features (paper Table 2; DINOv2 linear protocol) through
mmsegmentation 1.2.2: ADE20K, Pascal VOC 2012 and the synthetic ADE20K-layout twin, each with a
linear head on the last block and "+ms" (last 4 blocks, multi-scale + flip test). Metadata only (no
torch, no mmseg); behaviour in `probe.py` / `faithful.py`, knobs in `config.py`. See docs/segmentation.md."""
from __future__ import annotations

from bench.data.sources import RealData, SyntheticData
from bench.metrics import Metric, reference
from bench.task import Need, TaskMeta
from tasks import register_task

METRICS = (
    Metric("mIoU", True, "mean intersection-over-union over classes (%), mmseg IoUMetric", "%"),
    Metric("mAcc", True, "mean per-class pixel accuracy (%)", "%"),
    Metric("aAcc", True, "overall pixel accuracy (%)", "%"),
    reference("mIoU_majority_baseline", True,
              "mIoU (%) of predicting the most frequent training class everywhere (a floor for the probe)", "%"),
)

ADE20K = RealData(
    "ADE20K", "ade20k", "BENCH_ADE20K",
    ("ADEChallengeData2016/images/training", "ADEChallengeData2016/images/validation",
     "ADEChallengeData2016/annotations/training", "ADEChallengeData2016/annotations/validation"),
    "Download ADEChallengeData2016.zip (SceneParsing150, 20,210 train / 2,000 val images) from "
    "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip and unzip it, giving "
    "ADEChallengeData2016/{images,annotations}/{training,validation}/ (annotations: uint8 PNG, 0 = other).")
VOC2012 = RealData(
    "Pascal VOC 2012", "voc", "BENCH_VOC",
    ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/SegmentationClass",
     "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt", "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"),
    "Download VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and untar it, "
    "giving VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/{train,val}.txt} "
    "(SegmentationClass: palette PNGs, 21 classes, 255 = object borders / ignored).")
SYNTH_ADE = SyntheticData("ade")

REFERENCE = "Oquab et al. 2023 (DINOv2), linear semantic segmentation (mmseg configs)"


def notes(dataset: str, multiscale: bool) -> dict[str, str]:
    """The fixed protocol facts (the knobs, variant included, are `SegConfig` fields)."""
    return {
        "engine": "mmsegmentation-1.2.2",
        "dataset": dataset,
        "features": "patches-last-4-blocks-concat" if multiscale else "patches-last-block",
        "head": "Dropout2d-BN-conv1x1, bilinear upsampling",
        "test": ("multiscale (ms_ratios) + flip (SegTTAModel)" if multiscale else "single scale") + ", slide inference",
        "metric": "IoUMetric (mIoU headline, mAcc, aAcc)",
    }


# prefix -> (SegData kind, data source, dataset fact, description stem, paper row?)
DATASETS = {
    "synth": ("synth-ade", SYNTH_ADE, "synthetic ADE20K-layout scenes (K classes of ade/classes.json)",
              "Semantic segmentation of the synthetic scenes (ADE20K layout twin)", False),
    "ade20k": ("ade", ADE20K, "ADE20K SceneParsing150 (reduce_zero_label)",
               "ADE20K (150 classes) semantic segmentation", True),
    "voc": ("voc", VOC2012, "Pascal VOC 2012 (train -> val, 21 classes)",
            "Pascal VOC 2012 (21 classes) semantic segmentation", True),
}
HEADS = {"linear": (False, "linear head on the last block"),
         "ms": (True, "linear head on the last 4 blocks, multi-scale + flip test")}

for _suffix, (_ms, _what) in HEADS.items():
    for _prefix, (_kind, _data, _fact, _stem, _paper) in DATASETS.items():
        _name = f"{_prefix}-seg-{_suffix}"
        register_task(TaskMeta(
            name=_name, group="segmentation", description=f"{_stem}, {_what}" + (" (paper Table 2)" if _paper else ""),
            data=_data, metrics=METRICS, headline="mIoU", protocol="dinov2-linear-seg" + ("-ms" if _ms else ""),
            paper_task=_name if _paper else None, twin_of=None if _paper else f"ade20k-seg-{_suffix}",
            reference=REFERENCE, notes=notes(_fact, _ms),
            # the fast variant caches train features; the test (and the faithful variant) encodes on the fly
            needs=Need.FEATURES | Need.ONLINE_ENCODER | (Need.GPU if _paper else Need.NONE)),
            "tasks.segmentation.probe:SegProbe", kind=_kind, multiscale=_ms)
