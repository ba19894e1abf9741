"""vit-tiny-synth: DINO self-distillation on the synthetic training images (bench.pretrain).

Loss and centre pinned against hand computation; crops stay inside the images; only training scenes
are read; a short run through the real loop lowers the loss without collapsing, resumes to the same
weights after an interruption, and the runner plans it like a +sb checkpoint.
"""
from __future__ import annotations

import math

import pytest
import torch

from bench.pretrain.recipe import RECIPES

TEST_RECIPE = RECIPES["vit-tiny-synth"].with_overrides(
    synth_preset="tiny", steps=16, batch_size=8, global_size=32, local_size=16, n_local=2, out_dim=64, hidden_dim=64,
    bottleneck_dim=32, warmup_steps=2, warmup_teacher_temp_steps=4, freeze_last_layer_steps=2, save_every=8, threads=1,
    mae_size=32, dec_dim=32, dec_depth=1)


def test_dino_loss_and_centre_by_hand():
    from bench.pretrain.dino import DINOLoss

    loss_fn = DINOLoss(out_dim=2, n_crops=2, student_temp=0.5, center_momentum=0.9)
    loss_fn.center.fill_(0.0)
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # crop 1, crop 2 (batch of 1)
    t = torch.tensor([[2.0, 0.0], [0.0, 0.0]])  # teacher on the two global crops
    got = loss_fn(s, t, teacher_temp=1.0)
    p_t1 = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    p_t2 = [0.5, 0.5]
    log_s1 = [2 - math.log(math.exp(2) + 1), -math.log(math.exp(2) + 1)]  # log_softmax([1,0]/0.5)
    log_s2 = log_s1[::-1]
    # pairs (teacher 1, student 2) and (teacher 2, student 1): never the same crop
    want = (-(p_t1[0] * log_s2[0] + p_t1[1] * log_s2[1]) - (p_t2[0] * log_s1[0] + p_t2[1] * log_s1[1])) / 2
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert loss_fn.center[0].tolist() == pytest.approx([0.1 * 1.0, 0.0])  # 0.9 * 0 + 0.1 * mean(t)


def test_cosine_schedule_and_ema():
    from bench.pretrain.dino import cosine, ema_update

    assert cosine(0, 10, 1.0, 0.0, warmup=2) == 0.0 and cosine(1, 10, 1.0, 0.0, warmup=2) == 0.5
    assert cosine(2, 10, 1.0, 0.0, warmup=2) == 1.0 and cosine(10, 10, 1.0, 0.0, warmup=2) == pytest.approx(0.0)
    a, b = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    a.weight.data.fill_(1.0), b.weight.data.fill_(3.0)
    ema_update(a, b, 0.75)
    assert a.weight.item() == pytest.approx(1.5)


def test_unknown_objective_is_refused_with_suggestions():
    with pytest.raises(ValueError, match="simclr\\+mae"):
        TEST_RECIPE.with_overrides(objective="simclr+ma")


def test_command_line_overrides_are_typed():
    """`--set` values arrive as strings: "false" must switch a boolean off (bool("false") is True)."""
    r = TEST_RECIPE.with_overrides(mae_norm_pix="false", steps="7", mask_ratio="0.5")
    assert r.mae_norm_pix is False and r.steps == 7 and r.mask_ratio == 0.5
    assert TEST_RECIPE.with_overrides(mae_norm_pix="True").mae_norm_pix is True
    assert r.hash() != TEST_RECIPE.with_overrides(mae_norm_pix="false", steps="7").hash()
    with pytest.raises(ValueError, match="true or false"):
        TEST_RECIPE.with_overrides(mae_norm_pix="nope")


def test_raw_pixel_reconstruction_target_keeps_brightness():
    from bench.pretrain.mae import mae_loss

    images = torch.zeros(1, 3, 4, 4)
    images[..., :2, :] = 2.0  # four 2x2 patches, two flat bright ones and two flat dark ones
    keep = torch.tensor([[0]])  # patch 0 visible, patches 1-3 masked
    zero = torch.zeros(1, 4, 12)
    assert mae_loss(zero, images, keep, 2, norm_pix=True).item() == pytest.approx(0.0)  # flat patches normalise to 0
    assert mae_loss(zero, images, keep, 2, norm_pix=False).item() == pytest.approx(4.0 / 3)  # one bright masked patch


def test_crops_are_inside_each_image():
    from bench.pretrain.data import MultiCrop, _boxes

    torch.manual_seed(0)
    sizes = torch.tensor([[128.0, 171.0], [171.0, 128.0], [40.0, 60.0]])
    for _ in range(20):
        b = _boxes(sizes, (0.05, 1.0))
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= sizes[:, 1] + 1e-4).all() and (b[:, 3] <= sizes[:, 0] + 1e-4).all()
    canvas = torch.zeros(3, 3, 171, 171, dtype=torch.uint8)
    canvas[:, :, :40, :60] = 255  # image 3 is white where valid; crops must never see the black padding
    views = MultiCrop(TEST_RECIPE)(canvas[2:], sizes[2:])
    assert [tuple(v.shape) for v in views] == [(1, 3, 32, 32)] * 2 + [(1, 3, 16, 16)] * 2


@pytest.fixture(scope="module")
def synth_tiny(tmp_path_factory):
    from bench.data.synth import ensure

    return ensure("tiny", root=tmp_path_factory.mktemp("synth") / "synth-tiny", progress=False)


def test_only_training_scenes_are_read(synth_tiny):
    import json

    from bench.pretrain.data import data_hash, training_files

    files = training_files(synth_tiny, ("scenes", "cls"))
    val = {p.name for p in (synth_tiny / "scenes").iterdir()
           if (p / "scene.json").is_file() and json.loads((p / "scene.json").read_text())["split"] != "train"}
    assert val and not [f for f in files if f.parent.parent.name in val]
    assert all("/cls/train/" in f.as_posix() for f in files if "/cls/" in f.as_posix())
    assert data_hash(synth_tiny, files) != data_hash(synth_tiny, files[:-1])


def test_pretraining_learns_and_resumes_to_the_same_weights(synth_tiny, tmp_path, monkeypatch):
    import json

    from safetensors.torch import load_file

    import bench.pretrain.trainer as tr

    ref = tr.pretrain(TEST_RECIPE, root=synth_tiny, out=tmp_path / "ref", progress=False, track=False)
    log = json.loads((ref.parent / "pretrain_log.json").read_text())
    losses = [h["loss"] for h in log["history"]]
    assert len(losses) == 16 and sum(losses[-4:]) < sum(losses[:4])  # it learns
    last = log["history"][-1]
    if "teacher_batch_entropy" in last:  # dino: no collapse onto one prototype
        assert last["teacher_batch_entropy"] > 1.0
    if "positive_cosine" in last:  # simclr: positives closer than the rest of the batch
        assert last["positive_cosine"] > last["negative_cosine"]
    if TEST_RECIPE.objective == "simclr+mae":  # the reconstruction term is trained too, and falls
        rec = [h["mae_loss"] for h in log["history"]]
        assert sum(rec[-4:]) < sum(rec[:4])
    assert tr.read_metadata(ref)["recipe_hash"] == TEST_RECIPE.hash()

    calls = {"n": 0}
    real = tr.cosine  # called 4 times per step (lr, weight decay, teacher temperature, momentum)

    def dies_in_step_11(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4 * 11 + 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "cosine", dies_in_step_11)
    with pytest.raises(KeyboardInterrupt):
        tr.pretrain(TEST_RECIPE, root=synth_tiny, out=tmp_path / "cut", progress=False, track=False)
    assert (tmp_path / "cut" / "pretrain_state.pt").is_file()  # saved at step 8
    monkeypatch.setattr(tr, "cosine", real)
    again = tr.pretrain(TEST_RECIPE, root=synth_tiny, out=tmp_path / "cut", progress=False, track=False)
    a, b = load_file(str(ref)), load_file(str(again))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "cut" / "pretrain_state.pt").exists()


def test_runner_plans_pretraining_and_the_zoo_loads_it(synth_tiny, monkeypatch):
    from bench.encoders import encoder_card, encoder_prerequisite, load_encoder
    from bench.errors import NotTrainedError
    from bench.pretrain import recipe as rec

    monkeypatch.setitem(rec.RECIPES, "vit-tiny-synth", TEST_RECIPE)
    assert "SELF-PRETRAINED ON SYNTHETIC SCENES" in encoder_card("vit-tiny-synth").description
    with pytest.raises(NotTrainedError, match="bench pretrain vit-tiny-synth"):
        load_encoder("vit-tiny-synth")
    step = encoder_prerequisite("vit-tiny-synth", progress=False)
    assert step is not None and step.ready and "self-pretrained on synthetic scenes" in step.action
    assert step.estimate_seconds > 0
    sb = encoder_prerequisite("vit-tiny-synth+sb", progress=False)
    assert sb.action.startswith("pretrain vit-tiny-synth") and "SpatialBoost" in sb.action
    monkeypatch.setattr("bench.data.synth.ensure", lambda *a, **k: synth_tiny)
    step.run()
    assert encoder_prerequisite("vit-tiny-synth") is None
    enc = load_encoder("vit-tiny-synth")
    base = load_encoder("vit-tiny")
    assert enc.name == "vit-tiny-synth" and not enc.random_init and enc.weights_id != base.weights_id
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert not torch.equal(enc(x).patches, base(x).patches)


# ---- multi-view objectives (bench/pretrain/multiview.py, mvstep.py, croco.py)


def test_frustum_overlap_of_known_cameras():
    """Same camera: everything seen; facing away: nothing; one step back on the same axis: it sees all of
    the front camera's frustum samples, but not the reverse (overlap is directional)."""
    import numpy as np

    from bench.pretrain.multiview import frustum_overlap

    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    front, back, away = np.eye(4), np.eye(4), np.diag([-1.0, 1.0, -1.0, 1.0])  # away: rotated 180 deg about y
    back[2, 3] = -1.0
    o = frustum_overlap(np.stack([front, back, away]), K, (100, 80))
    assert o[0, 0] == 1.0 and o[0, 2] == 0.0 and o[2, 0] == 0.0
    assert o[0, 1] == 1.0 and o[1, 0] < 0.5


def test_scene_contrastive_is_nt_xent_for_pairs_and_prefers_the_right_pairing():
    from bench.pretrain.contrastive import nt_xent
    from bench.pretrain.multiview import scene_contrastive

    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    assert scene_contrastive(z1, z2, torch.arange(6), 0.2).item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), rel=1e-5)
    scenes = torch.eye(3).repeat_interleave(2, 0)  # items 0,1 of scene 0; 2,3 of scene 1; 4,5 of scene 2
    right = scene_contrastive(scenes, scenes, torch.tensor([0, 0, 1, 1, 2, 2]), 0.1)
    wrong = scene_contrastive(scenes, scenes, torch.tensor([0, 1, 2, 0, 1, 2]), 0.1)
    assert right.item() < 0.2 * wrong.item()
    # each item: 3 same-scene items at cosine 1 (logit 10), 8 others at 0 -> -log(e^10 / (3 e^10 + 8))
    assert right.item() == pytest.approx(math.log(3 + 8 * math.exp(-10.0)), rel=1e-5)


def test_multiview_pairs_stay_inside_one_training_scene(synth_tiny):
    import json

    import numpy as np

    from bench.errors import DataError
    from bench.pretrain.data import training_files
    from bench.pretrain.multiview import sample_pairs, scene_index

    files = training_files(synth_tiny, ("scenes", "cls"))
    index = scene_index(synth_tiny, files)
    for sid in index.scene_ids:
        assert json.loads((synth_tiny / "scenes" / sid / "scene.json").read_text())["split"] == "train"
    scene_of = lambda k: files[k].parent.parent.name if "/scenes/" in files[k].as_posix() else files[k].stem[:10]  # noqa: E731
    rng = np.random.default_rng(0)
    for p in (1.0, 0.0):
        pairs = sample_pairs(index, 32, rng, cross_view_p=p)
        for a, b, ref, g in zip(*(t.tolist() for t in (pairs.anchor, pairs.positive, pairs.reference, pairs.group))):
            assert scene_of(a) == scene_of(b) == scene_of(ref) == index.scene_ids[g]
            assert index.whole[ref] and index.view[ref] == index.view[a]
            if p == 1.0:  # another camera of the scene, as a whole view
                assert index.whole[b] and index.view[b] != index.view[a]
            else:  # the anchor itself (plain SimCLR)
                assert b == a
        distinct = len(set(pairs.group.tolist()))
        assert distinct == min(32, len(index.scene_ids))  # every scene before any repeats
    val = next(p for p in (synth_tiny / "scenes").iterdir()
               if (p / "scene.json").is_file() and json.loads((p / "scene.json").read_text())["split"] != "train")
    with pytest.raises(DataError, match="training scenes only"):
        scene_index(synth_tiny, files + [val / "color" / "0.jpg"])


def test_multiview_objective_learns_through_the_loop(synth_tiny, tmp_path):
    import json

    import bench.pretrain.trainer as tr

    r = TEST_RECIPE.with_overrides(objective="mvsimclr+croco", croco_batch_size=4)
    assert r.hash() != TEST_RECIPE.with_overrides(objective="mvsimclr+croco").hash()
    assert TEST_RECIPE.hash() == TEST_RECIPE.with_overrides(mv_pairing="frustum").hash()  # a default is not hashed
    out = tr.pretrain(r, root=synth_tiny, out=tmp_path / "mv", progress=False, track=False)
    hist = json.loads((out.parent / "pretrain_log.json").read_text())["history"]
    first, last = hist[:4], hist[-4:]
    assert sum(h["loss"] for h in last) < sum(h["loss"] for h in first)
    assert sum(h["croco_loss"] for h in last) < sum(h["croco_loss"] for h in first)


def test_cross_view_pairs_keep_their_colour_when_asked():
    """`mv_colour=false`: an object's colour identifies it in another view, so cross-view pairs skip colour
    jitter / grayscale; same-image pairs keep SimCLR's (here grayscale always, to see it)."""
    from bench.pretrain.data import MultiCrop
    from bench.pretrain.multiview import PairBatch
    from bench.pretrain.mvstep import _crops

    r = TEST_RECIPE.with_overrides(gray_p=1.0, jitter_p=0.0, mv_colour=False)
    canvas = torch.zeros(3, 3, 40, 40, dtype=torch.uint8)
    canvas[:, 0] = 200  # red images
    sizes = torch.full((3, 2), 40.0)
    pairs = PairBatch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([0, 1]), torch.tensor([0, 1]))
    x = _crops(MultiCrop(r), canvas, sizes, pairs, pairs.anchor, 16, (0.5, 1.0), 0.0, 0.0, r.mv_colour)
    pixels = lambda v: v * torch.tensor(r.std).view(1, 3, 1, 1) + torch.tensor(r.mean).view(1, 3, 1, 1)  # noqa: E731
    raw = pixels(x)
    assert torch.allclose(raw[0, 0], raw[0, 1], atol=1e-5)  # pair 0 is the anchor itself: grayscale
    assert (raw[1, 0] - raw[1, 1]).abs().min() > 0.5  # pair 1 crosses views: still red
    same = pixels(_crops(MultiCrop(r), canvas, sizes, pairs, pairs.anchor, 16, (0.5, 1.0), 0.0, 0.0, True))
    assert torch.allclose(same[1, 0], same[1, 1], atol=1e-5)  # mv_colour=true: grayscale for every pair
