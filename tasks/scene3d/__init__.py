"""Lexicon3D 3D-scene probes (paper Table 3): frozen 2D features lifted onto ScanNet point clouds,
then 3D semantic segmentation, partial-scene registration, ScanRefer grounding and ScanQA / SQA3D
question answering; each real task has a synthetic twin on rendered rooms in the same layouts.
Metadata only (no torch); behaviour in semseg.py, registration.py, grounding.py, qa.py. See docs/3d.md."""
from __future__ import annotations

from bench.data.scannet_sources import Synth3DData, scannet_data
from bench.metrics import Metric, reference
from bench.task import Need, TaskMeta
from tasks import register_task

REFERENCE = "Man et al. 2024, Lexicon3D (github.com/YunzeMan/Lexicon3D @a58be22); SpatialBoost App. A.4"
SYNTH = Synth3DData()
LIFT = {"lifting": "lexicon3d-fusion_util(round-pixel,border10,vis0.25-relative,bicubic-240x320,mean-over-views)",
        "features": "patches-last-block, fp16 per-scene point features cached by encoder identity"}

SEMSEG_METRICS = (
    Metric("miou", True, "mean IoU over the 20 ScanNet classes (absent classes count 0, as SemsegMeter)", "%"),
    Metric("accuracy", True, "point accuracy over all val points", "%"),
    Metric("macc", True, "mean class accuracy over 20 classes", "%", "diagnostic"),
    Metric("miou_present", True, "mean IoU over the classes present in val", "%", "diagnostic"),
    Metric("classes_present", True, "classes present in the val ground truth", "", "diagnostic"),
    reference("majority_accuracy", True, "accuracy of always predicting the most frequent train class", "%"))
REG_METRICS = (
    Metric("rr_at_0.05m", True, "registration recall: RMSE of overlapping cloud-1 points < 0.05 m", "%"),
    Metric("rte_m", False, "mean relative translation error (se3_compare)", "m"),
    Metric("rre_deg", False, "mean relative rotation error (se3_compare)", "deg"),
    Metric("rmse_m", False, "mean RMSE of overlapping cloud-1 points", "m", "diagnostic"),
    Metric("pairs_skipped", False, "scenes without two overlapping partial clouds (counted, not scored)", "",
           "diagnostic"),
    reference("identity_rr", True, "RR of predicting the identity transform", "%"),
    Metric("train_rr", True, "RR on the training pairs (fit; the gap to rr_at_0.05m is overfitting)", "%", "diagnostic"))

SEMSEG_DATA = scannet_data("ScanNet v2 (OpenScene export)", ("meta_data",))
REG_DATA = scannet_data("ScanNet v2 + Lexicon3D registration poses", ("meta_data", "lexicon3d/unified_pose"))


def _register(name, kind, impl, metrics, headline, data, description, paper: bool, twin_of=None, extra=None,
              needs=Need.FEATURES, **options):
    register_task(TaskMeta(
        name=name, group="3d", description=description, data=data, metrics=metrics, headline=headline,
        protocol=f"lexicon3d-{kind}", paper_task=name if paper else None, twin_of=twin_of, reference=REFERENCE,
        notes={**LIFT, **(extra or {})}, needs=needs | (Need.GPU if paper else Need.NONE)),
        impl, synthetic=not paper, **options)


SEMSEG_NOTES = {"labels": "ScanNet-20 (nyu40 ids 1..39 subset -> 0..19, rest -1 ignore)",
                "head": "Linear(C,20), softmax then CrossEntropyLoss, Adam, batch = 1 scene"}
REG_NOTES = {"pairs": "views [0,k) vs [k,2k) lifted separately, FPS per cloud, cloud 2 moved by unified_pose",
             "head": "REGTR cross-encoder + correspondence decoder + weighted Kabsch (both directions)",
             "rr_rule": "RMSE(T_pred x, T_gt x) over overlapping cloud-1 points < 0.05 m (inferred; not in Lexicon3D)"}
_register("scannet-3d-semseg", "semseg", "tasks.scene3d.semseg:Semseg3D", SEMSEG_METRICS, "miou", SEMSEG_DATA,
          "ScanNet 3D semantic segmentation (20 classes), linear probe on lifted features (Table 3)", True,
          extra=SEMSEG_NOTES)
_register("synth-scannet-3d-semseg", "semseg", "tasks.scene3d.semseg:Semseg3D", SEMSEG_METRICS, "miou", SYNTH,
          "Synthetic ScanNet twin: 3D semantic segmentation, linear probe on lifted features", False,
          "scannet-3d-semseg", SEMSEG_NOTES)
_register("scannet-registration", "registration", "tasks.scene3d.registration:Registration3D", REG_METRICS,
          "rr_at_0.05m", REG_DATA, "ScanNet partial-scene registration (REGTR-style head, RR@0.05 m) (Table 3)", True,
          extra=REG_NOTES)
_register("synth-scannet-registration", "registration", "tasks.scene3d.registration:Registration3D", REG_METRICS,
          "rr_at_0.05m", SYNTH, "Synthetic ScanNet twin: partial-scene registration from disjoint view sets", False,
          "scannet-registration", REG_NOTES)

VG_METRICS = (
    Metric("accuracy", True, "Acc@0.5: chosen ground-truth box has IoU >= 0.5 with the target", "%"),
    Metric("acc_at_0.25", True, "Acc@0.25", "%"),
    Metric("accuracy_unique", True, "Acc@0.5 on targets whose class is unique in the scene", "%", "diagnostic"),
    Metric("accuracy_multiple", True, "Acc@0.5 on targets with same-class distractors", "%", "diagnostic"),
    reference("chance", True, "expected Acc@0.5 of a uniformly random box", "%"),
    Metric("train_accuracy", True, "Acc@0.5 on the training descriptions (fit)", "%", "diagnostic"))
VG_DATA = scannet_data("ScanNet v2 + ScanRefer", ("meta_data", "scanrefer", "scannetv2"),
                       "ScanRefer (https://github.com/daveredrum/ScanRefer, request form): "
                       "ScanRefer_filtered_{train,val}.json in <root>/scanrefer; M3DRef-CLIP's preprocessed scene "
                       "files (dataset/scannetv2/{train,val}/<scene>.pth, its README) in <root>/scannetv2.")
VG_NOTES = {"objects": "lifted features average-pooled inside each ground-truth AABB (no detector)",
            "head": "M3DRef-CLIP MatchModule (4 attention layers, d128, 4 heads) + RefCELoss + contrastive",
            "text": "frozen CLIP ViT-B/32 text tower if cached, else a tiny random-init one (param text_encoder_used)"}
_register("scanrefer-vg", "grounding", "tasks.scene3d.grounding:Grounding3D", VG_METRICS, "accuracy", VG_DATA,
          "ScanRefer visual grounding among ground-truth boxes, Acc@0.5 (Table 3)", True, extra=VG_NOTES)
_register("synth-scanrefer-vg", "grounding", "tasks.scene3d.grounding:Grounding3D", VG_METRICS, "accuracy", SYNTH,
          "Synthetic ScanRefer twin: referring expressions with same-class distractors, Acc@0.5", False,
          "scanrefer-vg", VG_NOTES)

QA_METRICS = (
    Metric("bleu1", True, "BLEU-1 x 100 (pycocoevalcap Bleu, corpus level, PTB tokens)", "%"),
    Metric("exact_match", True, "generated answer equals one of the references (Top1 EM)", "%"),
    reference("majority_bleu1", True, "BLEU-1 of always answering the most frequent train answer", "%"),
    reference("majority_exact_match", True, "EM of always answering the most frequent train answer", "%"))
QA_NOTES = {"head": "3D-LLM: 3D pos-emb + Q-Former (cross-attn every 2 layers) -> Linear -> frozen seq2seq LM",
            "lm": "google/flan-t5-xl if cached, else a tiny random-init T5 on the project BPE (param lm_used)",
            "decoding": "greedy (num_beams forced to 1), max_new_tokens 40", "situation": "SQA3D situation dropped"}
SCANQA_DATA = scannet_data("ScanNet v2 + ScanQA", ("meta_data", "scanqa"),
                           "ScanQA v1.0 (https://github.com/ATR-DBI/ScanQA): ScanQA_v1.0_{train,val}.json in <root>/scanqa.")
SQA_DATA = scannet_data("ScanNet v2 + SQA3D", ("meta_data", "sqa3d"),
                        "SQA3D (https://github.com/SilongYong/SQA3D): SQA_{train,test}.json (utils/sqa_data_2_ScanQA.py) "
                        "or sqa_task/balanced/ in <root>/sqa3d.")
_register("scanqa-vlr", "vlr", "tasks.scene3d.qa:SceneQATask", QA_METRICS, "bleu1", SCANQA_DATA,
          "ScanQA 3D question answering (val), Q-Former into a frozen seq2seq LM, BLEU-1 (Table 3)", True,
          extra=QA_NOTES, needs=Need.FEATURES | Need.LLM)
_register("sqa3d-vlr", "vlr", "tasks.scene3d.qa:SceneQATask", QA_METRICS, "bleu1", SQA_DATA,
          "SQA3D situated question answering (test), Q-Former into a frozen seq2seq LM, BLEU-1 (Table 3)", True,
          extra=QA_NOTES, needs=Need.FEATURES | Need.LLM, dataset="sqa3d")
_register("synth-scanqa-vlr", "vlr", "tasks.scene3d.qa:SceneQATask", QA_METRICS, "bleu1", SYNTH,
          "Synthetic ScanQA twin: counts, colours, relations, distances; BLEU-1", False, "scanqa-vlr", QA_NOTES,
          needs=Need.FEATURES | Need.LLM)
