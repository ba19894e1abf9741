"""A 3D head learns something that TRANSFERS: grounding trained through the real task code path
(Task.run, real lifting masks, box pooling, MatchModule, RefCE + contrastive losses) on the 20
training scenes of the `heldout` twin and scored on its 10 unseen val scenes, with the test-only
object oracle (one-hot category and colour of the point's object, + noise). Held-out registration is
not solved yet: docs/3d.md, "Measured", lists what was tried."""
from __future__ import annotations

import pytest

from tests.conftest import run_task
from tests.test_scene3d_support import object_oracle_lifter


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    from bench.data.synth.scannet3d import ensure3d

    return ensure3d("heldout", tmp_path_factory.mktemp("s3d-heldout") / "scannet3d", progress=False)


def test_grounding_transfers_to_heldout_descriptions(heldout, monkeypatch, counting_encoder, one_thread):
    import tasks.scene3d.scenes as scenes

    monkeypatch.setattr(scenes, "SceneLifter", object_oracle_lifter())
    result, ctx = run_task("synth-scanrefer-vg", counting_encoder, heldout)
    m = result.metrics
    assert ctx.params["text_encoder_used"].startswith("tiny-offline")
    assert ctx.params["scenes_train"] == 20 and ctx.params["scenes_val"] == 10
    assert ctx.params["referrals_val"] >= 80 and ctx.params["referrals_skipped"] == 0
    # measured: val Acc@0.5 46.2 vs chance 13.4 (unique 76.0, multiple 34.8); train 77.3
    assert m["accuracy"] >= 2.5 * m["chance"] and m["accuracy"] >= m["chance"] + 25, m
    assert m["accuracy_unique"] >= 50, m
