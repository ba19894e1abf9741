"""Extraction on a small CPU machine whose every core runs a forward thread decodes in the main
process (no loader worker to preempt the forward); with a core to spare, many cores, or a GPU, it
keeps its workers. Either way the same images reach the encoder in the same order, so the features
are identical."""
from __future__ import annotations

import torch

from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import Extractor, FeatureSpec
from tests.conftest import write_image_folder


def test_cpu_extraction_decodes_in_process_when_the_forward_fills_every_core(tmp_path, counting_encoder, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 4}, size=(50, 37))
    ds = ImageFolder(root, "train", EvalTransform(counting_encoder.preprocess))
    spec = FeatureSpec(("cls", "patches"), 2)
    ex = Extractor(counting_encoder, device=torch.device("cpu"), batch_size=3, num_workers=1)
    assert Extractor(counting_encoder, device=torch.device("cuda"), num_workers=2).loader_workers() == 2
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("bench.features.os.cpu_count", lambda: 16)
        torch.set_num_threads(16)
        assert ex.loader_workers() == 1  # many cores: workers kept
        monkeypatch.setattr("bench.features.os.cpu_count", lambda: 2)
        torch.set_num_threads(2)
        assert ex.loader_workers() == 0 and ex.loader(ds).num_workers == 0
        in_process = ex.run(ds, spec, progress=False)
        torch.set_num_threads(1)  # a core to spare
        assert ex.loader_workers() == 1
        with_worker = ex.run(ds, spec, progress=False)
        for k in in_process:
            assert torch.equal(in_process[k], with_worker[k])
    finally:
        torch.set_num_threads(before)
    direct = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.inference_mode():
        ref = counting_encoder(direct, n_last_blocks=2)
    torch.testing.assert_close(in_process["cls"], torch.stack([b.cls for b in ref.blocks[-2:]], 1).half())
