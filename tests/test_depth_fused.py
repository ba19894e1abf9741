"""The depth grid's fused path (one BatchNorm normalisation per step for every linear bank, the
conv + bins decode as one autograd node, heads scored together) against DINOv2's linear head written
plainly with torch ops (BatchNorm2d over the [patch, CLS] map, a 1x1 conv, the "linear" bins rule,
SigLoss) and trained alone by torch's AdamW with per-head gradient clipping: same seed, same batches
-> the same weights and losses within float noise."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from heads.depth import (BinSpec, DepthFeatures, LinearDepthHeads, TrainConfig, batch_order, bins_to_depth, sigloss,
                         train_bank)

BINS = BinSpec(16, 1e-3, 10.0)
DIM, H, W = 8, 3, 4


def _data(n: int = 12, seed: int = 0) -> DepthFeatures:
    g = torch.Generator().manual_seed(seed)
    patches = (torch.randn(n, 4, H, W, DIM, generator=g) * 2 + 1).half()
    cls = torch.randn(n, 4, DIM, generator=g).half()
    # depth correlated with the features, so the heads have something to learn
    depth = 3 + patches[:, -1, :, :, 0].float().repeat_interleave(2, 1).repeat_interleave(2, 2)
    targets = (depth.clamp(0.2, 9) * 1000).to(torch.int32)
    targets[:, 0, 0] = 0  # an invalid pixel
    return DepthFeatures(patches, cls, targets, 1000.0)


def _reference(member: LinearDepthHeads, data: DepthFeatures, cfg: TrainConfig, lr: float):
    """One head trained alone, written the plain way (DINOv2 BNHead on the patch grid)."""
    c = member.w_patch.shape[-1]
    conv_w = torch.nn.Parameter(torch.cat([member.w_patch[0], member.w_cls[0]], 1).detach().clone()[..., None, None])
    conv_b = torch.nn.Parameter(member.bias[0].detach().clone())
    bn_w = torch.nn.Parameter(torch.cat([member.bn_weight_patch[0], member.bn_weight_cls[0]]).detach().clone())
    bn_b = torch.nn.Parameter(torch.cat([member.bn_bias_patch[0], member.bn_bias_cls[0]]).detach().clone())
    run_mean, run_var = torch.zeros(2 * c), torch.ones(2 * c)
    params = [conv_w, conv_b, bn_w, bn_b]
    opt = torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    losses = []
    for step, idx in enumerate(batch_order(len(data), cfg.batch_size, cfg.iterations, 0)):
        patches, cls, target = data.batch(idx)
        b, h, w, L, d = patches.shape
        n = member.n_layers
        xp = patches[..., L - n:, :].reshape(b, h, w, n * d).permute(0, 3, 1, 2)
        xc = cls[:, L - n:].reshape(b, n * d)[:, :, None, None].expand(b, n * d, h, w)
        x = F.batch_norm(torch.cat([xp, xc], 1), run_mean, run_var, bn_w, bn_b, training=True)
        logits = F.conv2d(x, conv_w, conv_b)
        pred = F.interpolate(bins_to_depth(logits, BINS), size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss = sigloss(pred, target, target > 0, warmup=step < cfg.sigloss_warmup)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        for group in opt.param_groups:
            group["lr"] = lr * cfg.lr_factor(step)
        opt.step()
        losses.append(float(loss.detach()))
    return conv_w.detach()[..., 0, 0], conv_b.detach(), bn_w.detach(), run_mean, run_var, losses


def test_fused_grid_members_equal_heads_trained_alone_the_plain_way():
    data = _data()
    cfg = TrainConfig(iterations=8, batch_size=4, grad_clip=0.5, sigloss_warmup=2)  # clipping active
    lrs = [1e-3, 3e-2]
    banks = [LinearDepthHeads(DIM, 1, True, BINS, upsample=1, k=2, seed=3),
             LinearDepthHeads(DIM, 4, True, BINS, upsample=1, k=2, seed=3)]
    start = [[bank.member(j) for j in range(2)] for bank in banks]
    result = train_bank(banks, [lrs, lrs], data, cfg)
    logged_steps = [s for s in range(cfg.iterations) if s % 10 == 0 or s == cfg.iterations - 1]
    for bi, bank in enumerate(banks):
        for j, lr in enumerate(lrs):
            w, b, bn_w, mean, var, losses = _reference(start[bi][j], data, cfg, lr)
            logged = [losses[s] for s in logged_steps]
            trained = bank.member(j)
            torch.testing.assert_close(torch.cat([trained.w_patch[0], trained.w_cls[0]], 1), w, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(trained.bias[0], b, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(torch.cat([trained.bn_weight_patch[0], trained.bn_weight_cls[0]]), bn_w,
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(torch.cat([trained.bn_mean_patch, trained.bn_mean_cls]), mean, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(torch.cat([trained.bn_var_patch, trained.bn_var_cls]), var, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(w, torch.cat([start[bi][j].w_patch[0], start[bi][j].w_cls[0]], 1))  # it trained
            torch.testing.assert_close(torch.tensor(result.losses[bi * 2 + j]), torch.tensor(logged), rtol=1e-5, atol=1e-6)


def test_fused_decode_and_its_gradient_equal_autograd():
    """The fused conv + bins node = `logits` then `bins_to_depth` under autograd (values and every grad)."""
    head = LinearDepthHeads(DIM, 2, True, BINS, upsample=1, k=3, seed=1)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    ref = LinearDepthHeads(DIM, 2, True, BINS, upsample=1, k=3, seed=1)
    ref.load_state_dict(head.state_dict())
    patches, cls, _ = _data(4, seed=5).batch(torch.arange(4))
    depth = head(patches, cls)
    plain = bins_to_depth(ref.logits(patches, cls), BINS, dim=-1).permute(2, 0, 3, 1).reshape(3, 4, 1, H, W)
    torch.testing.assert_close(depth, plain)
    weights = torch.randn(depth.shape, generator=torch.Generator().manual_seed(0))
    (depth * weights).sum().backward()
    (plain * weights).sum().backward()
    for (name, p), q in zip(head.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
    head.eval(), ref.eval()
    with torch.inference_mode():  # evaluation (running statistics) takes the same path
        torch.testing.assert_close(head(patches, cls), bins_to_depth(ref.logits(patches, cls), BINS, dim=-1)
                                   .permute(2, 0, 3, 1).reshape(3, 4, 1, H, W))
