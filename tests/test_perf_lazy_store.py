"""The memory-mapped feature store: the same tensors as the shards hold, read lazily, integrity kept
(a damaged shard or flat file is found), and the depth features index rows without copying them."""
from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import save_file

import bench.feature_store as fs
from bench.errors import CacheError
from bench.feature_store import FeatureStore, file_sha256, part_name


def _entry(tmp_path, n=50, shard=16, dtype=torch.float16):
    g = torch.Generator().manual_seed(0)
    full = {"cls": torch.randn(n, 2, 8, generator=g).to(dtype), "patches": torch.randn(n, 2, 3, 3, 8, generator=g).to(dtype)}
    bounds, parts = [(s, min(s + shard, n)) for s in range(0, n, shard)], []
    for i, (s, e) in enumerate(bounds):
        path = tmp_path / part_name(i)
        save_file({k: v[s:e].contiguous() for k, v in full.items()}, str(path))
        parts.append({"file": path.name, "rows": e - s, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return full, bounds, parts


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_mapped_store_equals_the_shards_in_memory_and_flat(tmp_path, monkeypatch, dtype):
    full, bounds, parts = _entry(tmp_path, dtype=dtype)
    in_memory = FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts])
    assert torch.equal(in_memory["cls"], full["cls"])  # small: concatenated in memory
    monkeypatch.setattr(fs, "FLAT_MIN_BYTES", 0)
    flat = FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts])
    got = flat["patches"]
    assert got.dtype == dtype and torch.equal(got, full["patches"])
    assert (tmp_path / "flat-patches.bin").exists()
    assert torch.equal(flat.rows("cls", [49, 0, 17]), full["cls"][[49, 0, 17]])
    got[0] = 0  # copy-on-write: the reader may write, the files never change
    again = FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts])
    assert torch.equal(again["patches"], full["patches"])


def test_damaged_flat_file_is_rebuilt_and_damaged_shard_refused(tmp_path, monkeypatch):
    full, bounds, parts = _entry(tmp_path)
    monkeypatch.setattr(fs, "FLAT_MIN_BYTES", 0)
    FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts])["cls"]
    flat = tmp_path / "flat-cls.bin"
    raw = bytearray(flat.read_bytes())
    raw[5] ^= 0xFF
    flat.write_bytes(bytes(raw))
    assert torch.equal(FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts])["cls"], full["cls"])
    shard = tmp_path / part_name(1)
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="damaged feature shard"):
        FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts]).rows("cls", [20])
    repaired = []

    def repair(i):
        repaired.append(i)
        save_file({k: v[bounds[i][0]:bounds[i][1]].contiguous() for k, v in full.items()}, str(shard))
        return {"file": shard.name, "rows": 16, "bytes": shard.stat().st_size, "sha256": file_sha256(shard)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fs.CacheRepairWarning)
        store = FeatureStore(tmp_path, bounds, parts=[dict(p) for p in parts], repair=repair)
        assert torch.equal(store["patches"], full["patches"]) and repaired == [1]


def test_depth_features_subset_indexes_without_copying():
    from heads.depth import DepthFeatures

    g = torch.Generator().manual_seed(0)
    data = DepthFeatures(torch.randn(10, 4, 2, 3, 8, generator=g).half(), torch.randn(10, 4, 8, generator=g).half(),
                         torch.randint(1, 100, (10, 4, 6), generator=g, dtype=torch.int32), 10.0)
    sub = data.subset([7, 2, 5]).subset([2, 0])
    assert sub.patches.data_ptr() == data.patches.data_ptr() and len(sub) == 2
    p, c, t = sub.batch(torch.tensor([1, 0]))
    assert torch.equal(p, data.patches[[7, 5]].permute(0, 2, 3, 1, 4).float())
    assert torch.equal(c, data.cls[[7, 5]].float())
    assert torch.equal(t, data.targets[[7, 5]].float().div(10.0).unsqueeze(1))
    assert torch.equal(sub.target_rows(), data.targets[[5, 7]])
    assert sub.mean_valid_depth(0.0, 100.0) == pytest.approx(float(data.targets[[5, 7]].float().div(10).mean()), rel=1e-6)


def test_column_rows_read_across_shards(tmp_path):
    full, bounds, parts = _entry(tmp_path)
    col = FeatureStore(tmp_path, bounds, parts=parts).column("patches")
    assert len(col) == 50 and col.shape == full["patches"].shape and col.dtype == torch.float16
    idx = torch.tensor([49, 3, 16, 15, 32, 3])
    assert torch.equal(col[idx], full["patches"][idx]) and torch.equal(col[7], full["patches"][7])
    assert not (tmp_path / "flat-patches.bin").exists()  # rows, not a flat copy
