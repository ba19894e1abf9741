import pytest
import torch

from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import Extractor, FeatureCache, FeatureSpec
from tests.conftest import write_image_folder


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "imgs", {"a": 7, "b": 6})


def _get(cache, encoder, dataset, spec=FeatureSpec(("cls", "avgpool"), 2)):
    extractor = Extractor(encoder, device=torch.device("cpu"), batch_size=4, num_workers=0)
    return cache.get_or_extract(extractor, dataset, identity=dataset.identity(),
                                transform=EvalTransform(encoder.preprocess).describe(), spec=spec, progress=False)


def test_second_run_extracts_nothing(tmp_path, folder, counting_encoder):
    dataset = ImageFolder(folder, "train", EvalTransform(counting_encoder.preprocess))
    cache = FeatureCache(tmp_path / "cache", shard_size=5)
    first = _get(cache, counting_encoder, dataset)
    assert counting_encoder.images_seen == 13 and cache.stats.extracted == 13
    assert first["cls"].shape == (13, 2, 8) and first["cls"].dtype == torch.float16
    again = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, dataset)
    assert counting_encoder.images_seen == 13  # nothing extracted the second time
    assert torch.equal(first["cls"], again["cls"]) and torch.equal(first["avgpool"], again["avgpool"])


def test_interrupted_run_resumes_from_finished_shards(tmp_path, folder, counting_encoder):
    dataset = ImageFolder(folder, "train", EvalTransform(counting_encoder.preprocess))
    cache = FeatureCache(tmp_path / "cache", shard_size=5)
    reference = _get(FeatureCache(tmp_path / "ref", shard_size=5), counting_encoder, dataset)
    counting_encoder.images_seen = 0

    calls = {"n": 0}
    original = counting_encoder._forward

    def dying_forward(images, n):
        calls["n"] += 1
        if calls["n"] == 3:  # dies in the second shard (batches of 4, shards of 5 images)
            raise KeyboardInterrupt
        return original(images, n)

    counting_encoder._forward = dying_forward
    with pytest.raises(KeyboardInterrupt):
        _get(cache, counting_encoder, dataset)
    counting_encoder._forward = original
    folder_ = next((tmp_path / "cache").rglob("index.json"), None)
    assert folder_ is None  # not sealed
    assert len(list((tmp_path / "cache").rglob("part-*.safetensors"))) == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no half-written shard left behind
    counting_encoder.images_seen = 0
    resumed = _get(cache, counting_encoder, dataset)
    assert counting_encoder.images_seen == 13 - 5  # only the unfinished shards
    assert torch.equal(resumed["cls"], reference["cls"])


def test_key_changes_with_spec_and_encoder_identity(folder, counting_encoder, tmp_path):
    dataset = ImageFolder(folder, "train", EvalTransform(counting_encoder.preprocess))
    cache = FeatureCache(tmp_path / "cache")
    t = EvalTransform(counting_encoder.preprocess).describe()
    k1, _ = cache.key(counting_encoder, dataset.identity(), t, FeatureSpec(("cls",), 1))
    k2, _ = cache.key(counting_encoder, dataset.identity(), t, FeatureSpec(("cls",), 4))
    counting_encoder.weights_id = "other"
    k3, _ = cache.key(counting_encoder, dataset.identity(), t, FeatureSpec(("cls",), 1))
    assert len({k1, k2, k3}) == 3


def test_reopening_with_another_shard_size_reads_the_recorded_shards(tmp_path, folder, counting_encoder):
    dataset = ImageFolder(folder, "train", EvalTransform(counting_encoder.preprocess))
    first = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, dataset)
    counting_encoder.images_seen = 0
    other = _get(FeatureCache(tmp_path / "cache", shard_size=4), counting_encoder, dataset)
    assert counting_encoder.images_seen == 0 and other.shards == first.shards == [(0, 5), (5, 10), (10, 13)]
    assert torch.equal(other["cls"], first["cls"]) and torch.equal(other.rows("cls", [12, 4]), first["cls"][[12, 4]])


def test_index_records_rows_size_and_checksum(tmp_path, folder, counting_encoder):
    import hashlib
    import json

    dataset = ImageFolder(folder, "train", EvalTransform(counting_encoder.preprocess))
    store = _get(FeatureCache(tmp_path / "cache", shard_size=5), counting_encoder, dataset)
    index = json.loads((store.folder / "index.json").read_text())
    assert index["format"] == 2 and index["dtype"] == "float16" and index["bounds"] == [[0, 5], [5, 10], [10, 13]]
    for part, (s, e) in zip(index["parts"], index["bounds"]):
        data = (store.folder / part["file"]).read_bytes()
        assert part["rows"] == e - s and part["bytes"] == len(data)
        assert part["sha256"] == hashlib.sha256(data).hexdigest()
