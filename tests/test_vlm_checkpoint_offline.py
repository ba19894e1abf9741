"""Which base encoders may have their VLM (stages 1-2 with the toy LLM) trained on the spot."""
from __future__ import annotations

from types import SimpleNamespace

import pytest


def test_only_encoders_made_here_get_stages_1_2_trained_on_the_spot(tmp_path, monkeypatch):
    from bench.errors import NotTrainedError
    import bench.spatialboost.vlm_checkpoint as vc

    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    trained = []
    monkeypatch.setattr("bench.spatialboost.train.train", lambda cfg, stages: trained.append((cfg.encoder, stages)))
    downloaded = SimpleNamespace(name="dinov2-vitb14", random_init=False)
    with pytest.raises(NotTrainedError, match=r"no VLM for dinov2-vitb14: .*bench sb train --encoder dinov2-vitb14"):
        vc.ensure_stage2(downloaded)
    assert not trained
    for made_here in (SimpleNamespace(name="vit-tiny-synth", random_init=False),  # self-pretrained here
                      SimpleNamespace(name="vit-tiny", random_init=True)):
        with pytest.raises(NotTrainedError, match="stages 1-2 wrote no checkpoint"):  # the stub writes nothing
            vc.ensure_stage2(made_here)
    assert [stages for _, stages in trained] == [(1, 2), (1, 2)]
    with pytest.raises(NotTrainedError, match="no VLM for vit-tiny-synth"):  # not allowed to train: refused
        vc.ensure_stage2(SimpleNamespace(name="vit-tiny-synth", random_init=False), train_missing=False)
    assert len(trained) == 2
