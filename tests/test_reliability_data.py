"""Hostile and unlucky inputs: the data generator never deletes what it did not write and survives
concurrency and kill -9; bad ground truth, unreadable images / pickles / weights / checkpoints are
one error line naming the file; the feature cache verifies and repairs its shards, is keyed by
content (not by where the data lives) and never caches non-finite features; empty class folders
are not classes. Every hostile file is written here."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.errors import BenchError
from bench.features import Extractor, FeatureCache, FeatureSpec
from tests.conftest import write_image_folder

REPO = Path(__file__).resolve().parents[1]
LAYOUT_DIRS = ("scenes", "nyu", "ade", "cls", "retrieval")


def one_line(exc: BaseException, *names: str) -> str:
    text = str(exc)
    assert isinstance(exc, BenchError), f"{type(exc).__name__}: {text}"
    assert "\n" not in text and "Traceback" not in text, text
    for name in names:
        assert name in text, (name, text)
    return text


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * keep))])
    return path


def rgb(path: Path, size=(64, 48), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return path


# ============================================================================== 1. synth: never delete others' data

def test_synth_refuses_to_delete_a_folder_it_did_not_write(tmp_path):
    from bench.data import synth

    out = tmp_path / "BENCH_DATA"
    real = out / "nyu" / "sync" / "kitchen" / "rgb_00000.jpg"
    rgb(real)
    with pytest.raises(BenchError) as err:
        synth.generate("tiny", out, seed=0, progress=False)
    one_line(err.value, str(out / "nyu"), "not written by the synthetic generator")
    assert real.is_file()  # the user's data is untouched
    assert not (out / "scenes").exists() and not (out / "manifest.json").exists()  # refused before any work


def test_synth_refuses_with_a_stale_manifest_and_the_cli_exits_2(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "data"
    (out / "ade").mkdir(parents=True)
    (out / "ade" / "mine.txt").write_text("precious")
    (out / "manifest.json").write_text(json.dumps({"generator": "bench.data.synth", "version": "0.0.1",
                                                   "preset": "tiny", "seed": 7}))
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(out / "ade") in err and "Traceback" not in err
    assert (out / "ade" / "mine.txt").read_text() == "precious"
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"something": "else"}')
    assert main(["data", "synth", "--preset", "tiny", "--out", str(foreign)]) == 2
    assert json.loads((foreign / "manifest.json").read_text()) == {"something": "else"}


# ============================================================================== 2. synth: locked, atomic, kill -9

def _content_hash(out: Path) -> tuple[str, int]:
    """The manifest's content hash recomputed from the files on disk (markers excluded)."""
    from bench.data.synth.pipeline import MARKER

    lines = []
    for d in LAYOUT_DIRS:
        for p in sorted((out / d).rglob("*")):
            if p.is_file() and p.name != MARKER:
                lines.append((p.relative_to(out).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()))
    h = hashlib.sha256()
    for rel, digest in sorted(lines):
        h.update(f"{rel}\t{digest}\n".encode())
    return h.hexdigest(), len(lines)


def assert_complete(out: Path, seed: int) -> dict:
    m = json.loads((out / "manifest.json").read_text())
    assert m["preset"] == "tiny" and m["seed"] == seed
    digest, files = _content_hash(out)
    assert (digest, files) == (m["content_hash"], m["files"])
    assert not [p for p in out.iterdir() if p.name.startswith(".bench-synth-partial-")]
    return m


CHILD = """
import sys, time
import bench.data.synth.pipeline as p
if len(sys.argv) > 3:  # slow the writer down so a test can kill the run mid-way
    write = p._write_view
    def slow(*a):
        time.sleep(float(sys.argv[3]))
        write(*a)
    p._write_view = slow
generate = p._generate
def counted(*a, **k):
    print("GENERATING", flush=True)
    return generate(*a, **k)
p._generate = counted
p.generate("tiny", sys.argv[1], seed=int(sys.argv[2]), progress=False)
print("DONE", flush=True)
"""


def _child(out: Path, seed: int, slow: float | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, str(out), str(seed)] + ([str(slow)] if slow else [])
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_concurrent_generations_one_waits_and_reuses(tmp_path):
    out = tmp_path / "synth"
    a, b = _child(out, 0), _child(out, 0)
    results = [p.communicate(timeout=300) for p in (a, b)]
    for p, (so, se) in zip((a, b), results):
        assert p.returncode == 0, se[-3000:]
        assert "DONE" in so
    assert sum(so.count("GENERATING") for so, _ in results) == 1  # the second waited, then found the set
    assert_complete(out, 0)


def _written_since(out: Path, stamp: int) -> int:
    """Colour frames written after `stamp` anywhere under `out` (hidden temporary folders included)."""
    n = 0
    for p in out.rglob("color/*.jpg"):
        try:
            n += p.stat().st_mtime_ns > stamp
        except OSError:  # moved or deleted meanwhile
            pass
    return n


@pytest.mark.slow
def test_kill_9_mid_generation_leaves_nothing_trusted(tmp_path):
    """Rendering runs in child processes only (a GL context left in the test process crashes a later
    triton import, see `synth.ensure`); the in-process calls below find complete sets and render nothing."""
    from bench.data import synth

    out = tmp_path / "synth"
    so, se = _child(out, 0).communicate(timeout=300)
    assert "DONE" in so, se[-3000:]
    first = json.loads((out / "manifest.json").read_text())
    stamp = (out / "manifest.json").stat().st_mtime_ns
    proc = _child(out, 1, slow=0.3)  # a regeneration with another seed, killed half-way
    deadline = time.time() + 120
    while time.time() < deadline and _written_since(out, stamp) < 4:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the complete seed-0 set is still there, trusted as is (not regenerated, nothing half-replaced)
    assert synth.generate("tiny", out, seed=0, progress=False) == first
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert_complete(out, 0)
    # the seed-1 run never became trusted; generating it again gives a complete, valid set
    so, se = _child(out, 1).communicate(timeout=300)
    assert "GENERATING" in so and "DONE" in so, se[-3000:]
    m1 = assert_complete(out, 1)
    assert m1["content_hash"] != first["content_hash"]


# ============================================================================== 3. depth ground truth

def write_nyu(root: Path, depth_writer=None) -> Path:
    """Two test frames (64x48); `depth_writer(path, k)` writes the depth PNG of frame k."""
    lines = []
    for k in range(2):
        rgb(root / "official_splits/test/scene" / f"rgb_{k:05d}.jpg", seed=k)
        path = root / "official_splits/test/scene" / f"sync_depth_{k:05d}.png"
        d = np.zeros((48, 64), np.uint16)
        d[5:20, 5:20] = 2000 + k
        Image.fromarray(d).save(path)
        if depth_writer is not None:
            depth_writer(path, k)
        lines.append(f"scene/rgb_{k:05d}.jpg scene/sync_depth_{k:05d}.png 518.8579")
    (root / "nyu_test.txt").write_text("\n".join(lines) + "\n")
    return root


def _bad_second(kind: str):
    def write(path: Path, k: int):
        if k != 1:
            return
        if kind == "8bit":
            arr = np.zeros((48, 64), np.uint8)
            arr[5:20, 5:20] = 200
            Image.fromarray(arr).save(path)
        elif kind == "zeros":
            Image.fromarray(np.zeros((48, 64), np.uint16)).save(path)
        elif kind == "rgb":
            Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(path)
        elif kind == "shape":
            Image.fromarray(np.full((24, 32), 1500, np.uint16)).save(path)
        elif kind == "truncated":
            truncate(path, 0.4)
    return write


@pytest.mark.parametrize("kind,cause", [("8bit", "8-bit"), ("zeros", "no valid depth pixel"), ("rgb", "RGB"),
                                        ("shape", "32x24"), ("truncated", "")])
def test_bad_depth_ground_truth_is_one_line_naming_the_file(tmp_path, kind, cause):
    from bench.data.nyu import NYUDepth, resized_targets

    ds = NYUDepth(write_nyu(tmp_path / "nyu", _bad_second(kind)), "test")
    assert ds.depth(0).max() == pytest.approx(2.0)  # the good frame reads fine
    bad = ds.samples[1].depth
    with pytest.raises(Exception) as err:
        ds.depth(1)
    one_line(err.value, str(bad), cause)
    with pytest.raises(Exception) as err:
        resized_targets(ds, (12, 16))
    one_line(err.value, str(bad))


def test_kitti_depth_must_be_16_bit_and_valid_inside_the_crop(tmp_path):
    from bench.data.kitti import KITTIDepth

    drive = "2011_09_26_drive_0001_sync"
    lines = []
    for k in range(2):
        img = f"2011_09_26/{drive}/image_02/data/{k:010d}.png"
        gt = f"{drive}/proj_depth/groundtruth/image_02/{k:010d}.png"
        rgb(tmp_path / img, size=(1242, 375), seed=k)
        (tmp_path / "data_depth_annotated" / gt).parent.mkdir(parents=True, exist_ok=True)
        d = np.zeros((375, 1242), np.uint16 if k == 0 else np.uint8)
        d[0, 0] = 250  # outside the KB crop only
        Image.fromarray(d).save(tmp_path / "data_depth_annotated" / gt)
        lines.append(f"{img} {gt} 721.5377")
    (tmp_path / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    ds = KITTIDepth(tmp_path, "test")
    with pytest.raises(Exception) as err:
        ds.depth(0)
    one_line(err.value, str(ds.samples[0].depth), "no valid depth pixel inside the kb-352x1216 crop")
    with pytest.raises(Exception) as err:
        ds.depth(1)
    one_line(err.value, str(ds.samples[1].depth), "8-bit")


def test_data_error_forms_and_dataloader_round_trip():
    from bench.errors import DataError

    e = DataError("/d/x.png", "8-bit grey image")
    assert str(e) == "/d/x.png: 8-bit grey image" and e.path == Path("/d/x.png")
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
    worker = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
              '  File "w.py", line 1, in f\nbench.errors.DataError: /d/x.jpg: truncated image file (boom)\n')
    again = DataError(worker)  # what torch's ExceptionWrapper.reraise does: type(msg)
    assert str(again) == "/d/x.jpg: truncated image file (boom)" and again.worker_traceback == worker


# ============================================================================== 4. unreadable inputs

def test_truncated_jpeg_in_an_imagefolder_through_a_dataloader_worker(tmp_path, counting_encoder, monkeypatch):
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform

    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    bad = truncate(root / "train" / "b" / "train_0001.JPEG")
    ds = ImageFolder(root, "train", EvalTransform(counting_encoder.preprocess))
    with pytest.raises(Exception) as err:
        ds[4]
    one_line(err.value, str(bad), "truncated")
    ex = Extractor(counting_encoder, device=torch.device("cpu"), batch_size=2, num_workers=1)
    # a 2-core machine decodes in process (Extractor.loader_workers): keep the worker this test is about
    monkeypatch.setattr(Extractor, "loader_workers", lambda self: self.num_workers)
    assert ex.loader(ds).num_workers == 1
    with pytest.raises(Exception) as err:  # re-raised by torch in the main process as type(message)
        FeatureCache(tmp_path / "cache").get_or_extract(ex, ds, identity=ds.identity(), transform="t",
                                                        spec=FeatureSpec(), progress=False)
    one_line(err.value, str(bad), "truncated")


def test_truncated_or_empty_images_in_every_loader(tmp_path):
    from bench.data.nyu import NYUDepth
    from bench.data.retrieval import ImageListDataset

    nyu = write_nyu(tmp_path / "nyu")
    ds = NYUDepth(nyu, "test")
    bad = truncate(ds.samples[1].image, 0.3)
    with pytest.raises(Exception) as err:
        ds[1]
    one_line(err.value, str(bad))
    a, b = rgb(tmp_path / "r" / "a.jpg"), rgb(tmp_path / "r" / "b.jpg", seed=1)
    b.write_bytes(b"")
    lst = ImageListDataset([a, b], boxes=[None, (0, 0, 10, 10)])
    assert lst[0][0].size == (64, 48)
    with pytest.raises(Exception) as err:
        lst[1]
    one_line(err.value, str(b), "empty")


def test_truncated_jpeg_in_segmentation_images(tmp_path):
    from bench.data.segmentation import ResizedSegImages, SegData

    base = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        for i in range(2):
            stem = f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
            rgb(base / "images" / split / f"{stem}.jpg", seed=i)
            (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((48, 64), 3, np.uint8)).save(base / "annotations" / split / f"{stem}.png")
    bad = truncate(base / "images" / "training" / "ADE_train_00000002.jpg", 0.6)
    images = ResizedSegImages(SegData("ade", tmp_path), "train", (32, 32), (0.5,) * 3, (0.25,) * 3)
    assert images[0][0].shape == (3, 32, 32)
    with pytest.raises(Exception) as err:
        images[1]
    one_line(err.value, str(bad), "truncated")
    assert str(tmp_path) not in json.dumps(images.identity())


def test_refused_and_truncated_ground_truth_pickles(tmp_path):
    from bench.data.retrieval import load_gnd

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "gnd_evil.pkl"
    evil.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [Evil()]}))
    with pytest.raises(pickle.UnpicklingError) as err:  # still an UnpicklingError, now also a BenchError
        load_gnd(evil)
    one_line(err.value, str(evil), "refused")
    assert not (tmp_path / "pwned").exists()
    good = pickle.dumps({"imlist": ["a", "b"], "qimlist": ["q"], "gnd": [{"easy": [0], "hard": [], "junk": [1]}]})
    short = tmp_path / "gnd_short.pkl"
    short.write_bytes(good[: len(good) // 2])
    with pytest.raises(Exception) as err:
        load_gnd(short)
    one_line(err.value, str(short))
    empty = tmp_path / "gnd_empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(Exception) as err:
        load_gnd(empty)
    one_line(err.value, str(empty), "empty")
    wrong = tmp_path / "gnd_wrong.pkl"
    wrong.write_bytes(pickle.dumps({"imlist": ["a"], "qimlist": ["q"], "gnd": [{"easy": [5]}]}))
    with pytest.raises(Exception) as err:
        load_gnd(wrong)
    one_line(err.value, str(wrong), "out of range")


def test_unreadable_weights_files(tmp_path):
    from safetensors.torch import save_file

    from bench.encoders.weights import load_state_dict

    save_file({"w": torch.randn(64, 64)}, str(tmp_path / "ok.safetensors"))
    data = (tmp_path / "ok.safetensors").read_bytes()
    cases = {"truncated.safetensors": data[: len(data) // 2], "empty.safetensors": b"",
             "garbage.safetensors": os.urandom(4096), "empty.pt": b"",
             "garbage.pt": b"not a torch file at all" * 20}
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "ok.pt")
    cases["truncated.pth"] = (tmp_path / "ok.pt").read_bytes()[:300]
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(Exception) as err:
            load_state_dict(tmp_path / name)
        one_line(err.value, str(tmp_path / name))
    assert set(load_state_dict(tmp_path / "ok.safetensors")) == {"w"}

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"w": Evil()}}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError) as err:
        load_state_dict(tmp_path / "evil.pt")
    one_line(err.value, str(tmp_path / "evil.pt"), "refused", "posix.system")
    assert not (tmp_path / "pwned").exists()


def test_unreadable_boosted_checkpoint(tmp_path):
    from safetensors.torch import save_file

    from bench.spatialboost.checkpoint import FORMAT, load_boosted_encoder, read_tensors

    path = tmp_path / "boosted.safetensors"
    save_file({"encoder.x": torch.randn(128, 16)}, str(path), metadata={"format": FORMAT})
    truncate(path, 0.7)
    with pytest.raises(Exception) as err:
        load_boosted_encoder(path)
    one_line(err.value, str(path), "truncated")
    with pytest.raises(Exception) as err:
        read_tensors(path)
    one_line(err.value, str(path))
    path.write_bytes(os.urandom(2048))
    with pytest.raises(Exception) as err:
        load_boosted_encoder(path)
    one_line(err.value, str(path))


# ============================================================================== 5. the cache verifies and repairs

def _get(cache, encoder, dataset, spec=FeatureSpec(("cls", "avgpool"), 2)):
    from bench.data.transforms import EvalTransform

    ex = Extractor(encoder, device=torch.device("cpu"), batch_size=4, num_workers=0)
    return cache.get_or_extract(ex, dataset, identity=dataset.identity(),
                                transform=EvalTransform(encoder.preprocess).describe(), spec=spec, progress=False)


@pytest.fixture
def cached(tmp_path, counting_encoder):
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform

    root = write_image_folder(tmp_path / "imgs", {"a": 7, "b": 6})
    ds = ImageFolder(root, "train", EvalTransform(counting_encoder.preprocess))
    ref = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, ds)
    reference = {k: ref[k].clone() for k in ref}
    counting_encoder.images_seen = 0
    parts = sorted((tmp_path / "cache").rglob("part-*.safetensors"))
    assert len(parts) == 3
    return ds, reference, parts


def _reopen_and_check(tmp_path, counting_encoder, ds, reference, damaged: Path, extracted: int):
    with pytest.warns(UserWarning, match=str(damaged)):
        store = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, ds)
        got = {k: store[k] for k in store}
    assert counting_encoder.images_seen == extracted  # only the damaged shard is redone
    for k in reference:
        assert torch.equal(got[k], reference[k]), k
    counting_encoder.images_seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: opens clean, extracts nothing
        again = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, ds)
        assert torch.equal(again["cls"], reference["cls"]) and counting_encoder.images_seen == 0


def test_shard_with_wrong_row_count_is_rebuilt(tmp_path, counting_encoder, cached):
    from safetensors.torch import load_file, save_file

    ds, reference, parts = cached
    t = load_file(str(parts[1]))
    save_file({k: v[:3].contiguous() for k, v in t.items()}, str(parts[1]))  # 3 rows where 5 belong
    _reopen_and_check(tmp_path, counting_encoder, ds, reference, parts[1], 5)


def test_truncated_shard_is_rebuilt(tmp_path, counting_encoder, cached):
    ds, reference, parts = cached
    truncate(parts[2], 0.6)
    _reopen_and_check(tmp_path, counting_encoder, ds, reference, parts[2], 3)


def test_same_size_corruption_is_caught_by_the_checksum(tmp_path, counting_encoder, cached):
    ds, reference, parts = cached
    data = bytearray(parts[0].read_bytes())
    data[-8:] = bytes(8)  # the last cls/avgpool values, size unchanged
    parts[0].write_bytes(bytes(data))
    _reopen_and_check(tmp_path, counting_encoder, ds, reference, parts[0], 5)


def test_same_size_replaced_image_is_not_a_stale_hit(tmp_path, counting_encoder):
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform

    root = tmp_path / "bmp"
    for c, colour in (("a", 40), ("b", 200)):
        for i in range(3):
            rgb(root / "train" / c / f"{i}.bmp", size=(32, 32), seed=colour + i)
    tf = EvalTransform(counting_encoder.preprocess)
    cache = FeatureCache(tmp_path / "cache")
    before = _get(cache, counting_encoder, ImageFolder(root, "train", tf))["cls"].clone()
    target = root / "train" / "a" / "1.bmp"
    size, st = target.stat().st_size, target.stat()
    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(target)  # BMP: same size, new pixels
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert target.stat().st_size == size
    counting_encoder.images_seen = 0
    after = _get(cache, counting_encoder, ImageFolder(root, "train", tf))["cls"]
    assert counting_encoder.images_seen == 6 and not torch.equal(after[1], before[1])
    assert torch.equal(after[0], before[0])


def test_moved_dataset_and_copied_cache_keep_their_entries(tmp_path, counting_encoder):
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform

    tf = EvalTransform(counting_encoder.preprocess)
    root = write_image_folder(tmp_path / "home1" / "imgs", {"a": 4, "b": 3})
    first = _get(FeatureCache(tmp_path / "home1" / "cache"), counting_encoder, ImageFolder(root, "train", tf))["cls"]
    shutil.copytree(tmp_path / "home1", tmp_path / "home2")  # copy2: modification times kept
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "home1" / "imgs", moved)
    counting_encoder.images_seen = 0
    a = _get(FeatureCache(tmp_path / "home1" / "cache"), counting_encoder, ImageFolder(moved, "train", tf))["cls"]
    b = _get(FeatureCache(tmp_path / "home2" / "cache"), counting_encoder,
             ImageFolder(tmp_path / "home2" / "imgs", "train", tf))["cls"]
    assert counting_encoder.images_seen == 0 and torch.equal(a, first) and torch.equal(b, first)


def test_no_dataset_identity_contains_the_absolute_root(tmp_path):
    from bench.data.imagefolder import ImageFolder
    from bench.data.nyu import NYUDepth, strided_train_view
    from bench.data.retrieval import ImageListDataset

    root = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    nyu = NYUDepth(write_nyu(tmp_path / "nyu"), "test")
    ident = [ImageFolder(root, "val").identity(), nyu.identity(), strided_train_view(nyu, 1, None)[0].identity(),
             ImageListDataset(sorted((root / "train" / "a").iterdir())).identity()]
    for i in ident:
        assert str(tmp_path) not in json.dumps(i), i
        assert len(i["files_sha256"]) >= 16 and len(i["list_sha256"]) >= 16


# ============================================================================== 6. non-finite features

def test_fp16_overflow_and_nan_weights_are_refused(tmp_path, counting_encoder):
    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.full((3, 32, 32), (i + 1) / 6.0), i

    ex = Extractor(counting_encoder, device=torch.device("cpu"), batch_size=3, num_workers=0)
    spec = FeatureSpec(("cls", "patches"), 2)
    original = counting_encoder._forward

    def huge(images, n):
        out = original(images, n)
        for b in out.blocks:
            b.cls, b.patches = b.cls * 1e6, b.patches * 1e6
        return out

    counting_encoder._forward = huge
    fp16 = FeatureCache(tmp_path / "c16")
    with pytest.raises(BenchError) as err:
        fp16.get_or_extract(ex, Images(), identity={"n": 6}, transform="t", spec=spec, progress=False)
    one_line(err.value, "counting", "cls", "block 2 of 4", "float32")
    assert type(err.value).__name__ == "NonFiniteFeaturesError"
    assert not list((tmp_path / "c16").rglob("index.json")) and not list((tmp_path / "c16").rglob("part-*"))
    fp32 = FeatureCache(tmp_path / "c32", dtype=torch.float32)
    store = fp32.get_or_extract(ex, Images(), identity={"n": 6}, transform="t", spec=spec, progress=False)
    assert store["cls"].dtype == torch.float32 and torch.isfinite(store["patches"]).all()
    assert store["cls"].abs().max() > 65504
    assert FeatureCache.key(counting_encoder, {"n": 6}, "t", spec, torch.float32)[0] != \
        FeatureCache.key(counting_encoder, {"n": 6}, "t", spec)[0]

    counting_encoder._forward = original
    with torch.no_grad():
        counting_encoder.proj.fill_(float("nan"))
    with pytest.raises(BenchError) as err:
        FeatureCache(tmp_path / "nan").get_or_extract(ex, Images(), identity={"n": 6}, transform="t",
                                                      spec=spec, progress=False)
    one_line(err.value, "counting", "cls", "block", "NaN")
    assert not list((tmp_path / "nan").rglob("part-*"))


# ============================================================================== 7. empty class folders

def test_empty_class_folder_is_not_a_class(tmp_path):
    from bench.data.imagefolder import ImageFolder

    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "train" / "c_empty").mkdir()
    (root / "train" / "c_empty" / "notes.txt").write_text("no images here")
    with pytest.warns(UserWarning, match="c_empty"):
        train = ImageFolder(root, "train")
    val = ImageFolder(root, "val")
    assert train.classes == val.classes == ["a", "b"] and train.num_classes == 2
    assert train.empty_classes == ["c_empty"] and val.empty_classes == []
    assert train.identity()["classes"] == 2


def test_train_and_val_classes_must_match(tmp_path):
    from bench.data.imagefolder import ImageFolder

    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3, "c": 2})
    for p in (root / "val" / "c").iterdir():
        p.unlink()  # c has images in train only
    for split in ("train", "val"):
        with pytest.raises(BenchError) as err, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ImageFolder(root, split)
        one_line(err.value, str(root), "only in train: ['c']")
