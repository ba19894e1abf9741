"""Segmentation probes through mmsegmentation: the mmcv._ext stand-in, IoUMetric through our glue,
the ADE20K / VOC / synthetic loaders on files in their exact formats, the frozen-encoder backbone in
an mmseg model, both training variants on a tiny colour-coded dataset (configs passed explicitly),
the typed config and the metadata, and (slow) the synthetic tasks end to end with vit-tiny."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.mmseg_compat import CompiledOpUnavailable, install_ext_standin, requested_ext_symbols

# ------------------------------------------------------------------------------- file writers
# class k (1..K) is painted in COLOURS[k - 1]; label 0 ("other") is a grey frame
COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30)]


def _scene(rng, h, w, k_max):
    """A label map: grey 'other' frame (0), then 2x2 blocks of classes 1..k_max; and its image."""
    labels = np.zeros((h, w), np.uint8)
    ys, xs = np.linspace(4, h - 4, 3).astype(int), np.linspace(4, w - 4, 3).astype(int)
    classes = rng.permutation(np.arange(1, k_max + 1))
    for i in range(2):
        for j in range(2):
            labels[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = classes[(2 * i + j) % k_max]
    img = np.full((h, w, 3), 128, np.float64)
    for k in range(1, k_max + 1):
        img[labels == k] = COLOURS[(k - 1) % len(COLOURS)]
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, labels


def write_ade(root: Path, n_train=6, n_val=3, size=(48, 64), k_max=4, classes_json=None, seed=0) -> Path:
    """ADEChallengeData2016 layout: images/{training,validation}/*.jpg, annotations/... uint8 PNG."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    for split, n in (("training", n_train), ("validation", n_val)):
        (base / "images" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, labels = _scene(rng, *size, k_max)
            stem = f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
            Image.fromarray(img).save(base / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(labels).save(base / "annotations" / split / f"{stem}.png")
    if classes_json is not None:
        (root / "classes.json").write_text(json.dumps(classes_json))
    return root


def voc_palette() -> list[int]:
    """The VOC colour map (bit-interleaved), 256 entries; 255 = (224, 224, 192)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_voc(root: Path, names=("2007_000032", "2007_000039", "2007_000063"), size=(40, 52), seed=0) -> Path:
    """VOCdevkit/VOC2012: JPEGImages/*.jpg, SegmentationClass/*.png ('P' mode, 255 object borders),
    ImageSets/Segmentation/{train,val}.txt."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    h, w = size
    truth = {}
    for i, name in enumerate(names):
        labels = np.zeros((h, w), np.uint8)  # background 0
        labels[8:30, 10:40] = 15 if i % 2 == 0 else 12  # person / dog
        border = np.zeros_like(labels, bool)
        border[7, 9:41] = border[30, 9:41] = True
        border[7:31, 9] = border[7:31, 40] = True
        labels[border] = 255
        png = Image.fromarray(labels, mode="P")
        png.putpalette(voc_palette())
        png.save(base / "SegmentationClass" / f"{name}.png")
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        truth[name] = labels
    (base / "ImageSets/Segmentation/train.txt").write_text("\n".join(names[:2]) + "\n")
    (base / "ImageSets/Segmentation/val.txt").write_text(names[2] + "\n")
    return truth


SYNTH_CLASSES = {"classes": ["other", "red thing", "green thing", "blue thing", "yellow thing"],
                 "palette": [[0, 0, 0], [220, 30, 30], [30, 200, 40], [30, 40, 220], [230, 220, 30]],
                 "reduce_zero_label": True}


# ------------------------------------------------------------------------------- the stand-in
def test_ext_standin_registers_every_requested_symbol_and_raises_clearly():
    module = install_ext_standin()
    if module is None:
        pytest.skip("a compiled mmcv._ext is installed: no stand-in needed")
    assert sys.modules["mmcv._ext"] is module and install_ext_standin() is module  # idempotent
    names = requested_ext_symbols()
    assert len(names) > 50 and {"nms", "roi_align_forward", "sigmoid_focal_loss_forward"} <= set(names)
    for name in names:
        assert callable(getattr(module, name))
    with pytest.raises(CompiledOpUnavailable, match=r"compiled mmcv op 'nms' called.*no compiled ops.*full mmcv"):
        module.nms()
    # mmcv's own loader accepts it, and its Python wrappers reach the stand-in (and fail loudly)
    from mmcv.utils import ext_loader

    assert ext_loader.load_ext("_ext", ["nms", "softnms"]) is module
    assert not ext_loader.check_ops_exist()
    import mmcv.ops

    with pytest.raises(CompiledOpUnavailable, match="'nms'"):
        mmcv.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_mmseg_imports_work_with_the_standin():
    from bench.mmseg_compat import import_mmseg

    mmseg = import_mmseg()
    assert mmseg.__version__ == "1.2.2"
    import mmseg.datasets
    import mmseg.models
    from mmcv.transforms import TestTimeAug  # noqa: F401
    from mmseg.datasets import ADE20KDataset, PascalVOCDataset
    from mmseg.evaluation import IoUMetric  # noqa: F401
    from mmseg.models import SegTTAModel  # noqa: F401
    from mmseg.registry import MODELS

    assert len(ADE20KDataset.METAINFO["classes"]) == 150 and len(PascalVOCDataset.METAINFO["classes"]) == 21
    # the shim imports no head; the bench's models register where they live (heads/seg.py)
    shim = (Path(__file__).parents[1] / "bench" / "mmseg_compat.py").read_text()
    assert "import heads" not in shim and "from heads" not in shim
    import heads.seg  # noqa: F401

    for name in ("FrozenEncoderBackbone", "BNLinearHead", "FrozenEncoderDecoder"):
        assert MODELS.get(name) is not None


# ------------------------------------------------------------------------------------ loaders
def test_ade20k_layout_loader_reduces_zero_label(tmp_path):
    from bench.data.segmentation import ResizedSegImages, SegData, load_label_maps

    write_ade(tmp_path, n_train=3, n_val=2)
    raw = np.array(Image.open(tmp_path / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"))
    for root in (tmp_path, tmp_path / "ADEChallengeData2016"):  # the folder or its parent
        data = SegData("ade", root)
        assert data.num_classes == 150
        ds = data.dataset("val", [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
        assert len(ds) == 2 and len(data.dataset("train")) == 3
        item = ds[0]
        assert item["img"].shape == (48, 64, 3) and Path(item["img_path"]).name == "ADE_val_00000001.jpg"
        expected = np.where(raw == 0, 255, raw.astype(int) - 1)  # reduce_zero_label: 0 -> 255, k -> k-1
        np.testing.assert_array_equal(item["gt_seg_map"], expected)
    labels = load_label_maps(SegData("ade", tmp_path), "val", (12, 16))
    assert labels[0].shape == (12, 16) and set(np.unique(labels[0])) <= set(np.unique(expected))
    images = ResizedSegImages(SegData("ade", tmp_path), "val", (32, 32), (0.5,) * 3, (0.25,) * 3)
    x, i = images[1]
    assert x.shape == (3, 32, 32) and i == 1 and images.identity()["n"] == 2


def test_voc_layout_loader_keeps_palette_indices_and_borders(tmp_path):
    from bench.data.segmentation import SegData

    truth = write_voc(tmp_path)
    assert Image.open(tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000032.png").mode == "P"
    for root in (tmp_path, tmp_path / "VOCdevkit", tmp_path / "VOCdevkit" / "VOC2012"):
        data = SegData("voc", root)
        assert data.num_classes == 21 and not data.reduce_zero_label
        train = data.dataset("train", [dict(type="LoadAnnotations")])
        val = data.dataset("val", [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
        assert len(train) == 2 and len(val) == 1
        item = val[0]
        assert Path(item["img_path"]).name == "2007_000063.jpg"
        # palette indices, not RGB colours; 255 borders stay 255 (ignored by IoUMetric)
        np.testing.assert_array_equal(item["gt_seg_map"], truth["2007_000063"])
        assert set(np.unique(item["gt_seg_map"])) == {0, 15, 255}


def test_synthetic_layout_uses_its_own_classes(tmp_path):
    from bench.data.segmentation import SegData

    write_ade(tmp_path, n_train=2, n_val=1, classes_json=SYNTH_CLASSES)
    data = SegData.synthetic(tmp_path)
    assert data.classes == ("red thing", "green thing", "blue thing", "yellow thing") and data.num_classes == 4
    ds = data.dataset("val", [dict(type="LoadAnnotations")])
    assert ds.metainfo["classes"] == data.classes and ds.label_map is None  # no remapping by ADE names
    raw = np.array(Image.open(tmp_path / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"))
    np.testing.assert_array_equal(ds[0]["gt_seg_map"], np.where(raw == 0, 255, raw.astype(int) - 1))


# ------------------------------------------------------------------------------------ metrics
class _FixedPredictions:
    """A stand-in segmentor whose predictions are given per image name."""

    def __init__(self, preds: dict[str, np.ndarray]):
        self.preds = preds

    def eval(self):
        return self

    def test_step(self, batch):
        from mmengine.structures import PixelData

        out = []
        for sample in batch["data_samples"]:
            sample = sample.clone()
            sample.pred_sem_seg = PixelData(data=torch.from_numpy(self.preds[Path(sample.img_path).stem])[None].long())
            out.append(sample)
        return out


def test_iou_metric_through_our_glue_matches_hand_computation(tmp_path):
    from bench.data.segmentation import SegData
    from bench.metrics.segmentation import majority_baseline, per_class_breakdown
    from tasks.segmentation.faithful import Trained
    from tasks.segmentation.probe import SegConfig, run_test

    write_ade(tmp_path, n_train=2, n_val=2, size=(4, 4), k_max=3, classes_json={
        "classes": ["other", "a", "b", "c"], "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]})
    ann = tmp_path / "ADEChallengeData2016/annotations/validation"
    gts = {  # written values: 0 = other (ignored), 1..3 = classes a, b, c
        "ADE_val_00000001": np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 3, 3], [0, 0, 3, 3]], np.uint8),
        "ADE_val_00000002": np.array([[2, 2, 2, 2], [2, 2, 2, 2], [1, 1, 1, 0], [1, 1, 1, 0]], np.uint8),
    }
    preds = {  # predictions in reduced labels 0..2
        "ADE_val_00000001": np.array([[0, 0, 1, 1], [0, 1, 1, 1], [2, 2, 2, 2], [0, 0, 2, 0]]),
        "ADE_val_00000002": np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 2], [0, 0, 2, 2]]),
    }
    for name, gt in gts.items():
        Image.fromarray(gt).save(ann / f"{name}.png")
    data = SegData.synthetic(tmp_path)

    # by hand: ignore other, reduce labels, pool intersections / unions over both images
    inter, union, gt_area = np.zeros(3), np.zeros(3), np.zeros(3)
    for name, gt in gts.items():
        valid = gt != 0
        g, p = gt[valid].astype(int) - 1, preds[name][valid]
        for c in range(3):
            inter[c] += np.sum((g == c) & (p == c))
            union[c] += np.sum((g == c) | (p == c))
            gt_area[c] += np.sum(g == c)
    iou, acc = inter / union, inter / gt_area
    expected = {"mIoU": iou.mean() * 100, "mAcc": acc.mean() * 100, "aAcc": inter.sum() / gt_area.sum() * 100}

    cfg = SegConfig(examples=1)
    ctx = type("Ctx", (), {"num_workers": 0, "progress": False})()
    metrics, per_class, examples = run_test(ctx, Trained(_FixedPredictions(preds), (4, 4), 0), data, cfg, False)
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(round(v, 2), abs=0.006), k
    assert per_class["a"]["IoU"] == pytest.approx(round(iou[0] * 100, 2))
    assert per_class["c"]["gt_pixels"] == 4 and len(examples) == 1
    rows = per_class_breakdown(per_class)
    assert set(rows) == {"class:a", "class:b", "class:c"}
    assert rows["class:b"] == {"IoU": pytest.approx(round(iou[1] * 100, 2)), "Acc": pytest.approx(round(acc[1] * 100, 2))}
    assert per_class_breakdown({"x": {"IoU": None, "Acc": None, "gt_pixels": 0}, "y": {"IoU": None, "Acc": 50.0}}) == \
        {"class:y": {"Acc": 50.0}}
    # majority baseline: predict class "b" (reduced 1) everywhere
    b_iou = gt_area[1] / (gt_area.sum())  # intersection = all b pixels; union = every valid pixel
    assert majority_baseline(data, 1) == pytest.approx(round(b_iou * 100 / 3, 2), abs=0.006)


# ---------------------------------------------------------------------------- mmseg backbone
def test_frozen_backbone_inside_mmseg_model(counting_encoder):
    from mmengine.optim import OptimWrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from heads.seg import FrozenEncoderBackbone, build_segmentor

    enc = counting_encoder  # patch 8, dim 8, 4 blocks
    model = build_segmentor(enc, 3, n_last_blocks=2, crop_size=(32, 32), stride=(24, 24))
    assert isinstance(model.backbone, FrozenEncoderBackbone) and model.decode_head.in_channels == 16
    before = {k: v.clone() for k, v in enc.state_dict().items()}

    def sample(h, w):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, h, w)))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        return s

    imgs = [torch.randint(0, 255, (3, 30, 30), dtype=torch.uint8) for _ in range(2)]  # 30: not a patch multiple
    optim = OptimWrapper(torch.optim.AdamW(model.decode_head.parameters(), lr=1e-2))
    model.train()
    assert not enc.training  # the encoder stays in eval mode
    losses = [model.train_step({"inputs": imgs, "data_samples": [sample(30, 30), sample(30, 30)]}, optim)["loss"].item()
              for _ in range(3)]
    assert all(np.isfinite(losses)) and enc.proj.grad is None
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())

    # features: (B, D, h, w) per block, oldest first; the input is padded to a patch multiple
    feats = model.backbone(torch.zeros(1, 3, 30, 30))
    assert len(feats) == 2 and feats[0].shape == (1, 8, 4, 4)

    model.eval()
    seen = enc.images_seen
    with torch.no_grad():
        out = model.test_step({"inputs": [torch.randint(0, 255, (3, 40, 56), dtype=torch.uint8)],
                               "data_samples": [sample(40, 56)]})
    assert out[0].pred_sem_seg.data.shape == (1, 40, 56) and out[0].seg_logits.data.shape == (3, 40, 56)
    assert enc.images_seen - seen == 2 * 2  # slide 32/24 over 40x56: 2 x 2 windows


def test_logits_are_aligned_with_pixels(counting_encoder):
    """A window's logits equal the full image's logits at the same place (patch grid aligned)."""
    from heads.seg import build_segmentor

    model = build_segmentor(counting_encoder, 3, crop_size=(32, 32), test_mode="whole").eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        full = model.encode_decode(x, [dict(img_shape=(32, 48))])
        part = model.encode_decode(x[..., 16:], [dict(img_shape=(32, 32))])
    assert full.shape[-2:] == (32, 48)
    # away from the window's border (bilinear upsampling looks one patch further) they agree
    torch.testing.assert_close(full[..., 8:24, 28:40], part[..., 8:24, 12:24])


def test_batched_slide_inference_equals_mmseg(counting_encoder):
    from mmseg.models.segmentors import EncoderDecoder

    from heads.seg import build_segmentor

    model = build_segmentor(counting_encoder, 4, crop_size=(32, 32), stride=(21, 21), window_batch=3).eval()
    x = torch.randn(2, 3, 70, 45)
    with torch.no_grad():
        ours = model.slide_inference(x, [dict(img_shape=(70, 45))] * 2)
        reference = EncoderDecoder.slide_inference(model, x, [dict(img_shape=(70, 45))] * 2)
    torch.testing.assert_close(ours, reference)


def test_head_bank_exports_exact_bn_linear_heads():
    from heads.seg import BNLinearHead, HeadBank

    bank = HeadBank(12, 5, 3, dropout=0.1, seed=1)
    x = torch.randn(4, 12, 6, 7)
    bank.train()
    bank(x)  # updates the shared running statistics
    bank.eval()
    head = BNLinearHead(in_channels=[6, 6], in_index=[0, 1], channels=12, num_classes=5, dropout_ratio=0.1).eval()
    with torch.no_grad():
        for g in range(3):
            head.load_state_dict(bank.export(g))
            torch.testing.assert_close(bank(x)[:, g], head([x[:, :6], x[:, 6:]]))


def test_bank_miou_per_head_and_the_schedule():
    from bench.metrics.segmentation import bank_miou
    from heads.seg import warmup_poly

    y = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255]]])  # (B, H, W), 255 ignored
    perfect = torch.nn.functional.one_hot(y.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 10  # (B, K, h, w)
    logits = torch.stack([perfect, perfect.flip(1), torch.zeros_like(perfect)], 1)  # heads: right, swapped, all 0
    assert bank_miou([(logits, y)], 2, 3) == pytest.approx([100.0, 0.0, 50 * 4 / 7])
    assert warmup_poly(0, 10, 100) == pytest.approx(1e-6) and warmup_poly(10, 10, 100) == 1.0
    assert warmup_poly(55, 10, 100) == pytest.approx(0.5) and warmup_poly(100, 10, 100) == 0.0


# --------------------------------------------------------------------- both variants, tiny data
@pytest.fixture
def colour_scenes(tmp_path):
    return write_ade(tmp_path / "ade", n_train=12, n_val=3, size=(48, 64), classes_json=SYNTH_CLASSES)


def _run(name: str, encoder, root, tmp_path, **overrides):
    """One segmentation task's behaviour on `root` with config overrides (exactly `--set NAME.key=value`):
    (TaskResult, context, config)."""
    from bench.config import resolve
    from bench.context import EvalContext
    from bench.features import FeatureCache
    from tasks import get_task

    task = get_task(name)
    cfg = resolve(task.default_config(), overrides, where=f"config of {name}")
    ctx = EvalContext(encoder, torch.device("cpu"), 0, FeatureCache(tmp_path / "cache"), root=root, batch_size=8,
                      progress=False, artifacts_dir=tmp_path / "art")
    result = task.run(ctx, cfg)
    result.validate(task.meta)
    return result, ctx, cfg


def test_fast_variant_learns_colours_and_logs_everything(colour_scenes, tmp_path):
    from tests.conftest import CountingEncoder

    enc = CountingEncoder(dim=16, patch=8, resolution=32)
    result, ctx, cfg = _run("synth-seg-linear", enc, colour_scenes, tmp_path, fast_iters=150, fast_batch=8)
    out = result.metrics
    assert cfg.variant == "fast" and set(out) == {"mIoU", "mAcc", "aAcc", "mIoU_majority_baseline"}
    assert out["mIoU"] > out["mIoU_majority_baseline"] + 20
    assert set(result.items) == {"mIoU", "mAcc", "aAcc"}  # per-image counts reproduce every score (validate)
    p = ctx.params
    assert p["train_aug"].startswith("none") and p["fast.best_lr"] in cfg.fast_lrs and p["fast.iters"] == 150
    assert p["n_holdout"] == 1 and p["n_train"] == 11 and len(p["fast.holdout_mIoU"].split(",")) == len(cfg.fast_lrs)
    assert (tmp_path / "art" / "seg_examples.png").stat().st_size > 1000
    per_class = json.loads((tmp_path / "art" / "seg_per_class.json").read_text())
    assert set(per_class) == set(SYNTH_CLASSES["classes"][1:])
    # the per-class table is the result's breakdown too
    assert set(result.breakdown) == {f"class:{c}" for c in per_class}
    for c, row in per_class.items():
        assert result.breakdown[f"class:{c}"]["IoU"] == row["IoU"] and result.breakdown[f"class:{c}"]["Acc"] == row["Acc"]
    # +ms: 4 blocks, multi-scale + flip through SegTTAModel (train features: the linear head's 4-block entry)
    seen = enc.images_seen
    result_ms, ctx_ms, cfg_ms = _run("synth-seg-ms", enc, colour_scenes, tmp_path, fast_iters=150, fast_batch=8)
    out_ms = result_ms.metrics
    assert out_ms["mIoU"] > out_ms["mIoU_majority_baseline"] + 20 and cfg_ms.max_val_images == 32
    assert ctx_ms.params["test_tta"].startswith("multiscale") and "+flip" in ctx_ms.params["test_tta"]
    assert ctx_ms.params["val_images"] == "3 (all)"
    assert enc.images_seen - seen >= 3 * 10  # 10 augmented views per val image (tests/test_perf_reuse.py: exact)


def test_fast_variant_tests_on_the_configured_val_subset(colour_scenes, tmp_path):
    from tests.conftest import CountingEncoder

    enc = CountingEncoder(dim=8, patch=8, resolution=32)
    result, ctx, _ = _run("synth-seg-linear", enc, colour_scenes, tmp_path, fast_iters=20, fast_batch=8,
                          max_val_images=2, examples=0)
    assert ctx.params["val_images"] == "2 of 3, evenly spaced" and not (tmp_path / "art" / "seg_examples.png").exists()


def test_faithful_variant_runs_the_mmseg_train_pipeline(colour_scenes, tmp_path):
    from tests.conftest import CountingEncoder

    result, ctx, cfg = _run("synth-seg-linear", CountingEncoder(dim=8, patch=16, resolution=32), colour_scenes,
                            tmp_path, variant="faithful", iters=4, batch_size=2, crop=64, stride=43, scale=[256, 64])
    assert all(np.isfinite(v) for v in result.metrics.values())
    p = ctx.params
    assert cfg.variant == "faithful" and (cfg.iters, cfg.batch_size) == (4, 2)
    assert "RandomCrop 64" in p["train_aug"] and "PhotoMetricDistortion" in p["train_aug"]
    assert np.isfinite(p["faithful.final_loss"]) and p["test_mode"].startswith("resize (256, 64) keep-ratio")


def test_config_defaults_overrides_and_validation():
    from bench.config import ConfigError, flatten, resolve
    from tasks import get_task

    real, synth = get_task("ade20k-seg-linear").default_config(), get_task("synth-seg-linear").default_config()
    assert real.variant == "faithful" and real.iters == 40_000 and real.batch_size == 16 and real.max_val_images is None
    assert synth.variant == "fast" and synth.max_val_images is None
    assert get_task("synth-seg-ms").default_config().max_val_images == 32
    assert get_task("voc-seg-ms").default_config().max_val_images is None
    fast = resolve(real, {"variant": "fast", "fast_iters": 300})
    assert fast.variant == "fast" and fast.fast_iters == 300 and fast.iters == 40_000
    for bad in ({"variant": "slow"}, {"iters": 0}, {"fast_batch": 0}, {"holdout_frac": 1.0}, {"fast_stride_frac": 0},
                {"dropout": 1.0}, {"max_val_images": 0}, {"fast_iters": 0}, {"varient": "fast"}):
        with pytest.raises(ConfigError):
            resolve(real, bad)
    assert flatten(real)["variant"] == "faithful" and flatten(synth)["fast_lrs"] == list(synth.fast_lrs)
    src = "".join(p.read_text() for p in (Path(__file__).parents[1] / "tasks" / "segmentation").glob("*.py"))
    assert "os.environ" not in src and "BENCH_SEG" not in src


def test_tasks_are_registered_with_paper_rows():
    import subprocess

    from tasks import task_meta

    for name in ("ade20k-seg-linear", "ade20k-seg-ms", "voc-seg-linear", "voc-seg-ms", "synth-seg-linear",
                 "synth-seg-ms"):
        meta = task_meta(name)
        ms = name.endswith("-ms")
        assert meta.group == "segmentation" and meta.headline == "mIoU"
        assert meta.protocol == "dinov2-linear-seg" + ("-ms" if ms else "")
        assert all(meta.metric(m).higher_is_better and meta.metric(m).unit == "%" for m in ("mIoU", "mAcc", "aAcc"))
        assert meta.metric("mIoU_majority_baseline").role == "reference" and meta.metric("mIoU").role == "score"
        assert meta.paper_task == (None if name.startswith("synth") else name)
        assert meta.twin_of == (f"ade20k-seg-{'ms' if ms else 'linear'}" if name.startswith("synth") else None)
        assert meta.notes["engine"] == "mmsegmentation-1.2.2" and "variant" not in meta.notes
    assert "ADEChallengeData2016" in task_meta("ade20k-seg-ms").data.how_to_obtain
    code = ("import sys, tasks.segmentation; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'mmseg', 'mmcv'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# -------------------------------------------------------------------------------- end to end
def _synth_ready() -> bool:
    try:
        from bench.data.synth import ensure  # noqa: F401
        from bench.encoders import check_encoder_name

        check_encoder_name("vit-tiny")
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _synth_ready(), reason="needs bench.data.synth.ensure and the vit-tiny encoder")
def test_synthetic_segmentation_end_to_end():
    import mlflow

    from runners.benchmark import RunConfig, run_benchmark

    from bench.paths import tracking_uri

    results = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["synth-seg-linear", "synth-seg-ms"],
                                      progress=False, synth_preset="tiny"), out=open("/dev/null", "w"))
    assert [r.task for r in results] == ["synth-seg-linear", "synth-seg-ms"]
    client = mlflow.tracking.MlflowClient(tracking_uri())
    for r in results:
        m = {k: v.value for k, v in r.metrics.items()}
        assert 0 <= m["mIoU"] <= 100 and m["mIoU"] > m["mIoU_majority_baseline"], (r.task, m)
        assert r.params["protocol.variant"] == "fast" and r.params["train_aug"].startswith("none")
        assert r.metrics["mIoU_majority_baseline"].role == "reference" and r.metrics["mIoU"].unit == "%"
        assert r.breakdown and all(k.startswith("class:") for k in r.breakdown)
        assert {a.path for a in client.list_artifacts(r.run_id)} >= {"seg_examples.png", "seg_per_class.json"}
