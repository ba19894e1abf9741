"""Depth probes: metrics and crops by hand, bin decoding, SigLoss, loaders (written files in the exact
formats + the real samples in shared/fixtures-real), the bank against heads trained alone, bank
selection, the typed config and the metadata, and the synthetic tasks end to end."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.kitti import KITTIDepth, kb_crop_box
from bench.data.nyu import DepthInputTransform, NYUDepth, encoder_input_size, held_out_split
from bench.encoders.base import BlockOutput, Encoder, EncoderOutput, Preprocess
from bench.metrics import Metric
from bench.metrics.depth import (DepthEvalConfig, DepthMeter, compute_metrics, constant_predictions, crop_mask,
                                 eigen_crop_box, garg_crop_box, heldout_rmse, image_metrics)
from heads.bank import BankAdamW, ModuleBank, seeded, select_best
from heads.depth_bank import build_bank
from heads.depth import (BinSpec, DepthFeatures, LinearDepthHeads, TrainConfig, bins_to_depth, predict,
                         sigloss, train_bank)
from heads.dpt import DPTDepthHead, _FusedBinsDecode, fused_bins_decode

SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).parents[2] / "shared"))
FIXTURES = SHARED / "fixtures-real"


# --- metrics ---------------------------------------------------------------------------------------------

def test_metrics_match_hand_computation():
    gt = np.array([1.0, 2.0, 4.0])
    pred = np.array([1.0, 2.5, 2.0])
    m = compute_metrics(pred, gt)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 0.25 + 4.0) / 3))
    assert m["abs_rel"] == pytest.approx((0 + 0.5 / 2 + 2 / 4) / 3)
    assert m["sq_rel"] == pytest.approx((0 + 0.25 / 2 + 4 / 4) / 3)
    # max ratios: 1, 1.25, 2 -> 1.25 is not < 1.25; 1.25^2 = 1.5625; 1.25^3 = 1.953
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)
    assert m["log10"] == pytest.approx((0 + math.log10(2.5 / 2) + math.log10(2)) / 3)
    e = [0.0, math.log(1.25), math.log(0.5)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in e) / 3))
    mean = sum(e) / 3
    assert m["silog"] == pytest.approx(100 * math.sqrt(sum(x * x for x in e) / 3 - mean ** 2))
    perfect = compute_metrics(gt, gt)
    assert perfect["rmse"] == 0 and perfect["delta1"] == 1 and perfect["silog"] == 0


def test_metrics_are_per_image_then_averaged_and_respect_validity():
    cfg = DepthEvalConfig(min_depth=1e-3, max_depth=10.0, crop=None)
    meter = DepthMeter(cfg)
    # image 1: one valid pixel, error 1; the 0 (invalid) and 12 m (>= max) pixels are ignored
    gt1 = np.array([[2.0, 0.0, 12.0]])
    meter.update(np.array([[3.0, 5.0, 5.0]]), gt1)
    # image 2: three valid pixels, no error
    gt2 = np.array([[1.0, 2.0, 3.0]])
    meter.update(gt2.copy(), gt2)
    s = meter.summary()
    assert s["rmse"] == pytest.approx((1.0 + 0.0) / 2)  # pooled over pixels it would be sqrt(1/4) = 0.5 too...
    assert s["abs_rel"] == pytest.approx((0.5 + 0.0) / 2)  # ...but pooled abs_rel would be 0.5/4 = 0.125
    # predictions are clipped to [min, max] before the logs
    row = image_metrics(np.array([[0.0, 20.0]]), np.array([[1.0, 9.0]]), cfg)
    assert math.isfinite(row["rmse_log"]) and row["rmse"] == pytest.approx(math.sqrt(((1 - 1e-3) ** 2 + 1) / 2))
    # an image without valid pixels is skipped, not counted as 0
    meter.update(np.ones((1, 3)), np.zeros((1, 3)))
    assert meter.summary()["rmse"] == pytest.approx(0.5) and meter.n_images == 2


def test_eigen_crop_exact_ranges():
    assert eigen_crop_box(480, 640) == (45, 471, 41, 601)
    m = crop_mask(480, 640, "eigen")
    assert m.sum() == (471 - 45) * (601 - 41)
    assert m[45, 41] and m[470, 600] and not m[44, 41] and not m[45, 40] and not m[471, 300] and not m[300, 601]
    # other sizes: the same box scaled (training targets at a lower resolution)
    assert eigen_crop_box(120, 160) == (11, 118, 10, 150)


def test_garg_crop_exact_ranges():
    # int() truncation of the fractions of the (KB-cropped) ground-truth size, as the toolbox does
    assert garg_crop_box(352, 1216) == (143, 349, 43, 1172)
    assert garg_crop_box(375, 1242) == (153, 371, 44, 1197)
    m = crop_mask(352, 1216, "garg")
    assert m.sum() == (349 - 143) * (1172 - 43)
    assert m[143, 43] and m[348, 1171] and not m[142, 43] and not m[349, 43] and not m[200, 1172]
    # the 80 m cap: gt >= 80 is invalid for KITTI
    cfg = DepthEvalConfig(1e-3, 80.0, "garg")
    gt = np.full((352, 1216), 10.0)
    gt[200, 100] = 80.0
    pred = gt.copy()
    pred[200, 100] = 1.0
    assert image_metrics(pred, gt, cfg)["rmse"] == 0.0


# --- bins and loss -------------------------------------------------------------------------------------------

def test_uniform_bins_and_linear_decoding():
    spec = BinSpec(256, 1e-3, 10.0)
    c = spec.centers()
    assert c[0].item() == pytest.approx(1e-3) and c[-1].item() == pytest.approx(10.0)
    assert torch.allclose(c.diff(), torch.full((255,), (10.0 - 1e-3) / 255), atol=1e-6)
    # all logits <= 0: every bin gets weight 0.1 -> the mean of the centres
    d = bins_to_depth(torch.full((1, 256, 2, 2), -3.0), spec)
    assert d.shape == (1, 1, 2, 2) and torch.allclose(d, torch.full_like(d, (1e-3 + 10.0) / 2))
    # 3 bins at 1, 2, 3 m; logits (0.9, -1, 0): weights (1.0, 0.1, 0.1) / 1.2 -> 1.5 / 1.2 = 1.25 m
    small = BinSpec(3, 1.0, 3.0)
    logits = torch.tensor([0.9, -1.0, 0.0]).reshape(1, 3, 1, 1)
    assert bins_to_depth(logits, small).item() == pytest.approx(1.25)
    assert bins_to_depth(logits.reshape(1, 1, 3), small, dim=-1).item() == pytest.approx(1.25)
    # softmax variant: logits (0, 0, ln 2) -> p = (1/4, 1/4, 1/2) -> 2.25 m
    soft = BinSpec(3, 1.0, 3.0, norm="softmax")
    assert bins_to_depth(torch.tensor([0.0, 0.0, math.log(2)]).reshape(1, 3, 1, 1), soft).item() == pytest.approx(2.25)


def test_fused_decoding_equals_conv_then_bins_and_its_gradient():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 3, 4, dtype=torch.double, requires_grad=True)
    conv = torch.nn.Conv2d(5, 7, 1).double()
    spec = BinSpec(7, 1e-3, 10.0)
    assert torch.allclose(fused_bins_decode(h, conv, spec, chunk=5), bins_to_depth(conv(h), spec))
    w = conv.weight.detach().reshape(7, 5).requires_grad_()
    b = conv.bias.detach().clone().requires_grad_()
    centers = spec.centers().double()
    assert torch.autograd.gradcheck(lambda h, w, b: _FusedBinsDecode.apply(h, w, b, centers, 5), (h, w, b))


def test_sigloss_hand_example():
    # valid pixels: pred (1, e), gt (1, 1) -> g = (0, 1) (eps = 0); the gt = 0 pixel is ignored
    pred = torch.tensor([[[[1.0, math.e, 5.0]]]])
    gt = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    var = ((0 - 0.5) ** 2 + (1 - 0.5) ** 2) / (2 - 1)  # unbiased, as torch.var
    assert sigloss(pred, gt, eps=0.0).item() == pytest.approx(math.sqrt(var + 0.15 * 0.5 ** 2))
    assert sigloss(pred, gt, eps=0.0, warmup=True).item() == pytest.approx(math.sqrt(0.15 * 0.5 ** 2))
    # DINOv2's eps = 1e-3 inside both logs
    g = [math.log(1.001) - math.log(1.001), math.log(math.e + 1e-3) - math.log(1.001)]
    mean = sum(g) / 2
    expected = math.sqrt(sum((x - mean) ** 2 for x in g) + 0.15 * mean ** 2)
    assert sigloss(pred, gt).item() == pytest.approx(expected, rel=1e-6)
    # several heads at once (K, B, 1, H, W) = one loss per head
    stacked = torch.stack([pred, pred * 2])
    both = sigloss(stacked, gt, eps=0.0)
    assert both.shape == (2,) and both[0].item() == pytest.approx(sigloss(pred, gt, eps=0.0).item())
    assert both[1].item() == pytest.approx(sigloss(pred * 2, gt, eps=0.0).item(), rel=1e-6)


# --- loaders -----------------------------------------------------------------------------------------------

def _rgb(path: Path, size=(64, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _png16(path: Path, arr: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint16)).save(path)
    back = np.asarray(Image.open(path))
    assert back.dtype == np.uint16 and (back == arr).all()


def write_nyu(root: Path, split_names=("nyu_train.txt", "nyu_test.txt"), prefixes=("sync", "official_splits/test")):
    depth = np.zeros((48, 64), dtype=np.uint16)
    depth[10, 20] = 2500  # 2.5 m
    depth[11, 20] = 10000  # 10 m
    lines = {"train": [], "test": []}
    for split, prefix, scenes in (("train", prefixes[0], ("kitchen_0001a", "office_0002")),
                                  ("test", prefixes[1], ("bathroom",))):
        for s, scene in enumerate(scenes):
            for k in range(2):
                _rgb(root / prefix / scene / f"rgb_{k:05d}.jpg", seed=s * 10 + k)
                _png16(root / prefix / scene / f"sync_depth_{k:05d}.png", depth)
                lead = "/" if split == "train" else ""  # BTS: train lines start with "/", test lines do not
                lines[split].append(f"{lead}{scene}/rgb_{k:05d}.jpg {lead}{scene}/sync_depth_{k:05d}.png 518.8579")
    (root / split_names[0]).parent.mkdir(parents=True, exist_ok=True)
    (root / split_names[0]).write_text("\n".join(lines["train"]) + "\n")
    (root / split_names[1]).write_text("\n".join(lines["test"]) + "\n")
    return root


def test_nyu_loader_on_written_bts_layout(tmp_path, counting_encoder):
    root = write_nyu(tmp_path / "nyu")
    train, test = NYUDepth(root, "train"), NYUDepth(root, "test")
    assert len(train) == 4 and len(test) == 2
    assert train.samples[0].image == root / "sync" / "kitchen_0001a" / "rgb_00000.jpg"
    assert test.samples[0].depth == root / "official_splits" / "test" / "bathroom" / "sync_depth_00000.png"
    assert train.samples[0].focal == pytest.approx(518.8579)
    assert sorted(set(train.groups)) == ["kitchen_0001a", "office_0002"]
    d = train.depth(0)
    assert d.dtype == np.float32 and d.shape == (48, 64)
    assert d[10, 20] == pytest.approx(2.5) and d[11, 20] == pytest.approx(10.0) and d[0, 0] == 0.0
    tf = DepthInputTransform(counting_encoder.preprocess, encoder_input_size(48, 64, 32, 8))
    x, i = train.with_transform(tf)[1]
    assert i == 1 and x.shape == (3, 32, 40)
    assert train.identity() != test.identity()


def test_nyu_loader_finds_bts_split_names_and_toolbox_layout(tmp_path):
    root = write_nyu(tmp_path / "bts", ("train_test_inputs/nyudepthv2_train_files_with_gt.txt",
                                        "train_test_inputs/nyudepthv2_test_files_with_gt.txt"))
    assert len(NYUDepth(root, "train")) == 4
    flat = write_nyu(tmp_path / "toolbox", prefixes=("", ""))  # scene folders directly under root
    assert NYUDepth(flat, "test").samples[0].image == flat / "bathroom" / "rgb_00000.jpg"
    with pytest.raises(FileNotFoundError, match="split file"):
        NYUDepth(tmp_path, "train")


DRIVE = "2011_09_26_drive_0001_sync"


def write_kitti(root: Path, size=(1242, 375)):
    w, h = size
    lines = []
    for k, sub in ((5, "train"), (6, "val")):
        img = f"2011_09_26/{DRIVE}/image_02/data/{k:010d}.png"
        gt = f"{DRIVE}/proj_depth/groundtruth/image_02/{k:010d}.png"
        _rgb(root / img, size=(w, h), seed=k)
        depth = np.zeros((h, w), dtype=np.uint16)
        depth[h - 352, (w - 1216) // 2] = 256 * 12  # the KB crop's top-left pixel: 12 m
        depth[h - 1, (w - 1216) // 2 + 1215] = 256 * 90  # its bottom-right: 90 m (beyond the 80 m cap)
        depth[0, 0] = 256 * 5  # outside the KB crop
        _png16(root / "data_depth_annotated" / sub / gt, depth)  # the archive's own train/ val/ folders
        lines.append(f"{img} {gt} 721.5377")
    lines.append(f"2011_09_26/{DRIVE}/image_02/data/0000000007.png None 721.5377")  # no ground truth: skipped
    (root / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return root


def test_kitti_loader_on_written_files(tmp_path, counting_encoder):
    root = write_kitti(tmp_path / "kitti")
    ds = KITTIDepth(root, "test")
    assert len(ds) == 2 and ds.groups == [DRIVE, DRIVE]
    assert kb_crop_box(1242, 375) == (13, 23, 1229, 375)
    d = ds.depth(0)
    assert d.shape == (352, 1216)
    assert d[0, 0] == pytest.approx(12.0) and d[-1, -1] == pytest.approx(90.0)
    assert (d > 0).sum() == 2  # the pixel outside the crop is gone
    assert ds.image(0).size == (1216, 352)
    size = encoder_input_size(352, 1216, 32, 8)
    assert size == (32, 112)
    x, _ = ds.with_transform(DepthInputTransform(counting_encoder.preprocess, size))[0]
    assert x.shape == (3, 32, 112)
    with pytest.raises(FileNotFoundError, match="split file"):
        KITTIDepth(root, "train")


def test_encoder_input_size():
    assert encoder_input_size(480, 640, 224, 16) == (224, 304)  # 298.7 -> 19 patches
    assert encoder_input_size(480, 640, 224, 14) == (224, 294)  # 298.7 -> 21 patches of 14
    assert encoder_input_size(352, 1216, 224, 16) == (224, 768)
    assert encoder_input_size(640, 480, 224, 16) == (304, 224)  # portrait


def test_held_out_split_keeps_groups_whole():
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2
    tr, va = held_out_split(groups, 0.25, seed=0)
    assert sorted(tr + va) == list(range(10)) and va
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    assert held_out_split(groups, 0.25, seed=0) == (tr, va)
    tr1, va1 = held_out_split(["x"] * 5, 0.2, seed=0)  # one group: single frames
    assert len(va1) == 1 and len(tr1) == 4


@pytest.mark.skipif(not (FIXTURES / "nyu").is_dir(), reason="shared/fixtures-real not present")
def test_nyu_loader_on_real_sample(tmp_path):
    split = tmp_path / "nyu_test.txt"
    split.write_text("bookstore_0001d/rgb_00001.jpg bookstore_0001d/sync_depth_00001.png 518.8579\n")
    ds = NYUDepth(FIXTURES / "nyu", "test", split_file=split)
    d = ds.depth(0)
    raw = np.asarray(Image.open(FIXTURES / "nyu" / "bookstore_0001d" / "sync_depth_00001.png"))
    assert d.shape == raw.shape == (120, 160)
    assert np.allclose(d, raw / 1000.0) and d.max() <= 10.0 and (d == 0).any() and (d > 0).mean() > 0.5
    assert ds.image_size() == (120, 160) and ds.groups == ["bookstore_0001d"]


@pytest.mark.skipif(not (FIXTURES / "kitti").is_dir(), reason="shared/fixtures-real not present")
def test_kitti_loader_on_real_sample(tmp_path):
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(f"2011_09_26/{DRIVE}/image_02/data/0000000005.png "
                     f"{DRIVE}/proj_depth/groundtruth/image_02/0000000005.png 721.5377\n")
    ds = KITTIDepth(FIXTURES / "kitti", "test", split_file=split)
    d = ds.depth(0)
    raw = np.asarray(Image.open(FIXTURES / "kitti" / "data_depth_annotated" / DRIVE / "proj_depth" / "groundtruth" /
                                "image_02" / "0000000005.png"))
    l, t, r, b = kb_crop_box(raw.shape[1], raw.shape[0])
    assert d.shape == (352, 1216) and np.allclose(d, raw[t:b, l:r] / 256.0)
    valid = d[crop_mask(352, 1216, "garg") & (d > 1e-3) & (d < 80)]
    assert valid.size > 10_000 and 1.0 < valid.min() and valid.max() < 85
    assert ds.image(0).size == (1216, 352)


# --- the bank ------------------------------------------------------------------------------------------------

def _tiny_features(n=6, h=3, w=4, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(300, 5000, (n, 12, 16), generator=g, dtype=torch.int32)
    targets[:, 0, 0] = 0  # an invalid pixel
    return DepthFeatures(torch.randn(n, 4, h, w, d, generator=g).half(), torch.randn(n, 4, d, generator=g).half(),
                         targets, 1000.0)


def test_linear_bank_equals_heads_trained_alone():
    data = _tiny_features()
    cfg = TrainConfig(iterations=6, batch_size=2, warmup_fraction=0.3, sigloss_warmup=2, grad_clip=0.05)
    bins = BinSpec(16, 1e-3, 10.0)
    lrs = [1e-3, 1e-2, 1e-1]
    banks = [LinearDepthHeads(8, 1, True, bins, upsample=2, k=3, seed=3),
             LinearDepthHeads(8, 4, True, bins, upsample=2, k=3, seed=3)]
    train_bank(banks, [lrs, lrs], data, cfg, seed=5)
    p, c, _ = data.batch(torch.arange(6))
    for bank in banks:
        for j, lr in enumerate(lrs):
            alone = LinearDepthHeads(8, bank.n_layers, True, bins, upsample=2, k=1, seed=3)
            train_bank([alone], [[lr]], data, cfg, seed=5)
            member = bank.member(j).eval()
            for name, param in alone.named_parameters():
                assert torch.allclose(param, getattr(member, name), rtol=1e-5, atol=1e-6), name
            assert torch.allclose(alone.bn_var_patch, member.bn_var_patch)
            with torch.no_grad():
                assert torch.allclose(alone(p, c), member(p, c), rtol=1e-5, atol=1e-6)
    # the members did move, and differently
    assert not torch.allclose(banks[1].w_patch[0], banks[1].w_patch[2])


def test_dpt_bank_equals_heads_trained_alone():
    data = _tiny_features(n=4, h=4, w=4, d=16)
    cfg = TrainConfig(iterations=3, batch_size=2)
    bins = BinSpec(8, 1e-3, 10.0)

    def dpt():
        with seeded(11):
            return DPTDepthHead(16, bins, channels=8)

    bank = ModuleBank([dpt(), dpt()])
    train_bank([bank], [[1e-3, 1e-2]], data, cfg, seed=1)
    for j, lr in enumerate([1e-3, 1e-2]):
        alone = ModuleBank([dpt()])
        train_bank([alone], [[lr]], data, cfg, seed=1)
        for (name, a), b in zip(alone.heads[0].named_parameters(), bank.heads[j].parameters()):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


def test_bank_adamw_matches_torch_adamw():
    torch.manual_seed(0)
    p1 = torch.nn.Parameter(torch.randn(2, 5))
    p2 = torch.nn.Parameter(p1.detach().clone())
    ref = torch.optim.AdamW([p2], lr=3e-2, weight_decay=1e-2)
    ours = BankAdamW([(p1, torch.arange(2), torch.full((2, 1), 3e-2))], TrainConfig(grad_clip=None), 2)
    for step in range(4):
        g = torch.randn(2, 5)
        p1.grad, p2.grad = g.clone(), g.clone()
        ours.step(1.0)
        ref.step()
    assert torch.allclose(p1, p2, atol=1e-6)


def test_diverged_head_does_not_disturb_the_others():
    data = _tiny_features()
    cfg = TrainConfig(iterations=4, batch_size=2)
    bins = BinSpec(16, 1e-3, 10.0)
    bank = LinearDepthHeads(8, 4, True, bins, upsample=1, k=2, seed=0)
    with torch.no_grad():
        bank.w_patch[1].fill_(float("nan"))
    res = train_bank([bank], [[1e-2, 1e-2]], data, cfg)
    alone = LinearDepthHeads(8, 4, True, bins, upsample=1, k=1, seed=0)
    train_bank([alone], [[1e-2]], data, cfg)
    assert res.diverged == [False, True]
    assert torch.allclose(bank.member(0).w_patch, alone.w_patch, atol=1e-6)


def test_heldout_rmse_by_hand_and_the_constant_floor():
    ev = DepthEvalConfig(1e-3, 10.0, None)
    targets = torch.tensor([[[1000, 2000], [0, 4000]], [[3000, 3000], [3000, 12000]]], dtype=torch.int32)  # mm
    pred = torch.tensor([[[[1.0, 2.0], [7.0, 6.0]], [[3.0, 3.0], [4.0, 3.0]]],  # head 0
                         [[[2.0, 2.0], [2.0, 2.0]], [[20.0, 3.0], [3.0, 3.0]]]])  # head 1 (20 m clipped to 10)
    out = heldout_rmse([(torch.arange(2), pred[:, :, None])], targets, 1000.0, ev, n_heads=2)
    # image 1: valid 1, 2, 4 m (0 invalid); image 2: 3, 3, 3 m (12 m >= max)
    h0 = [math.sqrt((0 + 0 + 4) / 3), math.sqrt((0 + 0 + 1) / 3)]
    h1 = [math.sqrt((1 + 0 + 4) / 3), math.sqrt((49 + 0 + 0) / 3)]
    assert out == pytest.approx([sum(h0) / 2, sum(h1) / 2], rel=1e-6)
    # a non-finite head is never a candidate; batches in several pieces give the same numbers
    bad = pred.clone()
    bad[1, 0, 0, 0] = float("nan")
    pieces = [(torch.tensor([0]), bad[:, :1, None]), (torch.tensor([1]), bad[:, 1:, None])]
    assert heldout_rmse(pieces, targets, 1000.0, ev, n_heads=2) == [pytest.approx(out[0], rel=1e-6), math.inf]
    const = heldout_rmse(constant_predictions(3.0, 2, (2, 2), batch_size=1), targets, 1000.0, ev, n_heads=1)
    assert const == pytest.approx([(math.sqrt((4 + 1 + 1) / 3) + 0.0) / 2])
    assert math.isnan(heldout_rmse([(torch.arange(2), pred[:, :, None])], torch.zeros_like(targets), 1000.0, ev, 2)[0])


def test_selection_follows_the_metric_and_never_picks_diverged_or_nan():
    lower, higher = Metric("val_rmse", False), Metric("mIoU", True)
    assert select_best([0.5, 0.3, 0.4], lower) == 1
    assert select_best([0.5, 0.3, 0.4], lower, excluded=[False, True, False]) == 2
    assert select_best([float("nan"), 0.6, math.inf], lower) == 1
    assert select_best([10.0, float("nan"), 30.0, 30.0], higher) == 2  # first on ties
    with pytest.raises(RuntimeError, match="every one diverged"):
        select_best([math.inf, float("nan")], lower)
    with pytest.raises(RuntimeError):
        select_best([0.1], lower, excluded=[True], fallback=0)
    # nothing scored (nothing held out): the protocol's fallback, unless it diverged
    assert select_best([], higher, fallback=2) == 2 and select_best([float("nan")] * 3, higher, fallback=1) == 1
    assert select_best([math.inf, math.inf], lower, excluded=[True, False], fallback=1) == 1


def test_bank_assembly_names_members_and_hands_out_heads():
    bins = BinSpec(8, 1e-3, 10.0)
    bank = build_bank("linear", 8, bins, [1e-3, 1e-2], linear_upsample=1, seed=3)
    assert [m.name for m in bank.members] == ["linear-last-cls-lr0.001", "linear-last-cls-lr0.01",
                                              "linear-last4-cls-lr0.001", "linear-last4-cls-lr0.01"]
    assert len(bank.banks) == 2 and bank.lrs == [[1e-3, 1e-2]] * 2
    head = bank.head(3)
    assert head.k == 1 and head.n_layers == 4 and torch.equal(head.w_patch[0], bank.banks[1].w_patch[1])
    # every member starts from the seed, so members differ only by what training does to them
    assert torch.equal(bank.banks[0].w_patch[0], bank.banks[0].w_patch[1])
    dpt = build_bank("dpt", 16, bins, [1e-3, 3e-3], dpt_channels=8, use_cls=False, seed=1)
    assert [(m.name, m.layers) for m in dpt.members] == [("dpt-c8-lr0.001", "last4"), ("dpt-c8-lr0.003", "last4")]
    assert dpt.head(1) is dpt.banks[0].heads[1]
    for a, b in zip(dpt.head(0).parameters(), dpt.head(1).parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="linear \\| dpt"):
        build_bank("conv", 8, bins, [1e-3])
    # the bank's members predict what the stand-alone heads predict
    data = _tiny_features(n=2, d=8)
    (_, both), (_, one) = next(predict(bank.banks[1], data, 2)), next(predict(head, data, 2))
    assert torch.allclose(both[1], one[0])


def test_config_defaults_overrides_and_validation():
    from bench.config import ConfigError, flatten, resolve
    from tasks import get_task

    real = get_task("nyud-depth-linear").default_config()
    assert real.max_train_images == 0 and real.train.iterations == 8000 and real.train.batch_size == 16
    assert real.flip_tta and real.max_depth == 10.0 and real.threads == 0 and real.linear_upsample == 4
    assert get_task("kitti-depth-dpt").default_config().max_depth == 80.0
    synth = get_task("synth-depth-linear").default_config()
    assert (synth.train.iterations, synth.train.batch_size, synth.train.target_stride) == (150, 4, 4)
    assert synth.lrs == (1e-3, 3e-3, 1e-2, 3e-2) and synth.linear_upsample == 1 and not synth.flip_tta
    dpt = get_task("synth-depth-dpt").default_config()
    assert (dpt.train.iterations, dpt.dpt_channels, dpt.dpt_head_upsample, dpt.lrs) == (60, 32, False, (1e-3, 3e-3))
    over = resolve(real, {"train.iterations": 200, "max_train_images": 4000, "threads": 2, "lrs": [1e-3]})
    assert (over.train.iterations, over.max_train_images, over.threads, over.lrs) == (200, 4000, 2, (1e-3,))
    for bad in ({"train.iterations": 0}, {"train.batch_size": 0}, {"val_fraction": 1.5}, {"threads": -1},
                {"layer_choices": ["last2"]}, {"min_depth": 20.0}, {"train.iteration": 3}):
        with pytest.raises(ConfigError):
            resolve(real, bad)
    flat = flatten(real)
    assert flat["max_train_images"] == 0 and flat["train.iterations"] == 8000 and "threads" in flat


def test_metadata_twins_units_roles_and_nothing_heavy():
    import subprocess
    import sys

    from tasks import task_meta

    code = "import sys, tasks.depth; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    src = "".join(p.read_text() for p in (Path(__file__).parents[1] / "tasks" / "depth").glob("*.py"))
    assert "os.environ" not in src and "BENCH_DEPTH" not in src
    for name in ("nyud-depth-linear", "nyud-depth-dpt", "kitti-depth-linear", "kitti-depth-dpt"):
        meta = task_meta(name)
        assert meta.paper_task == name and meta.twin_of is None and not meta.synthetic
        assert meta.protocol == f"dinov2-depth-{name.rsplit('-', 1)[1]}" and meta.headline == "rmse"
    for head in ("linear", "dpt"):
        meta = task_meta(f"synth-depth-{head}")
        assert meta.synthetic and meta.twin_of == f"nyud-depth-{head}" and meta.paper_task is None
        assert meta.notes["eval_crop"].startswith("eigen") and meta.notes["head"] == head
    meta = task_meta("kitti-depth-linear")
    assert meta.notes["eval_crop"] == "kb352x1216+garg" and meta.notes["loss"].startswith("sigloss")
    units = {m.name: (m.unit, m.role, m.higher_is_better) for m in meta.metrics}
    assert units["rmse"] == ("m", "score", False) and units["delta1"] == ("", "score", True)
    assert units["abs_rel"][0] == "" and units["val_rmse"] == ("m", "diagnostic", False)
    assert units["rmse_constant_baseline"][1] == units["val_rmse_constant_baseline"][1] == "reference"


def test_head_threads_policy_restores_the_setting():
    from bench.runtime import default_head_threads, head_threads

    before = torch.get_num_threads()
    with head_threads("cpu", 1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with head_threads(torch.device("cpu")) as n:
        assert n == default_head_threads() and torch.get_num_threads() == n
    with head_threads("cuda") as n:  # GPUs are left alone
        assert n is None and torch.get_num_threads() == before
    assert torch.get_num_threads() == before


# --- end to end -----------------------------------------------------------------------------------------------

class PosColourEncoder(Encoder):
    """Patch features = sin/cos of the patch position + a squashed projection of its mean colour: what
    a depth probe needs to learn a room's layout (random-init ViT features carry almost no decodable
    position, so the layout is out of reach of a linear probe on them)."""

    backend = "test"

    def __init__(self, dim: int = 96, patch: int = 16, resolution: int = 224, blocks: int = 4):
        super().__init__()
        self.name, self.embed_dim, self.num_blocks = "pos-colour", dim, blocks
        self.preprocess = Preprocess(resolution, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), patch, "bilinear")
        self.weights_id, self.random_init = "test-fixed", True
        self.proj = torch.nn.Parameter(torch.randn(blocks, 3, dim // 2, generator=torch.Generator().manual_seed(0)))

    def _forward(self, images, n_last_blocks):
        col = torch.nn.functional.avg_pool2d(images, self.preprocess.patch_size).permute(0, 2, 3, 1)
        b, h, w, _ = col.shape
        ys = torch.linspace(0, 1, h)[:, None, None].expand(h, w, 1)
        xs = torch.linspace(0, 1, w)[None, :, None].expand(h, w, 1)
        f = torch.arange(1, self.embed_dim // 8 + 1) * math.pi / 2
        pos = torch.cat([torch.sin(ys * f), torch.cos(ys * f), torch.sin(xs * f), torch.cos(xs * f)], -1)
        blocks = []
        for i in range(self.num_blocks - n_last_blocks, self.num_blocks):
            x = torch.cat([pos.expand(b, h, w, -1), torch.tanh(col @ self.proj[i])], -1)
            blocks.append(BlockOutput(x.mean((1, 2)), x))
        return EncoderOutput(blocks[-1].cls, blocks[-1].patches, blocks)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("depth_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("BENCH_DATA", raising=False)
        yield home


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(shared_home))
    monkeypatch.setenv("BENCH_SYNTH_PRESET", "tiny")
    return shared_home


def _synth_or_skip():
    try:
        from bench.data.synth import ensure  # noqa: F401
    except ImportError:  # pragma: no cover
        pytest.skip("bench.data.synth not available")


@pytest.mark.slow
def test_synthetic_task_runs_end_to_end(home):
    """A synthetic task through the runner with vit-tiny (a short schedule, set as `--set` would: this
    checks the plumbing — metrics with directions, units and roles, params, the bank record, the
    picture). The DPT task runs the same probe, below."""
    _synth_or_skip()
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from runners.benchmark import RunConfig, run_benchmark

    (r,) = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["synth-depth-linear"], progress=False,
                                   synth_preset="tiny", task_config={"synth-depth-linear": {"train.iterations": 12}}),
                         out=open(os.devnull, "w"))
    m = {k: v.value for k, v in r.metrics.items()}
    assert r.headline == "rmse" and not r.metrics["rmse"].higher_is_better and r.metrics["rmse"].unit == "m"
    assert r.metrics["delta1"].higher_is_better and not r.metrics["rmse_constant_baseline"].higher_is_better
    assert r.metrics["rmse_constant_baseline"].role == "reference" and r.metrics["val_rmse"].role == "diagnostic"
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["rmse_constant_baseline"] > 0 and 0 <= m["delta1"] <= 1
    p = r.params
    assert p["train_aug"] == "none (cached features)" and p["input_hw"] == "224x304" and p["patch_grid"] == "14x19"
    assert p["protocol.train.iterations"] == "12" and int(p["n_val"]) > 0 and int(p["n_train"]) > int(p["n_val"])
    assert p["protocol.loss"].startswith("sigloss") and p["protocol.eval_crop"].startswith("eigen")
    assert p["bank_size"] == "8" and sum(k.startswith("bank.") for k in p) == 8
    client = MlflowClient(tracking_uri())
    assert {"depth_examples.png", "depth_bank.json"} <= {a.path for a in client.list_artifacts(r.run_id)}
    bank = json.loads(Path(client.download_artifacts(r.run_id, "depth_bank.json")).read_text())
    assert len(bank["heads"]) == 8 and bank["selected"] == p["best_head"]
    assert min(h["val_rmse"] for h in bank["heads"]) == pytest.approx(m["val_rmse"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["synth-depth-linear", "synth-depth-dpt"])
def test_trained_head_beats_the_constant_predictor(home, tmp_path, task_name):
    """The full synthetic protocol (default schedule) on features that carry layout information: the
    selected head must beat the train-set mean depth on the test split. (With random-init vit-tiny
    features a linear probe cannot learn the layout — see docs/depth.md.)"""
    _synth_or_skip()
    from tests.conftest import run_task

    result, _ = run_task(task_name, PosColourEncoder(), artifacts_dir=tmp_path / "artifacts", batch_size=16)
    m = result.metrics
    assert m["rmse"] < m["rmse_constant_baseline"], m
    assert (tmp_path / "artifacts" / "depth_examples.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["nyud-depth-linear", "kitti-depth-linear"])
def test_real_task_pipeline_on_written_files(tmp_path, monkeypatch, task_name):
    """The real-data configuration (flip TTA, x4 upsampling, KB/Garg crops, full-resolution targets) on
    small files written in the exact layouts; two iterations (config overrides, as `--set`), checking
    the wiring, not the numbers."""
    from bench.config import resolve
    from bench.context import EvalContext
    from bench.features import FeatureCache
    from tasks import get_task

    nyu = write_nyu(tmp_path / "nyu")
    kitti = write_kitti(tmp_path / "kitti")
    (kitti / "eigen_train_files_with_gt.txt").write_text((kitti / "eigen_test_files_with_gt.txt").read_text())
    monkeypatch.setenv("BENCH_NYU", str(nyu))
    monkeypatch.setenv("BENCH_KITTI", str(kitti))
    task = get_task(task_name)
    meta = task.meta
    assert meta.paper_task == task_name and meta.group == "depth" and meta.headline == "rmse"
    cfg = resolve(task.default_config(), {"train.iterations": 2, "train.batch_size": 2})
    assert cfg.flip_tta is True and cfg.linear_upsample == 4 and cfg.max_train_images == 0
    enc = PosColourEncoder(dim=32)
    ctx = EvalContext(enc, torch.device("cpu"), 0, FeatureCache(tmp_path / "cache"), root=meta.data.prepare(),
                      batch_size=4, progress=False, artifacts_dir=tmp_path / "artifacts")
    m = task.run(ctx, cfg).metrics
    assert set(m) == {x.name for x in meta.metrics}
    p = ctx.params
    assert p["bank_size"] == 8 and p["n_train_used"] == p["n_train_listed"]  # every frame (no subset by default)
    if task_name.startswith("nyu"):
        assert p["frame_hw"] == "48x64" and p["input_hw"] == "224x304" and math.isfinite(m["rmse"])
        assert m["rmse"] > 0 and p["n_test_evaluated"] == 2
    else:  # the written KITTI frames have no valid pixel inside the Garg crop: nothing to score
        assert p["frame_hw"] == "352x1216" and p["input_hw"] == "224x768" and p["n_test_evaluated"] == 0
    assert (tmp_path / "artifacts" / "depth_bank.json").exists()
