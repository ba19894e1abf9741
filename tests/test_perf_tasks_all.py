"""The tasks-all perf case's bookkeeping: every booked target still exists (a rename would silently
move its time to "unbooked"), the floor counts each distinct (images, transform) once, and the
breakdown adds up to the wall time."""
from __future__ import annotations

import importlib

import pytest

from bench import timing
from bench.perf.tasks_all import BOOKINGS, breakdown, floor_passes, forwarded


@pytest.mark.parametrize("target", sorted(BOOKINGS))
def test_every_booked_target_resolves(target):
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    for part in path.split("."):
        owner = getattr(owner, part)
    assert callable(owner), target
    assert BOOKINGS[target] in (*timing.PHASES, "task other")


def test_floor_counts_each_image_set_once_and_every_on_the_fly_pass():
    counts = {
        "rows|aaaa.spec1|224x224": 100, "rows|aaaa.spec2|224x224": 100,  # two specs of the same images
        "rows|bbbb.spec1|224x304": 40,
        "rows|on-the-fly.11|224x224": 7, "rows|on-the-fly.12|224x224": 5,  # test passes: each is a forward
        "forward_images": 3,  # not a rows| counter
    }
    assert floor_passes(counts) == {(224, 224): 112, (224, 304): 40}
    assert forwarded(counts) == 252


def test_breakdown_adds_up_to_the_wall_time():
    times = {"forward": 10.0, "lift": 2.0, "runner": 1.0, "custom": 0.5}
    parts = breakdown(times, wall=20.0)
    assert parts["forward"] == 10.0 and parts["custom"] == 0.5 and parts["render"] == 0.0
    assert sum(parts.values()) == pytest.approx(20.0)
    assert parts["unbooked"] == pytest.approx(6.5)


def test_knn_reads_the_same_last_cls_from_the_linear_probes_shared_entry():
    """kNN's feature request is the linear probe's (CLS + avgpool, last 4 blocks) so one extraction
    serves both; the last block's CLS in it is bit-identical to a 1-block CLS-only extraction."""
    import torch

    from bench.encoders import load_encoder
    from bench.features import FeatureSpec, select_features
    from tasks.classification.knn import cls_spec

    enc = load_encoder("vit-tiny").eval()
    assert cls_spec(enc.num_blocks) == FeatureSpec(("cls", "avgpool"), 4)
    assert cls_spec(2) == FeatureSpec(("cls", "avgpool"), 2)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        alone = select_features(enc(x, n_last_blocks=1), FeatureSpec(("cls",), 1))["cls"]
        shared = select_features(enc(x, n_last_blocks=4), cls_spec(enc.num_blocks))["cls"]
    assert shared.shape[1] == 4
    assert torch.equal(alone[:, -1].half(), shared[:, -1].half()) and torch.equal(alone[:, -1], shared[:, -1])
