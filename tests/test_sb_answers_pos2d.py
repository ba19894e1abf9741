"""`projector=KIND+pos2d`: the visual tokens keep their grid cell (the held-out-answers diagnosis, docs/spatialboost.md)."""
import math

import pytest
import torch

from bench.posenc import sincos_2d
from bench.vlm.model import build_projector


def test_sincos_2d_hand_values():
    code = sincos_2d(8, 3, 3)  # q = 2 frequencies: 1 and 1/100
    assert code.shape == (9, 8)
    assert torch.allclose(code[0], torch.tensor([0., 0., 1., 1., 0., 0., 1., 1.]))
    cell = 1 * 3 + 2  # row 1, column 2
    expect = [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01),
              math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02)]
    assert torch.allclose(code[cell], torch.tensor(expect), atol=1e-6)


def test_pos2d_projector_tells_identical_patches_apart_and_keeps_the_state_dict():
    torch.manual_seed(0)
    plain, pos = build_projector(6, 16), build_projector(6, 16, "mlp2x_gelu+pos2d")
    assert list(plain.state_dict()) == list(pos.state_dict())  # stage checkpoints load either way
    pos.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 6).expand(2, 16, 6)  # every patch the same feature
    same = plain(x)
    assert torch.allclose(same[:, :1].expand_as(same), same)  # the plain projector: 16 identical tokens
    out = pos(x)
    assert torch.allclose(out - same, sincos_2d(16, 4, 4).expand(2, 16, 16), atol=1e-6)
    assert torch.cdist(out[0], out[0]).fill_diagonal_(1.0).min() > 0.1  # every grid cell differs
    with pytest.raises(ValueError, match="square"):
        pos(torch.randn(1, 15, 6))
    with pytest.raises(ValueError, match="pos2d"):
        build_projector(6, 16, "conv+pos2d")
