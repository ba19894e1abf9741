"""SpatialBoost trainer: the cost of dual-channel attention in a stage-3 optimiser step.

Baseline = the same VLM step (same tiny Qwen2 LLM, frozen, gradients flowing through it; same
projector; same batch) with the *plain* encoder fully trainable (no dual channel, every encoder
parameter updated: the paper's "full fine-tuning" ablation). Dual = the SpatialBoost step: frozen
Attn + trainable Attn+ and gates. Inputs are synthetic tensors (no recipe needed), so the ratio
measures the model, not data loading.
"""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed


def _step_fn(mode: str, device, res: int, batch: int, text_len: int, vocab: int = 1024):
    from bench.encoders import load_encoder
    from bench.spatialboost.checkpoint import apply_mode
    from bench.spatialboost.build import set_trainable
    from bench.vlm.llm import build_tiny_llm
    from bench.vlm.model import SpatialVLM

    enc = load_encoder("vit-tiny")
    apply_mode(enc, mode)
    vlm = SpatialVLM(enc, build_tiny_llm(vocab), image_token_id=3).to(device)
    names = set_trainable(vlm, 3, mode)
    params = [p for p in vlm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (batch, text_len), generator=g)
    ids[:, 4] = 3
    labels = ids.clone()
    labels[:, : text_len // 2] = -100
    ids, labels = ids.to(device), labels.to(device)
    mask = torch.ones_like(ids)
    images = [torch.randn(1, 3, res, res, generator=g).to(device) for _ in range(batch)]
    ac = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def step():
        if ac is not None:
            with ac:
                out = vlm(ids, mask, labels, images)
        else:
            out = vlm(ids, mask, labels, images)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    n_tokens = int(step()["n_tokens"])  # warm-up (allocations, Adam state)
    return step, n_tokens, sum(p.numel() for p in params), len(names)


@perf_case("sb stage-3 step")
def stage3_step(args) -> list[PerfRow]:
    from bench.features import resolve_device

    device = resolve_device(args.device)
    res, batch, text_len = (112, 4, 256) if args.quick else (224, 8, 512)
    repeats = 3 if args.quick else 5
    dual, n_tok, n_dual, _ = _step_fn("dual", device, res, batch, text_len)
    plain, _, n_full, _ = _step_fn("full", device, res, batch, text_len)
    dual()
    plain()
    t_dual = timed(dual, repeats)
    t_plain = timed(plain, repeats)
    note = (f"vit-tiny @{res}px, batch {batch}, {n_tok} tokens/step; dual {t_dual * 1000:.0f} ms "
            f"({n_dual / 1e6:.2f}M trainable) vs plain encoder fully trainable {t_plain * 1000:.0f} ms "
            f"({n_full / 1e6:.2f}M trainable); same tiny Qwen2 LLM, frozen")
    return [PerfRow("sb stage-3 step: dual-channel vs plain encoder", t_dual / t_plain, 1.5, note),
            PerfRow("sb stage-3 tokens/s (dual-channel)", n_tok / t_dual, None,
                    f"{n_tok / t_dual:.0f} tokens/s on {device.type}")]
