"""Each fused head path against its one-by-one reference: same seed, same batches -> the same
numbers within float noise (the speed work of `bench perf` must never change a result)."""
from __future__ import annotations

import copy

import pytest
import torch

from heads.linear import HeadSpec, LinearBank, head_grid


def _batches(n_steps: int, b: int = 24, dim: int = 6, classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    out = []
    for _ in range(n_steps):
        y = torch.randint(0, classes, (b,), generator=g)
        cls = torch.randn(b, 4, dim, generator=g) + centres[y][:, None]
        avg = torch.randn(b, 4, dim, generator=g) + 0.5 * centres[y][:, None]
        out.append((cls, avg, y))
    return out


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fused_linear_bank_step_equals_autograd_reference(weight_decay):
    """The fused step (addmm logits, in-place softmax gradient, momentum folded into the weight-gradient
    addmm) = the autograd step, head by head, over several momentum steps of the 52-head grid."""
    specs = head_grid(lrs=(1e-3, 0.1, 1.0))
    fused = LinearBank(specs, 6, 5, seed=2)
    ref = copy.deepcopy(fused)
    for step, (cls, avg, y) in enumerate(_batches(6)):
        lr = 1.0 - step / 6
        lf = fused.train_step(cls, avg, y, lr, momentum=0.9, weight_decay=weight_decay)
        lr_ = ref.train_step_reference(cls, avg, y, lr, momentum=0.9, weight_decay=weight_decay)
        torch.testing.assert_close(lf, lr_, rtol=1e-5, atol=1e-6)
    moved = False
    for h in range(len(specs)):
        (wf, bf), (wr, br), (w0, _) = fused.head_state(h), ref.head_state(h), LinearBank(specs, 6, 5, seed=2).head_state(h)
        torch.testing.assert_close(wf, wr, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bf, br, rtol=1e-5, atol=1e-6)
        moved |= not torch.allclose(wf, w0)
    assert moved  # the heads did train


def test_fused_bank_head_equals_the_head_trained_alone():
    """A member of the fused 52-head bank = the same spec trained as a one-head bank (fused as well):
    sharing the step changes nothing for a head."""
    specs = head_grid(lrs=(1e-2, 0.5))
    bank = LinearBank(specs, 6, 5, seed=1)
    alone = {h: LinearBank([s], 6, 5, seed=1) for h, s in enumerate(specs)}
    for cls, avg, y in _batches(4, seed=3):
        losses = bank.train_step(cls, avg, y, 1.0)
        for h, head in alone.items():
            torch.testing.assert_close(head.train_step(cls, avg, y, 1.0)[0], losses[h], rtol=1e-5, atol=1e-6)
    for h, head in alone.items():
        torch.testing.assert_close(bank.head_state(h)[0], head.head_state(0)[0], rtol=1e-5, atol=1e-6)


def test_bank_forward_orders_interleaved_groups():
    specs = [HeadSpec(4, True, 0.1), HeadSpec(1, False, 0.1), HeadSpec(4, True, 0.01)]
    bank = LinearBank(specs, 6, 4, seed=0)
    cls, avg, _ = _batches(1)[0]
    logits = bank(cls, avg)
    for h in range(3):
        w, b = bank.head_state(h)
        one = LinearBank([specs[h]], 6, 4, seed=0)
        torch.testing.assert_close(logits[:, h], one(cls, avg)[:, 0])
        torch.testing.assert_close(one.head_state(0)[0], w)


def test_exact_search_backends_agree_and_auto_is_recorded():
    """torch matmul + top-k = FAISS's flat index (both exact); auto on a CPU is torch."""
    pytest.importorskip("faiss")
    from bench.search import cosine_topk, resolve_backend

    g = torch.Generator().manual_seed(0)
    db = torch.randn(500, 16, generator=g)
    q = db[:40] + 0.3 * torch.randn(40, 16, generator=g)
    st, it = cosine_topk(q, db, 25, backend="torch")
    sf, i_f = cosine_topk(q, db, 25, backend="faiss-cpu")
    torch.testing.assert_close(st, sf, rtol=0, atol=1e-5)
    assert (it == i_f).float().mean() > 0.99 and (it[:, 0] == torch.arange(40)).all()
    assert resolve_backend(25, "cpu") == "torch"
    with pytest.raises(ValueError, match="did you mean 'faiss-cpu'"):
        resolve_backend(25, "cpu", "faiss_cpu")

