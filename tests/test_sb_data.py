"""SpatialBoost training data: spatial chain-of-thought answers against a hand-built scene, turn order
and level subsets, tokenizer, label masks, annotators, and the tiny recipe end to end."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from bench.data.scenes import (CanonicalFrame, ObjectInfo, View, ViewGeometry, backproject, fit_floor,
                               floor_candidates)
from bench.spatialboost.data import LEVELS, arrange, build_recipe, recipe_status, spatial_turns, to_conversation
from bench.spatialboost.data.cot import CotConfig
from bench.spatialboost.data.templates import all_template_text, fmt_length, parse_length
from bench.vlm.collate import IGNORE_INDEX, CollateError, ConversationCollator
from bench.vlm.llava import LlavaDataset, LlavaFormatError, validate_sample
from bench.vlm.tokenizer import IMAGE_TOKEN, load_tokenizer, tokenizer_hash, train_tokenizer

# ------------------------------------------------------------------------------ a hand-built scene
W, H, F = 160, 120, 110.0
CAM_H, PITCH = 1.4, np.radians(18.0)
# (instance, category, colour, pixel box u0, u1, v0, v1, planar depth m): upright cards facing the camera
CARDS = [(1, "chair", "red", 20, 50, 60, 100, 2.0), (2, "table", "blue", 95, 135, 55, 95, 3.0),
         (3, "lamp", "green", 62, 84, 70, 112, 0.42)]


def hand_view(floor_mask: bool = True) -> View:
    """Camera at (0, 0, CAM_H) in a z-up world, looking along +y, pitched down; floor z = 0 and a
    back wall at planar depth 6 m where the floor is not hit; three cards at constant planar depth."""
    K = np.array([[F, 0, (W - 1) / 2], [0, F, (H - 1) / 2], [0, 0, 1.0]])
    fwd = np.array([0.0, np.cos(PITCH), -np.sin(PITCH)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(fwd, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, fwd, [0, 0, CAM_H]
    v, u = np.mgrid[0:H, 0:W].astype(float)
    rays = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u)], -1)  # z = 1
    dz = rays @ pose[:3, :3].T  # world direction per unit planar depth
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz[..., 2] < -1e-6, -CAM_H / dz[..., 2], np.inf)
    floor = t < 6.0
    depth = np.where(floor, t, 6.0)
    inst = np.zeros((H, W), np.int32)
    for iid, _, _, u0, u1, v0, v1, z in CARDS:
        depth[v0:v1, u0:u1] = z
        inst[v0:v1, u0:u1] = iid
    objs = {c[0]: ObjectInfo(c[0], c[1], c[2]) for c in CARDS}
    fm = floor & (inst == 0)
    return View("hand/0", depth.astype(np.float32), inst, K, objs, pose, fm if floor_mask else None,
                wall_colour="white")


def expected_cube_centre(view: View, iid: int) -> np.ndarray:
    """Independent of the floor fit: canonical coords from the KNOWN pose (world z up, camera yaw 0)."""
    pts, _ = backproject(view.depth, view.K, view.instance == iid)
    w = pts @ view.cam_to_world[:3, :3].T + view.cam_to_world[:3, 3]
    canon = np.stack([w[:, 0], w[:, 2], w[:, 1]], 1)  # x right, y up (height), z forward
    return (canon.min(0) + canon.max(0)) / 2


NUM = r"(-?\d+\.\d+)"
POINT = re.compile(r"\((\d\.\d{3}), (\d\.\d{3})\)")
LENGTH = re.compile(r"(\d+\.\d+ (?:meters|centimeters))")


def pixel_of(text: str) -> tuple[int, int]:
    x, y = map(float, POINT.search(text).groups())
    return int(round(x * W - 0.5)), int(round(y * H - 0.5))


def test_units_format():
    assert fmt_length(1.23456) == "1.235 meters"
    assert fmt_length(0.4234) == "42.3 centimeters"
    assert fmt_length(0.4996) == "0.500 meters"  # rounds to 0.5 m first: not below 0.5
    assert parse_length("42.3 centimeters") == pytest.approx(0.423)
    with pytest.raises(ValueError):
        fmt_length(-1)


def test_floor_fit_recovers_known_plane():
    view = hand_view()
    n_true, d_true = view.known_floor()
    for v in (view, hand_view(floor_mask=False)):  # floor mask, or the non-object bottom-third fallback
        plane = fit_floor(floor_candidates(v), np.random.default_rng(0))
        assert plane.angle_to(n_true) < 0.01 and abs(plane.d - d_true) < 1e-3
        frame = CanonicalFrame.from_floor(plane)
        assert frame.camera_height == pytest.approx(CAM_H, abs=1e-3)
        np.testing.assert_allclose(frame.axes[1], n_true, atol=1e-4)  # y = floor normal (up)
        np.testing.assert_allclose(frame.axes[0], [1, 0, 0], atol=1e-4)  # x = camera right


def test_floor_not_visible_raises():
    view = hand_view()
    view.floor_mask = np.zeros_like(view.floor_mask)
    with pytest.raises(ValueError, match="not visible"):
        ViewGeometry.compute(view)


def test_multiview_geometry():
    from bench.spatialboost.data.multiview import (MVView, camera_motion, covisibility, describe_motion, select_sets,
                                                   virtual_views)

    view = hand_view()
    parent = MVView(view, np.zeros((H, W, 3), np.uint8))
    crop = virtual_views([parent], 1)[0]  # top-left quadrant, resized to full size
    assert crop.virtual and crop.view.hw == (H, W) and crop.view.K[0, 0] == pytest.approx(2 * F)
    assert covisibility(crop.view, view, step=2) > 0.95  # everything the crop sees, the parent sees
    assert covisibility(view, crop.view, step=2) == pytest.approx(0.25, abs=0.05)
    # camera b: 1 m to a's right, then turned 90 degrees to the left (yaw about world z)
    a = view.cam_to_world
    c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
    Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    b = np.eye(4)
    b[:3, :3], b[:3, 3] = Rz @ a[:3, :3], a[:3, 3] + a[:3, 0]
    m = camera_motion(a, b)
    assert m["right"] == pytest.approx(1.0) and m["forward"] == pytest.approx(0, abs=1e-9)
    assert m["yaw_deg"] == pytest.approx(-90.0)
    assert describe_motion(m) == "The camera moved 1.000 meters to the right, and turned 90 degrees to the left."
    # view sets: every added view has an in-band partner and none below the band
    D = np.array([[0, .5, .9, .2], [.5, 0, .6, .7], [.9, .6, 0, .95], [.2, .7, .95, 0]])
    sets = select_sets(D, 3, 5, (0.35, 0.85), np.random.default_rng(0))
    assert sets and all(3 not in st or 0 not in st for st in sets)
    assert {frozenset(st) for st in sets} <= {frozenset({0, 1, 2}), frozenset({1, 2, 3})}


def test_spatial_answers_match_ground_truth():
    view = hand_view()
    geom = ViewGeometry.compute(view, np.random.default_rng(0))
    assert geom.floor_error["angle_deg"] < 0.01 and geom.floor_error["height_m"] < 1e-3
    names = {f"{c[2]} {c[1]}": c[0] for c in CARDS}
    centres = {n: expected_cube_centre(view, i) for n, i in names.items()}
    seen_cm = False
    for seed in range(12):
        turns = spatial_turns(geom, np.random.default_rng(seed), CotConfig())
        assert len(turns) == 12
        depths = {}
        for t in turns:
            if t.family == "depth":
                u, v = pixel_of(t.question)
                assert pixel_of(t.answer) == (u, v)
                true = float(view.depth[v, u])
                assert LENGTH.search(t.answer).group(1) == fmt_length(true)
                seen_cm |= true < 0.5 and "centimeters" in t.answer
                depths[POINT.search(t.question).group(0)] = true
            elif t.family == "closer":
                a, b = POINT.findall(t.question)[:2]
                ua, va = pixel_of(f"({a[0]}, {a[1]})")
                ub, vb = pixel_of(f"({b[0]}, {b[1]})")
                closer = view.depth[va, ua] < view.depth[vb, ub]
                assert t.answer.startswith("Yes" if closer else "No")
                assert f"({a[0]}, {a[1]})" in depths and f"({b[0]}, {b[1]})" in depths  # chain: asked before
            elif t.family == "cube_centre":
                name = t.facts["object"]
                got = np.array([float(x) for x in re.findall(NUM, t.answer)])
                np.testing.assert_allclose(got, centres[name], atol=2e-3)
            elif t.family == "left_of":
                dx = centres[t.facts["a"]][0] - centres[t.facts["b"]][0]
                assert t.answer.startswith("Yes" if dx < 0 else "No")
                assert parse_length(LENGTH.search(t.answer).group(1)) == pytest.approx(abs(dx), abs=2e-3)
            elif t.family == "distance":
                true = float(np.linalg.norm(centres[t.facts["a"]] - centres[t.facts["b"]]))
                assert parse_length(LENGTH.search(t.answer).group(1)) == pytest.approx(true, abs=2e-3)
    assert seen_cm, "the 0.42 m lamp should give centimetre answers for some seed"


def test_left_right_from_viewer():
    # the red chair (left cards) is left of the blue table (right card) from the viewer
    view = hand_view()
    geom = ViewGeometry.compute(view)
    cubes = geom.cubes
    assert cubes[1].centre[0] < cubes[3].centre[0] < cubes[2].centre[0]
    assert cubes[1].centre[2] == pytest.approx(expected_cube_centre(view, 1)[2], abs=2e-3)


def test_turn_order_and_level_subsets():
    geom = ViewGeometry.compute(hand_view())
    turns = spatial_turns(geom, np.random.default_rng(3))
    fam = ["depth", "depth", "closer", "depth", "closer", "cube_centre", "cube_centre", "left_of", "left_of",
           "distance", "scene_caption", "layout_caption"]
    assert [t.family for t in turns] == fam
    fwd = arrange(turns, "forward")
    assert [t.level for t in fwd] == ["pixel"] * 5 + ["object"] * 4 + ["scene"] + ["caption"] * 2
    assert arrange(turns, "reverse") == fwd[::-1]
    r1 = arrange(turns, "random", rng=np.random.default_rng(1))
    assert arrange(turns, "random", rng=np.random.default_rng(1)) == r1  # deterministic
    assert sorted(map(id, r1)) == sorted(map(id, turns))
    assert any(arrange(turns, "random", rng=np.random.default_rng(s)) != fwd for s in range(3))
    sub = arrange(turns, "forward", ("pixel", "scene"))
    assert [t.level for t in sub] == ["pixel"] * 5 + ["scene"]
    assert [t.level for t in arrange(turns, "reverse", ("object", "caption"))] == ["caption"] * 2 + ["object"] * 4
    with pytest.raises(ValueError):
        arrange(turns, "sideways")
    with pytest.raises(ValueError):
        arrange(turns, "forward", ("pixel", "nope"))
    conv = to_conversation(arrange(turns, "reverse"))
    assert len(conv) == 24 and conv[0]["value"].startswith(IMAGE_TOKEN + "\n")
    assert sum(c["value"].count(IMAGE_TOKEN) for c in conv) == 1
    assert [c["from"] for c in conv[:4]] == ["human", "gpt", "human", "gpt"]


# ------------------------------------------------------------------------------ tokenizer and labels
CORPUS = all_template_text() + [
    "What is the depth at point (0.512, 0.250)?", "The depth at point (0.512, 0.250) is 1.234 meters.",
    "Is the red chair to the left of the blue table?", "Yes, the red chair is to the left of the blue table.",
] * 3


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=800)


def test_tokenizer_deterministic_and_round_trips(tok, tmp_path):
    tok2 = train_tokenizer(list(reversed(CORPUS)), vocab_size=800)
    tok.save_pretrained(str(tmp_path / "a"))
    tok2.save_pretrained(str(tmp_path / "b"))
    assert tokenizer_hash(tmp_path / "a") == tokenizer_hash(tmp_path / "b")
    loaded = load_tokenizer(tmp_path / "a")
    for text in ("The depth value at pixel point (0.062, 0.307) is 2.989 meters.", "naïve café 你好 🙂\n\ttabs",
                 "Is the [A] to the left of the [B] from the viewer's perspective?"):
        assert loaded.decode(loaded(text)["input_ids"]) == text
    ids = loaded("<image>\n<|im_start|>user<|im_end|>")["input_ids"]
    assert ids[0] == loaded.convert_tokens_to_ids("<image>") and loaded.pad_token == loaded.eos_token == "<|endoftext|>"
    assert all(len(loaded.convert_ids_to_tokens([i])[0]) == 1 for i in loaded("2026")["input_ids"])  # digits split


def _segments(ids, labels, tok) -> list[str]:
    out, cur = [], []
    for i, lab in zip(ids, labels):
        if lab == IGNORE_INDEX:
            if cur:
                out.append(tok.decode(cur))
                cur = []
        else:
            assert lab == i
            cur.append(i)
    if cur:
        out.append(tok.decode(cur))
    return out


def test_labels_supervise_exactly_assistant_text(tok):
    conv = [{"from": "human", "value": "<image>\nWhat is the depth at point (0.512, 0.250)?"},
            {"from": "gpt", "value": "The depth at point (0.512, 0.250) is 1.234 meters."},
            {"from": "human", "value": "Is the red chair to the left of the blue table?"},
            {"from": "gpt", "value": "Yes."}]
    items = [{"id": "a", "images": [torch.zeros(3, 8, 8)], "conversations": conv},
             {"id": "b", "images": [torch.zeros(3, 8, 8)], "conversations": conv[:2]}]
    batch = ConversationCollator(tok, max_length=512)(items)
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == batch["labels"].shape
    img_id = batch["image_token_id"]
    assert img_id == tok.convert_tokens_to_ids(IMAGE_TOKEN)
    for b, n_turns in ((0, 2), (1, 1)):
        n = int(batch["attention_mask"][b].sum())
        ids, labels = batch["input_ids"][b, :n].tolist(), batch["labels"][b, :n].tolist()
        expected = ["The depth at point (0.512, 0.250) is 1.234 meters.<|im_end|>", "Yes.<|im_end|>"][:n_turns]
        assert _segments(ids, labels, tok) == expected
        assert ids.count(img_id) == 1 and labels[ids.index(img_id)] == IGNORE_INDEX
        assert (batch["labels"][b, n:] == IGNORE_INDEX).all() and (batch["attention_mask"][b, n:] == 0).all()
        text = tok.decode(ids)
        assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\n<image>\nWhat is" in text
    assert [t.shape for t in batch["images"]] == [(1, 3, 8, 8), (1, 3, 8, 8)]


def test_collator_asserts(tok):
    conv = [{"from": "human", "value": "<image>\n" + "Is the red chair to the left of the blue table? " * 4},
            {"from": "gpt", "value": "Yes."}]
    col = ConversationCollator(tok, max_length=512)
    ids, labels = col.encode(conv, n_images=1)
    first = next(k for k, lab in enumerate(labels) if lab != IGNORE_INDEX)
    with pytest.raises(CollateError, match="no supervised token"):  # every assistant token truncated away
        ConversationCollator(tok, max_length=first)([{"id": "t", "images": [torch.zeros(3, 4, 4)], "conversations": conv}])
    ConversationCollator(tok, max_length=first + 1)([{"id": "t", "images": [torch.zeros(3, 4, 4)], "conversations": conv}])
    with pytest.raises(CollateError, match="image tokens"):
        col([{"id": "m", "images": [torch.zeros(3, 4, 4)] * 2, "conversations": conv}])
    with pytest.raises(CollateError, match="image tokens"):
        col([{"id": "z", "images": [], "conversations": conv}])
    with pytest.raises(LlavaFormatError):
        validate_sample({"id": "x", "image": ["a.jpg", "b.jpg"], "conversations": conv})


# ------------------------------------------------------------------------------ annotators
def _rgb(h=48, w=64):
    return (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)


def test_ground_truth_annotators():
    from bench.spatialboost.data import GTDepth, GTReconstructor, GTSegmenter, Observation
    from bench.spatialboost.data.annotators import Annotators, DepthPoseReconstructor, annotate_view

    view = hand_view()
    obs = Observation(np.zeros((H, W, 3), np.uint8), view.K, view.key, view.cam_to_world)
    np.testing.assert_array_equal(GTDepth({view.key: view})(obs), view.depth)
    masks = GTSegmenter({view.key: view})(obs, [(20, 60, 49, 99), (95, 55, 134, 94)])
    assert masks.shape == (2, H, W) and (masks[0] == (view.instance == 1)).all() and (masks[1] == (view.instance == 2)).all()
    rec = GTReconstructor({view.key: view})([obs])
    pts = rec.world_points(0, view.instance == 3)
    T = view.cam_to_world
    np.testing.assert_allclose(((pts - T[:3, 3]) @ T[:3, :3])[:, 2], 0.42, atol=1e-5)  # back in the camera frame
    rec2 = DepthPoseReconstructor(GTDepth({view.key: view}))([obs])
    np.testing.assert_allclose(rec2.world_points(0), rec.world_points(0))
    assert (rec.world_points(0, view.floor_mask)[:, 2] == pytest.approx(0.0, abs=1e-4))  # floor at z = 0
    # annotate_view with ground-truth annotators is the identity
    same = annotate_view(view, obs.rgb, Annotators(GTDepth({view.key: view}), GTSegmenter({view.key: view})))
    assert same is view


def _need(name):
    import transformers

    if not hasattr(transformers, name):
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    return getattr(transformers, name)


def test_depth_pro_tiny_random():
    cfg_cls = _need("DepthProConfig")
    model_cls = _need("DepthProForDepthEstimation")
    from bench.spatialboost.data import DepthProDepth, Observation

    sub = {"model_type": "dinov2", "num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 1,
           "patch_size": 4, "image_size": 32}
    cfg = cfg_cls(patch_size=32, fusion_hidden_size=16, intermediate_hook_ids=[0], intermediate_feature_dims=[8],
                  scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.2],
                  scaled_images_feature_dims=[12, 12], use_fov_model=True, num_fov_head_layers=0,
                  image_model_config=sub, patch_model_config=sub, fov_model_config=sub)
    torch.manual_seed(0)
    ann = DepthProDepth(model_cls(cfg), size=(64, 64))
    K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    d = ann(Observation(_rgb(), K))
    assert d.shape == (48, 64) and d.dtype == np.float32 and np.isfinite(d).all() and (d > 0).all()
    d_fov = ann(Observation(_rgb()))  # no intrinsics: the FOV head gives the focal length
    assert d_fov.shape == (48, 64) and np.isfinite(d_fov).all()
    # metric conversion: doubling the focal length doubles the depth
    K2 = K.copy()
    K2[0, 0] *= 2
    np.testing.assert_allclose(ann(Observation(_rgb(), K2)), 2 * d, rtol=1e-5)


def test_sam2_tiny_random():
    Sam2Config = _need("Sam2Config")
    Sam2Model = _need("Sam2Model")
    import transformers as tf

    from bench.spatialboost.data import Observation, Sam2Segmenter

    bb = tf.Sam2HieraDetConfig(hidden_size=12, image_size=64, patch_stride=4, patch_kernel_size=7, patch_padding=3,
                               blocks_per_stage=[1, 1, 1, 1], embed_dim_per_stage=[12, 24, 48, 96])
    vc = tf.Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[96, 48, 24, 12],
                             backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]], fpn_hidden_size=32)
    pc = tf.Sam2PromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4)
    mc = tf.Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=1, num_attention_heads=2,
                                  iou_head_hidden_dim=32)
    torch.manual_seed(0)
    seg = Sam2Segmenter(Sam2Model(Sam2Config(vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc,
                                             image_size=64)))
    masks = seg(Observation(_rgb()), [(2, 3, 30, 40), (10, 10, 60, 45)])
    assert masks.shape == (2, 48, 64) and masks.dtype == bool
    assert seg(Observation(_rgb()), []).shape == (0, 48, 64)


def test_blip_captioner_tiny_random():
    BlipConfig = _need("BlipConfig")
    Blip = _need("BlipForConditionalGeneration")
    from bench.spatialboost.data import BlipCaptioner, Observation

    cfg = BlipConfig(vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=32, patch_size=8),
                     text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, encoder_hidden_size=16, bos_token_id=1, sep_token_id=2,
                                      pad_token_id=0, max_position_embeddings=64))
    torch.manual_seed(0)
    cap = BlipCaptioner(Blip(cfg), decode=lambda ids: " ".join(f"w{i}" for i in ids), max_new_tokens=4)
    text = cap(Observation(_rgb()))
    assert isinstance(text, str) and 1 <= len(text.split()) <= 6


def test_lpips_distance_optional():
    from bench.spatialboost.data.multiview import LpipsDistance, make_distance

    ok, why = LpipsDistance.available()
    d = make_distance("auto")
    assert d.name == ("lpips-alex" if ok else "1-covisibility"), why
    assert make_distance("ssim").band[0] < make_distance("ssim").band[1]


# ------------------------------------------------------------------------------ the tiny recipe
@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    home = tmp_path_factory.mktemp("sb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        yield build_recipe("tiny", progress=False), home


@pytest.mark.slow
def test_build_recipe_tiny_end_to_end(recipe, monkeypatch):
    r, home = recipe
    monkeypatch.setenv("BENCH_HOME", str(home))
    assert recipe_status("tiny")[0]
    assert r.root.is_relative_to(home) and r.root.name == "sb-tiny-forward-pixel+object+scene+caption"
    m = json.loads((r.root / "manifest.json").read_text())
    assert m["distance"]["name"] in ("1-covisibility", "lpips-alex") and len(m["distance"]["band"]) == 2
    assert m["tokenizer"]["vocab_size"] == len(load_tokenizer(r))
    assert m["geometry"]["floor_fit"]["max_angle_deg"] < 0.5
    counts = {}
    for k in (1, 2, 3):
        data = json.loads(r.stage(k).read_text())
        assert isinstance(data, list) and data
        for s in data:
            validate_sample(s, r.image_root)
            assert s["conversations"][0]["from"] == "human" and s["conversations"][1]["from"] == "gpt"
        counts[k] = data
    mv = [s for s in counts[2] if isinstance(s["image"], list)]
    assert sorted({len(s["image"]) for s in mv}) == [2, 4, 8]
    assert all(len(set(s["image"])) == len(s["image"]) for s in mv)
    for s in counts[3]:
        conv = s["conversations"]
        assert len(conv) == 24 and conv[0]["value"].startswith("<image>\n")
    # the dataset + collator consume it
    tok = load_tokenizer(r)
    ds = LlavaDataset(r.stage2, r.image_root)
    k8 = next(i for i, s in enumerate(ds.samples) if isinstance(s["image"], list) and len(s["image"]) == 8)
    batch = ConversationCollator(tok, max_length=2048)([ds[0], ds[k8]])
    assert [t.shape[0] for t in batch["images"]] == [1, 8]
    assert [(row == batch["image_token_id"]).sum().item() for row in batch["input_ids"]] == [1, 8]
    # idempotent: the second call reuses the manifest (and rebuilds nothing)
    mtime = r.stage3.stat().st_mtime_ns
    assert build_recipe("tiny", progress=False) == r and r.stage3.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_recipe_order_variant_shares_tokenizer(recipe, tmp_path):
    r, home = recipe
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        v = build_recipe("tiny", out=tmp_path / "rev", order="reverse", levels=("scene", "pixel"), progress=False)
    m = json.loads((v.root / "manifest.json").read_text())
    assert m["counts"]["stage3_turns_per_sample"] == 6 and m["levels"] == ["pixel", "scene"]
    assert m["tokenizer"]["sha256"] == r.manifest["tokenizer"]["sha256"] and v.manifest_hash != r.manifest_hash
    fwd = {s["id"]: s for s in json.loads(r.stage3.read_text())}
    for s in json.loads(v.stage3.read_text()):
        gpt = [c["value"] for c in s["conversations"] if c["from"] == "gpt"]
        full = [c["value"] for c in fwd[s["id"]]["conversations"] if c["from"] == "gpt"]
        assert gpt == [full[9]] + full[:5][::-1]  # reversed (scene, then pixel turns 5..1)
    assert LEVELS == ("pixel", "object", "scene", "caption")
