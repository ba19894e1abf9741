"""3D-scene data: readers on the real fixtures and on generator-written files, the lifting
projection against hand-computed pixels, and the clear errors (missing views, non-rigid poses,
wrong-size depth, refused pickles)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from bench.data import scannet as S
from bench.data import scannet_lang as L
from bench.data.scannet_lift import LiftParams, lift_scene, project
from bench.errors import DataError
from tests.test_scene3d_support import FIXTURES, generate_tiny


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return generate_tiny(tmp_path_factory.mktemp("s3d"))


needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason="../shared/fixtures-real absent")


@needs_fixtures
def test_real_registration_poses_are_rigid():
    for sid in ("scene0000_00", "scene0011_00", "scene0050_00"):
        T = S.read_unified_pose(FIXTURES, sid)
        assert T.shape == (4, 4) and abs(np.linalg.det(T[:3, :3]) - 1) < 1e-5
    assert np.allclose(S.read_unified_pose(FIXTURES, "scene0000_00")[0, :2], [0.9664, 0.0801], atol=1e-4)


@needs_fixtures
def test_real_language_files():
    qa = L.read_scanqa(FIXTURES / "scanqa" / "ScanQA_v1.0_val.json")
    assert len(qa) == 10 and qa[0].answers == ("dark brown", "brown") and qa[0].scene_id == "scene0011_00"
    assert qa[0].object_ids[:2] == (4, 5)
    refs = L.read_scanrefer(FIXTURES / "scanrefer" / "ScanRefer_filtered_val.json")
    assert len(refs) == 8 and refs[0].object_id == 5 and refs[0].object_name == "chair"
    sqa = L.read_sqa3d(FIXTURES / "sqa3d", "test")
    assert len(sqa) == 7 and sqa[0].answers == ("piano",) and sqa[0].object_ids == ()
    assert sqa[0].situation.startswith("I am standing by the ottoman")


def test_generated_twin_reads_back_in_the_native_layouts(twin):
    assert S.split_scenes(twin, "train") == ["scene0000_00", "scene0001_00"]
    assert S.split_scenes(twin, "val") == ["scene0002_00"]
    assert np.allclose(S.intrinsics(twin), S.DEFAULT_K, atol=1e-3)  # ScanNet's adjusted depth K
    pts = S.load_points(twin, "train", "scene0000_00")
    assert pts.coords.dtype == np.float64 and pts.coords.shape[1] == 3 and len(pts.labels) == len(pts.coords)
    assert set(np.unique(pts.labels)) <= set(range(20)) | {S.IGNORE} and {0, 1} <= set(np.unique(pts.labels))
    raw = S.safe_torch_load(twin / "scannet_3d" / "train" / "scene0000_00_vh_clean_2.pth")
    assert isinstance(raw, tuple) and np.array_equal(np.where(raw[2] == 255, -1, raw[2]), pts.labels)
    inst = S.load_instances(twin, "train", "scene0000_00", len(pts.coords))
    boxes = S.object_boxes(pts.coords, inst)
    assert boxes and all((b[3:] >= b[:3]).all() for b in boxes.values())
    views = S.scene_views(twin, "scene0000_00")
    assert [v.frame for v in views] == [20 * i for i in range(12)]
    assert S.read_depth(views[0].depth).shape == (240, 320)
    S.read_pose(views[0].pose)
    qa = L.read_scanqa(twin / "scanqa" / "ScanQA_v1.0_val.json")
    refs = L.read_scanrefer(twin / "scanrefer" / "ScanRefer_filtered_train.json")
    assert qa and refs and all(set(q.object_ids) <= set(boxes) | set(range(1, 99)) for q in qa)
    # every referral of a class with distractors names a colour or a landmark
    assert any("closest to" in r.description or "there are other" in r.description for r in refs)


def test_projection_matches_hand_computed_pixels():
    K = S.DEFAULT_K
    pts = np.array([[0.5, -0.25, 2.0],  # u = 0.5*288.9353/2 + 159.5 = 231.73 -> 232; v = 83.38 -> 83
                    [0.0, 0.0, 2.0],  # centre: (159.5, 119.5) -> rounds to (160, 120) (numpy: half to even)
                    [1.2, 0.0, 2.0],  # u = 332.9: outside the image
                    [0.0, 0.0, -2.0],  # behind the camera: z = -2 fails the depth test
                    [0.0, 0.0, 2.6]])  # occluded: |2.0 - 2.6| = 0.6 > 0.25 * 2.0
    depth = np.full((240, 320), 2.0, np.float32)
    r, c, m = project(pts, np.eye(4), K, depth)
    assert (r[0], c[0]) == (83, 232) and (r[1], c[1]) == (120, 160)
    assert m.tolist() == [True, True, False, False, False]
    # a pose moves the camera: the same point seen from 1 m back along z is 3 m away -> occluded at depth 2
    back = np.eye(4)
    back[2, 3] = -1.0
    assert project(pts[:1], back, K, depth)[2].tolist() == [False]
    # border: u = 9 is dropped (cut_bound 10), u = 10 kept
    x9, x10 = (9 - K[0, 2]) * 2 / K[0, 0], (10 - K[0, 2]) * 2 / K[0, 0]
    assert project(np.array([[x9, 0, 2.0], [x10, 0, 2.0]]), np.eye(4), K, depth)[2].tolist() == [False, True]


def test_lifting_averages_upsampled_features_over_seeing_views():
    K = S.DEFAULT_K
    pts = np.array([[0.0, 0.0, 2.0], [0.5, -0.25, 2.0]])
    near = np.full((240, 320), 2.0, np.float32)
    occluding = near.copy()
    occluding[:, 200:] = 1.0  # the second point (u = 232) is hidden in this view
    grid_a = torch.full((4, 15, 20), 1.0)
    grid_b = torch.full((4, 15, 20), 3.0)  # bicubic upsampling keeps a constant map constant
    feat, count = lift_scene(pts, [(np.eye(4), near, grid_a), (np.eye(4), occluding, grid_b)], K, LiftParams())
    assert count.tolist() == [2.0, 1.0]
    assert torch.allclose(feat, torch.tensor([[2.0] * 4, [1.0] * 4]), atol=1e-5)
    # a ramp: the gathered value is the bicubic interpolation at the rounded pixel
    ramp = torch.arange(20.0).repeat(15, 1)[None]
    up = torch.nn.functional.interpolate(ramp[None], size=(240, 320), mode="bicubic", align_corners=False)[0, 0]
    f, _ = lift_scene(pts[1:], [(np.eye(4), near, ramp)], K, LiftParams())
    assert float(f[0, 0]) == pytest.approx(float(up[83, 232]), abs=1e-5)


def test_errors_name_the_file(twin, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(twin, bad)
    views = S.scene_views(bad, "scene0000_00")
    # missing depth of one view
    views[3].depth.unlink()
    with pytest.raises(DataError, match=r"depth/60\.png: missing for view 60\.jpg"):
        S.scene_views(bad, "scene0000_00")
    # non-rigid pose
    views[4].pose.write_text("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(DataError, match="not a rigid transform"):
        S.read_pose(views[4].pose)
    torch.save(torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])), bad / "lexicon3d" / "unified_pose" / "scene0001_00.pt")
    with pytest.raises(DataError, match="not a rigid transform"):
        S.read_unified_pose(bad, "scene0001_00")
    # wrong-size depth
    from PIL import Image

    Image.fromarray(np.zeros((480, 640), np.uint16)).save(views[5].depth)
    with pytest.raises(DataError, match="depth map is 640x480, expected 320x240"):
        S.read_depth(views[5].depth)
    # a pickle that would run code is refused
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save((Evil(),), bad / "scannet_3d" / "train" / "scene0001_00_vh_clean_2.pth")
    with pytest.raises(DataError, match="refused or corrupt pickle"):
        S.load_points(bad, "train", "scene0001_00")
    with pytest.raises(DataError, match="no exported views"):
        S.scene_views(bad, "scene9999_00")
