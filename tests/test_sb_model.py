"""SpatialBoost model pieces: dual-channel attention (exactness, gate gradient, frozen-path backward),
per-stage trainable parameters, visual-token splicing, checkpoint round trip, the clear errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.spatialboost.checkpoint import apply_mode
from bench.spatialboost.dual_attention import LoRALinear, dual_layers, gate_stats, is_adapter_param, param_growth


def _timm(arch="vit_tiny_patch16_224", **kw):
    from bench.encoders.backends.timm_backend import TimmEncoder

    return TimmEncoder.create(arch, name="t", seed=0, depth=2, img_size=32, **kw)


def _hf(config_class: str, **kw):
    import transformers

    from bench.encoders.backends.hf_backend import HFEncoder

    base = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8)
    return HFEncoder.from_config(getattr(transformers, config_class)(**{**base, **kw}), name="t")


ENCODERS = {
    "timm-vit": lambda: _timm(),
    "timm-eva-dinov3": lambda: _timm("vit_small_patch16_dinov3", embed_dim=64, num_heads=2),
    "hf-dinov3": lambda: _hf("DINOv3ViTConfig", image_size=32, num_register_tokens=2),
    "hf-dinov2": lambda: _hf("Dinov2Config", image_size=32),
    "hf-siglip2": lambda: _hf("Siglip2VisionConfig", num_patches=16),
}


def _images(n=2, res=32, seed=0):
    return torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_dual_channel_is_exact_at_init(kind):
    enc = ENCODERS[kind]()
    x = _images()
    with torch.no_grad():
        ref = enc(x, n_last_blocks=enc.num_blocks)
    layers = apply_mode(enc, "dual")
    assert len(layers) == enc.num_blocks and len(dual_layers(enc)) == enc.num_blocks
    with torch.no_grad():
        out = enc(x, n_last_blocks=enc.num_blocks)
    assert torch.equal(ref.cls, out.cls)
    for a, b in zip(ref.blocks, out.blocks):
        assert torch.equal(a.patches, b.patches) and torch.equal(a.cls, b.cls)
    stats = gate_stats(enc)
    assert all(s["mean"] == s["min"] == s["max"] == 0.5 for s in stats)


def test_open_clip_multihead_attention_is_exact():
    open_clip = pytest.importorskip("open_clip")
    from bench.spatialboost.dual_attention import wrap_dual_channel

    visual = open_clip.CLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=2, width=64, head_width=32,
                                                          patch_size=8),
                            text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1)).visual
    x = _images()
    with torch.no_grad():
        ref = visual(x)
    assert wrap_dual_channel(visual, 64, expected_layers=2) == ["transformer.resblocks.0.attn",
                                                                "transformer.resblocks.1.attn"]
    with torch.no_grad():
        assert torch.equal(ref, visual(x))


def test_pooling_heads_are_not_wrapped():
    enc = ENCODERS["hf-siglip2"]()
    layers = apply_mode(enc, "dual")
    assert all("head" not in p for p in layers)


def _adapter_params(enc, mode="dual"):
    for n, p in enc.named_parameters():
        p.requires_grad_(is_adapter_param(n, mode))
    return [p for p in enc.parameters() if p.requires_grad]


def test_gate_gradient_zero_at_step0_then_moves():
    enc = _timm()
    apply_mode(enc, "dual")
    params = _adapter_params(enc)
    opt = torch.optim.Adam(params, lr=1e-2)
    x = _images()
    gates = [m.gate_logit for _, m in dual_layers(enc)]
    plus = [p for n, p in enc.named_parameters() if ".plus." in n]

    enc(x).patches.pow(2).mean().backward()
    for g in gates:
        assert g.grad is not None and torch.count_nonzero(g.grad) == 0, "gate gradient must be exactly 0 at init"
    assert any(torch.count_nonzero(p.grad) > 0 for p in plus)
    opt.step()
    opt.zero_grad()
    assert all(torch.count_nonzero(g) == 0 for g in gates), "Adam on a zero gradient leaves the gate at 0"

    enc(x).patches.pow(2).mean().backward()  # Attn+ has diverged now
    assert all(torch.count_nonzero(g.grad) > 0 for g in gates)
    opt.step()
    assert all(torch.count_nonzero(g) > 0 for g in gates)
    alpha = gate_stats(enc)
    assert any(s["min"] != 0.5 or s["max"] != 0.5 for s in alpha)


def test_frozen_attention_takes_part_in_backward():
    """The frozen Attn is in the graph: its backward runs and carries gradient to block 1's input."""
    enc = _timm()
    apply_mode(enc, "dual")
    _adapter_params(enc)
    block1 = enc.model.blocks[1]
    seen = {}

    def on_backward(module, grad_input, grad_output):
        seen["base"] = grad_input[0]

    block1.attn.base.register_full_backward_hook(on_backward)
    captured = {}

    def keep_input(module, args):
        args[0].retain_grad()
        captured["x"] = args[0]

    block1.register_forward_pre_hook(keep_input)
    enc(_images()).patches.pow(2).mean().backward()
    assert "base" in seen and torch.count_nonzero(seen["base"]) > 0, "frozen Attn of block 1 ran no backward"
    with_base = captured["x"].grad.clone()

    # the same backward with the frozen path cut: block 1's input gradient changes, so the frozen
    # Attn path contributed to it (and hence to every earlier block's Attn+ gradient)
    base_forward = block1.attn.base.forward
    block1.attn.base.forward = lambda *a, **k: base_forward(*a, **k).detach()
    enc.zero_grad()
    enc(_images()).patches.pow(2).mean().backward()
    cut = captured["x"].grad
    assert (with_base - cut).abs().max() > 1e-2 * with_base.abs().max()
    block0_plus = [p.grad for n, p in enc.named_parameters() if n.startswith("model.blocks.0.attn.plus.")]
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in block0_plus)


def test_param_growth_and_lora_exact():
    enc = _timm()
    apply_mode(enc, "dual")
    g = param_growth(enc)
    attn = sum(p.numel() for n, p in enc.named_parameters() if ".plus." in n)
    assert g["extra_params"] == attn + 2 * enc.embed_dim
    assert 20 < g["growth_pct"] < 40

    enc2 = _timm()
    x = _images()
    with torch.no_grad():
        ref = enc2(x).patches
    apply_mode(enc2, "lora", lora_rank=4)
    assert any(isinstance(m, LoRALinear) for m in enc2.modules())
    with torch.no_grad():
        assert torch.equal(ref, enc2(x).patches)  # B = 0 at init


# ---------------------------------------------------------------------------------------- VLM
def _vlm(mode="dual", vocab=64, image_token=3):
    from bench.vlm.llm import TinyLLMConfig, build_tiny_llm
    from bench.vlm.model import SpatialVLM

    enc = _timm()
    apply_mode(enc, mode)
    llm = build_tiny_llm(vocab, TinyLLMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                                              intermediate_size=64, max_positions=256))
    return SpatialVLM(enc, llm, image_token)


def test_stage_trainable_parameters():
    from bench.spatialboost.build import set_trainable

    vlm = _vlm()
    names = {n for n, _ in vlm.named_parameters()}
    proj = {n for n in names if n.startswith("projector.")}
    llm = {n for n in names if n.startswith("llm.")}
    plus = {n for n in names if n.startswith("encoder.") and ".plus." in n}
    gates = {n for n in names if n.endswith(".gate_logit")}
    assert proj == {"projector.0.weight", "projector.0.bias", "projector.2.weight", "projector.2.bias"}
    assert gates == {f"encoder.model.blocks.{i}.attn.gate_logit" for i in range(2)}
    assert {n.split(".plus.")[1] for n in plus} == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}

    assert set(set_trainable(vlm, 1, "dual")) == proj
    assert set(set_trainable(vlm, 2, "dual")) == proj | llm
    s3 = set(set_trainable(vlm, 3, "dual"))
    assert s3 == proj | plus | gates
    assert not any(".base." in n for n in s3) and not (s3 & llm)
    # frozen modules still pass gradients: stage 3 needs d loss / d visual tokens through the LLM
    assert all(not p.requires_grad for n, p in vlm.named_parameters() if n.startswith("llm."))

    full = _vlm("full")
    encoder_all = {n for n, _ in full.named_parameters() if n.startswith("encoder.")}
    assert set(set_trainable(full, 3, "full")) == proj | encoder_all
    lora = _vlm("lora")
    s3l = set(set_trainable(lora, 3, "lora"))
    assert s3l - proj and all(n.endswith(("lora_a", "lora_b")) for n in s3l - proj)


def test_splice_multi_image_positions_and_labels():
    vlm = _vlm(image_token=3)
    T, D = 4, vlm.llm.get_input_embeddings().embedding_dim
    ids = torch.tensor([[10, 3, 11, 3, 12, 13, 0, 0],  # two images, padded
                        [3, 20, 21, 22, 23, 24, 25, 26]])  # one image
    mask = (torch.arange(8)[None] < torch.tensor([[6], [8]])).long()
    labels = torch.full_like(ids, -100)
    labels[0, 4:6] = ids[0, 4:6]
    labels[1, 5:] = ids[1, 5:]
    visual = torch.arange(3 * T * D, dtype=torch.float32).reshape(3, T, D) + 1000
    emb, m, lab, pos = vlm.splice(ids, mask, labels, visual, [2, 1])
    table = vlm.llm.get_input_embeddings().weight
    assert emb.shape == (2, 6 + 2 * (T - 1), D)  # row 0's 6 real tokens + 2 images; trailing padding trimmed
    # row 0: [10, img0 x T, 11, img1 x T, 12, 13, pad, pad]
    assert torch.equal(emb[0, 0], table[10].detach()) and torch.equal(emb[0, 1:1 + T], visual[0])
    assert torch.equal(emb[0, 1 + T], table[11].detach())
    assert torch.equal(emb[0, 2 + T:2 + 2 * T], visual[1])
    assert torch.equal(emb[0, 2 + 2 * T], table[12].detach())
    assert torch.equal(emb[1, 0:T], visual[2]) and torch.equal(emb[1, T], table[20].detach())
    assert (lab[0, 1:1 + T] == -100).all() and (lab[0, 2 + T:2 + 2 * T] == -100).all() and (lab[1, :T] == -100).all()
    assert lab[0, 2 + 2 * T].item() == 12 and lab[0, 3 + 2 * T].item() == 13
    assert m[0].sum().item() == 6 - 2 + 2 * T and m[1].sum().item() == 8 - 1 + T
    assert m[1].sum() == 8 - 1 + T and m[1, 8 - 1 + T:].sum() == 0  # row 1 is shorter: padded, masked
    assert pos[1, -1].item() == 8 - 1 + T - 1


def test_vlm_forward_loss_and_errors():
    from bench.vlm.model import UnsupervisedSampleError

    vlm = _vlm(image_token=3)
    ids = torch.tensor([[1, 3, 5, 6, 7, 8], [1, 3, 3, 9, 10, 11]])
    labels = ids.clone()
    labels[:, :4] = -100
    images = [_images(1), _images(2, seed=1)]
    out = vlm(ids, torch.ones_like(ids), labels, images)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["n_supervised"].item() == 4  # 2 tokens per row after the shift
    out["loss"].backward()
    with pytest.raises(ValueError, match="placeholders"):
        vlm(ids, torch.ones_like(ids), labels, [_images(1), _images(1)])
    bad = labels.clone()
    bad[1] = -100
    with pytest.raises(UnsupervisedSampleError):
        vlm(ids, torch.ones_like(ids), bad, images)


# ------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_is_exact():
    from bench.encoders import load_encoder
    from bench.spatialboost.checkpoint import CheckpointError, save_boosted
    from bench.spatialboost.encoder import checkpoint_path
    from bench.vlm.model import build_projector

    enc = load_encoder("vit-tiny")
    layers = apply_mode(enc, "dual")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a "trained" state: Attn+ and gates moved
        for n, p in enc.named_parameters():
            if is_adapter_param(n, "dual"):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    proj = build_projector(enc.embed_dim, 32)
    path = checkpoint_path("vit-tiny+sb")
    save_boosted(path, enc, proj, mode="dual", objective="llm", base_name="vit-tiny", base_weights_id=enc.weights_id,
                 base_random_init=True, base_seed=0, base_weights_path=None, config={"x": 1}, manifest_hash="abc",
                 layers=layers)
    loaded = load_encoder("vit-tiny+sb")
    assert loaded.name == "vit-tiny+sb" and loaded.weights_id.startswith("sb-")
    assert loaded.weights_id != enc.weights_id and loaded.random_init
    sd_a, sd_b = enc.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    x = _images(2, 64)
    enc.eval()
    with torch.no_grad():
        a, b = enc(x, n_last_blocks=2), loaded(x, n_last_blocks=2)
    assert all(torch.equal(p.patches, q.patches) for p, q in zip(a.blocks, b.blocks))

    # a checkpoint of another base is refused, never silently loaded
    other = checkpoint_path("vit-tiny+sb-wrong")
    save_boosted(other, enc, proj, mode="dual", objective="llm", base_name="vit-tiny", base_weights_id="deadbeef",
                 base_random_init=False, base_seed=0, base_weights_path=None, config={}, manifest_hash="abc",
                 layers=layers)
    with pytest.raises(CheckpointError, match="weights"):
        load_encoder("vit-tiny+sb", weights=other)


def test_missing_checkpoint_that_cannot_be_trained_is_a_clear_error():
    from bench.encoders import load_encoder
    from bench.errors import NotTrainedError

    # a pretrained base whose weights are absent: no checkpoint, and no way to train one here
    with pytest.raises(NotTrainedError) as info:
        load_encoder("dinov2-vits14+sb")
    msg = str(info.value)
    assert "no SpatialBoost checkpoint" in msg and "base encoder weights" in msg and "bench sb train" in msg
    assert "timm/vit_small_patch14_dinov2.lvd142m" in msg


def test_missing_llm_is_named(monkeypatch):
    from bench.vlm.llm import MissingLLMError, resolve_llm_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingLLMError, match="--llm"):
        resolve_llm_path("Qwen/definitely-not-cached-7B")


def test_config_profiles_and_overrides():
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.trainer import cosine_schedule

    cfg = resolve_config(["stage3.lr=1e-4"], encoder="vit-tiny")
    assert cfg.hparams == "tiny" and cfg.stage3.lr == 1e-4  # the user's value beats the profile
    assert any(o.startswith("stage2.lr") for o in cfg.overrides)
    assert not any(o.startswith("stage3.lr") for o in cfg.overrides)
    paper = resolve_config(hparams="paper")
    assert (paper.stage1.lr, paper.stage1.global_batch, paper.stage2.lr, paper.stage2.global_batch,
            paper.stage3.lr, paper.stage3.global_batch) == (2e-3, 256, 2e-5, 128, 2e-5, 128)
    assert paper.overrides == [] and paper.stage3.warmup_ratio == 0.03

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched, warm = cosine_schedule(opt, 100, 0.03)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert warm == 3 and lrs[2] == 1.0 and lrs[0] < lrs[1] < lrs[2] and lrs[-1] < 0.01


def test_cli_registers_sb_commands():
    from bench.cli import build_parser

    args = build_parser().parse_args(["sb", "train", "--encoder", "vit-tiny", "--stage", "3",
                                      "--set", "stage3.lr=1e-3"])
    assert callable(args.fn) and args.stage == "3" and args.set == ["stage3.lr=1e-3"]
    assert callable(build_parser().parse_args(["sb", "info", "vit-tiny+sb"]).fn)
