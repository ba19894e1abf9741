"""The uniform encoder interface on tiny random models (timm, transformers, open_clip), weights
resolution / safe loading, and the zoo registry. Offline; no pretrained weights are needed."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import pytest
import torch

from bench.encoders import ENCODERS, EncoderCard, encoder_card, load_encoder
from bench.encoders.weights import (MissingWeightsError, file_sha256, load_state_dict,
                                    resolve_weights)
from bench.registry import UnknownNameError

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402

from bench.encoders.backends.hf_backend import HFEncoder  # noqa: E402
from bench.encoders.backends.timm_backend import TimmEncoder  # noqa: E402

TINY_VIT = dict(depth=3, img_size=64, reg_tokens=4)  # vit_tiny with 4 registers
TINY_EVA = dict(depth=3, embed_dim=64, num_heads=2, img_size=64)  # DINOv3-like: RoPE, CLS + 4 registers
TINY_MAP = dict(depth=2, embed_dim=64, num_heads=2, img_size=64)  # SigLIP-like: no CLS, MAP head
HF_KW = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, image_size=32,
             patch_size=8)


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path, monkeypatch):
    """BENCH_HOME and the HF cache point at empty temporary folders; the hub is offline."""
    from huggingface_hub import constants

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "bench_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True, raising=False)


def _save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _images(b=2, h=64, w=64, seed=0):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _check_uniform(enc, x, k):
    with torch.no_grad():
        out = enc(x, n_last_blocks=k)
    b, _, H, W = x.shape
    p = enc.preprocess.patch_size
    assert out.cls.shape == (b, enc.embed_dim)
    assert out.patches.shape == (b, H // p, W // p, enc.embed_dim)  # registers / CLS dropped
    assert len(out.blocks) == k
    for blk in out.blocks:
        assert blk.cls.shape == out.cls.shape and blk.patches.shape == out.patches.shape
    assert torch.equal(out.blocks[-1].patches, out.patches) and torch.equal(out.blocks[-1].cls, out.cls)
    ident = enc.identity()
    assert ident["weights_id"] == enc.weights_id and ident["backend"] == enc.backend
    return out


# ------------------------------------------------------------------------------------------- timm
@pytest.mark.parametrize("arch,kw,n_prefix", [("vit_tiny_patch16_224", TINY_VIT, 5),
                                               ("vit_small_patch16_dinov3", TINY_EVA, 5)])
def test_timm_cls_and_registers(arch, kw, n_prefix):
    enc = TimmEncoder.create(arch, seed=0, **kw)
    assert enc.num_prefix_tokens == n_prefix and enc.has_cls and enc.backend == "timm"
    x = _images()
    out = _check_uniform(enc, x, 2)
    with torch.no_grad():
        ref = enc.model.forward_features(x)  # final-normed tokens [CLS, 4 registers, patches]
    torch.testing.assert_close(out.cls, ref[:, 0])
    torch.testing.assert_close(out.patches.flatten(1, 2), ref[:, n_prefix:])
    # non-native resolution (dynamic_img_size): grid follows the input
    with torch.no_grad():
        assert enc(_images(1, 96, 48), n_last_blocks=1).patches.shape == (1, 6, 3, enc.embed_dim)


def test_timm_cls_free_model_uses_pooled_embedding():
    enc = TimmEncoder.create("vit_base_patch16_siglip_224", seed=0, **TINY_MAP)
    assert not enc.has_cls
    x = _images()
    out = _check_uniform(enc, x, 2)
    with torch.no_grad():
        pooled = enc.model.forward_head(enc.model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(out.cls, pooled)  # MAP-pooled embedding for the last block
    torch.testing.assert_close(out.blocks[0].cls, out.blocks[0].patches.mean(dim=(1, 2)))  # patch mean before


def test_n_last_blocks_validation():
    enc = TimmEncoder.create("vit_tiny_patch16_224", seed=0, **TINY_VIT)
    x = _images(1)
    for bad in (0, -1, enc.num_blocks + 1):
        with pytest.raises(ValueError, match="n_last_blocks"):
            enc(x, n_last_blocks=bad)
    assert len(enc(x, n_last_blocks=enc.num_blocks).blocks) == enc.num_blocks


def test_seeded_random_init_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = TimmEncoder.create("vit_small_patch16_dinov3", seed=7, **TINY_EVA)
    assert torch.equal(torch.rand(3), expected_next)  # fork_rng: caller's RNG untouched
    b = TimmEncoder.create("vit_small_patch16_dinov3", seed=7, **TINY_EVA)
    c = TimmEncoder.create("vit_small_patch16_dinov3", seed=8, **TINY_EVA)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.weights_id == "random-init(seed=7)" and a.random_init and "[random-init]" in a.label
    h1 = HFEncoder.from_config(transformers.DINOv3ViTConfig(**HF_KW, num_register_tokens=4), seed=1)
    h2 = HFEncoder.from_config(transformers.DINOv3ViTConfig(**HF_KW, num_register_tokens=4), seed=1)
    h3 = HFEncoder.from_config(transformers.DINOv3ViTConfig(**HF_KW, num_register_tokens=4), seed=2)
    x = _images(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(h1(x).patches, h2(x).patches) and not torch.equal(h1(x).patches, h3(x).patches)


@pytest.mark.parametrize("arch,kw", [("vit_tiny_patch16_224", TINY_VIT), ("vit_small_patch16_dinov3", TINY_EVA)])
def test_timm_weights_round_trip(tmp_path, arch, kw):
    src = TimmEncoder.create(arch, seed=3, **kw)
    path = _save(src.model, tmp_path / "tiny.safetensors")
    card = EncoderCard("tiny", "timm", "test", hf_repo="org/tiny")
    rw = resolve_weights(card, path)
    assert rw.source == "file" and rw.repo is None and rw.path == path.resolve()
    assert rw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    dst = TimmEncoder.create(arch, weights=rw, seed=99, **kw)  # seed is irrelevant with weights
    assert dst.weights_id == rw.sha256[:16] and not dst.random_init
    x = _images()
    with torch.no_grad():
        a, b = src(x, n_last_blocks=2), dst(x, n_last_blocks=2)
    assert torch.equal(a.cls, b.cls) and torch.equal(a.patches, b.patches)
    assert torch.equal(a.blocks[0].patches, b.blocks[0].patches)


def test_load_encoder_with_explicit_weights(tmp_path):
    src = load_encoder("vit-tiny", seed=5)
    path = _save(src.model, tmp_path / "vit_tiny.safetensors")
    enc = load_encoder("vit-tiny", weights=path)
    assert enc.weights_id == file_sha256(path)[:16] and not enc.random_init and enc.name == "vit-tiny"
    x = _images(1, 224, 224)
    with torch.no_grad():
        assert torch.equal(src(x).cls, enc(x).cls)


# --------------------------------------------------------------------------------------- transformers
@pytest.mark.parametrize("cfg_name,n_reg", [("DINOv3ViTConfig", 4), ("Dinov2Config", 0),
                                            ("Dinov2WithRegistersConfig", 4)])
def test_hf_uniform_interface(cfg_name, n_reg):
    kw = dict(HF_KW, **({"num_register_tokens": n_reg} if n_reg else {}))
    enc = HFEncoder.from_config(getattr(transformers, cfg_name)(**kw), name="tiny", seed=0)
    assert enc.num_prefix_tokens == 1 + n_reg and enc.backend == "transformers"
    x = _images(2, 32, 32)
    out = _check_uniform(enc, x, 3)
    with torch.no_grad():
        last = enc.model(pixel_values=x).last_hidden_state
    torch.testing.assert_close(out.cls, last[:, 0])
    torch.testing.assert_close(out.patches.flatten(1, 2), last[:, 1 + n_reg:])


def test_hf_siglip2_naflex_cls_is_pooler_output():
    cfg = transformers.Siglip2VisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64, num_patches=16, patch_size=8)
    enc = HFEncoder.from_config(cfg, seed=0)
    assert enc.preprocess.resolution == 32 and not enc.has_cls
    x = _images(2, 32, 32)
    out = _check_uniform(enc, x, 2)
    p = 8  # reference: the processor's patch order (h, w, p, p, C)
    pv = x.reshape(2, 3, 4, p, 4, p).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, -1)
    with torch.no_grad():
        ref = enc.model(pixel_values=pv, pixel_attention_mask=torch.ones(2, 16, dtype=torch.long),
                        spatial_shapes=torch.tensor([[4, 4], [4, 4]]))
    torch.testing.assert_close(out.cls, ref.pooler_output)
    torch.testing.assert_close(out.patches.flatten(1, 2), ref.last_hidden_state)


def test_hf_weights_round_trip(tmp_path):
    src = HFEncoder.from_config(transformers.DINOv3ViTConfig(**HF_KW, num_register_tokens=4), seed=4)
    src.model.save_pretrained(tmp_path / "repo")  # config.json + model.safetensors
    card = EncoderCard("tiny-hf", "transformers", "test", hf_repo="org/tiny-hf")
    rw = resolve_weights(card, tmp_path / "repo")  # a folder: its weight file is picked
    assert rw.path.name == "model.safetensors"
    dst = HFEncoder.from_weights(rw, name="tiny-hf")
    x = _images(1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(src(x, 2).patches, dst(x, 2).patches, atol=1e-6)
    assert dst.weights_id == rw.sha256[:16]


# ------------------------------------------------------------------------------------------ open_clip
def test_openclip_tiny_round_trip(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from bench.encoders.backends.openclip_backend import OpenCLIPEncoder

    kw = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=3, width=64, patch_size=8, head_width=32),
              text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        clip = open_clip.create_model("ViT-B-16", pretrained=None, **kw).eval()
    path = _save(clip, tmp_path / "open_clip_model.safetensors")
    rw = resolve_weights(EncoderCard("oc", "open_clip", "test", hf_repo=None), path)
    enc = OpenCLIPEncoder.create("ViT-B-16", weights=rw, **kw)
    x = _images(2, 32, 32)
    out = _check_uniform(enc, x, 2)
    proj = OpenCLIPEncoder.create("ViT-B-16", weights=rw, cls_source="projected", **kw)
    with torch.no_grad():
        ref = clip.encode_image(x)
        torch.testing.assert_close(proj(x).cls, ref)  # projected image embedding
        torch.testing.assert_close(out.cls @ clip.visual.proj, ref)  # token cls = pre-projection pooled
    with pytest.raises(ValueError, match="native input size"):
        enc(_images(1, 48, 48))


# -------------------------------------------------------------------------------------- weights
def test_torch_load_path_unwraps_and_rejects_malicious_pickle(tmp_path):
    sd = {"a.weight": torch.randn(2, 2), "b": torch.arange(3)}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "ckpt.pth")
    got = load_state_dict(tmp_path / "ckpt.pth")
    assert set(got) == set(sd) and torch.equal(got["a.weight"], sd["a.weight"])

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"w": Evil()}}, f, protocol=2)
    rw = resolve_weights(EncoderCard("x", "timm", "test", hf_repo=None), tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(rw.path)
    assert not marker.exists()


def test_explicit_weights_errors(tmp_path):
    card = EncoderCard("x", "timm", "test", hf_repo="org/x")
    with pytest.raises(MissingWeightsError, match="no such file"):
        resolve_weights(card, tmp_path / "nope.safetensors")
    (tmp_path / "w.npz").write_bytes(b"0")
    with pytest.raises(ValueError, match="unsupported weights file"):
        resolve_weights(card, tmp_path / "w.npz")


def test_sha256_memo(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"abc" * 1000)
    digest = file_sha256(f)
    assert digest == hashlib.sha256(f.read_bytes()).hexdigest()
    memo_file = Path(os.environ["BENCH_HOME"]) / "cache" / "weights_hash.json"
    memo = json.loads(memo_file.read_text())
    memo[str(f.resolve())]["sha256"] = "f" * 64  # a hit is served from the memo, not re-hashed
    memo_file.write_text(json.dumps(memo))
    assert file_sha256(f) == "f" * 64
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # changed mtime -> re-hashed
    assert file_sha256(f) == digest


def test_resolves_from_hf_cache(tmp_path):
    from huggingface_hub import constants

    src = TimmEncoder.create("vit_tiny_patch16_224", seed=2, **TINY_VIT)
    repo_dir = Path(constants.HF_HUB_CACHE) / "models--org--tiny-vit"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    (repo_dir / "snapshots" / commit).mkdir(parents=True)
    path = _save(src.model, repo_dir / "snapshots" / commit / "model.safetensors")
    rw = resolve_weights(EncoderCard("tiny-vit", "timm", "test", hf_repo="org/tiny-vit"), None)
    assert rw.source == "hf-cache" and rw.repo == "org/tiny-vit" and rw.path == path
    assert rw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_offline_without_weights_says_how_to_get_them():
    with pytest.raises(MissingWeightsError) as err:
        load_encoder("dinov3-vitb16")
    msg = str(err.value)
    for needle in ("timm/vit_base_patch16_dinov3.lvd1689m", "--weights", "hf download",
                   "models--timm--vit_base_patch16_dinov3.lvd1689m", "HF_HOME", "licence"):
        assert needle in msg, needle
    with pytest.raises(MissingWeightsError, match="laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"):
        load_encoder("openclip")


# ------------------------------------------------------------------------------------------ zoo
ZOO = ["vit-tiny", "dinov3", "dinov3-vits16", "dinov3-vitb16", "dinov3-vitl16", "dinov3-vit7b16",
       "dinov3-vitb16-hf", "dinov2", "dinov2-vits14", "dinov2-vitb14", "dinov2-vitl14", "dinov2-vitg14",
       "dinov2-vitb14-reg4", "siglip2", "siglip2-vitg16", "siglip2-vitb16", "openclip", "openclip-vitb16",
       "openclip-vitl14", "openclip-vitbigg14", "aimv2", "aimv2-vitl14", "pe-core", "pe-core-vitb16"]


ALIASES = {"dinov3": "dinov3-vit7b16", "dinov2": "dinov2-vitg14", "siglip2": "siglip2-vitg16",
           "openclip": "openclip-vitbigg14", "aimv2": "aimv2-3b14", "pe-core": "pe-core-vitg14"}


def test_zoo_names_and_sources():
    names = ENCODERS.names()
    assert set(ZOO) <= set(names) | set(ENCODERS.aliases())
    assert ENCODERS.aliases() == ALIASES and not set(ALIASES) & set(names)  # an alias is no second entry
    open_clip = pytest.importorskip("open_clip")
    for name in names:
        card = encoder_card(name)
        assert card.name == name and card.description
        if card.backend == "timm" and card.hf_repo:  # the exact timm model exists and the repo matches
            model_name = card.hf_repo.split("/", 1)[1]
            assert model_name.split(".")[0] in timm.list_models(), name
            assert timm.models.get_pretrained_cfg(model_name).hf_hub_id == card.hf_repo, name
    oc = {"openclip-vitb16": ("ViT-B-16", "laion2b_s34b_b88k"), "openclip-vitl14": ("ViT-L-14", "laion2b_s32b_b82k"),
          "openclip-vitg14": ("ViT-g-14", "laion2b_s34b_b88k"),
          "openclip-vitbigg14": ("ViT-bigG-14", "laion2b_s39b_b160k")}
    for name, (arch, tag) in oc.items():
        assert open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/") == encoder_card(name).hf_repo
    assert encoder_card("vit-tiny").random_init and "random-init" in encoder_card("vit-tiny").description.lower()


def test_vit_tiny_loads_fast():
    load_encoder("vit-tiny")  # warm up imports (timm import time is not build time)
    # Timed single-threaded: on an oversubscribed CI box, OpenMP hand-offs between threads on the
    # many small init kernels can cost seconds that have nothing to do with the build itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        enc = load_encoder("vit-tiny", seed=0)
        elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 2.0
    assert (enc.embed_dim, enc.num_blocks, enc.preprocess.resolution) == (192, 12, 224)
    assert enc.preprocess.mean == (0.485, 0.456, 0.406) and enc.random_init
    assert enc.identity()["weights_id"] == "random-init(seed=0)"
    out = _check_uniform(enc, _images(1, 224, 224), 4)
    assert out.patches.shape == (1, 14, 14, 192)


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError) as err:
        load_encoder("dinov3-vitb61")
    assert "dinov3-vitb16" in err.value.suggestions
    assert "dinov3-vitb16" in str(err.value)


def test_alias_is_the_same_encoder_and_cache_key(monkeypatch):
    """An alias loads the canonical encoder under the canonical name: one cache entry, one results row."""
    from bench.encoders import check_encoder_name
    from bench.features import FeatureCache, FeatureSpec

    monkeypatch.setattr(ENCODERS, "_aliases", {**ENCODERS.aliases(), "tiny": "vit-tiny"})
    assert ENCODERS.canonical("tiny") == "vit-tiny" and check_encoder_name("tiny+sb") == "vit-tiny+sb"
    a, b = load_encoder("tiny"), load_encoder("vit-tiny")
    assert a.name == b.name == "vit-tiny" and a.identity() == b.identity()
    spec, ident = FeatureSpec(("cls",)), {"files": "x"}
    assert FeatureCache.key(a, ident, "t", spec) == FeatureCache.key(b, ident, "t", spec)
    cache = FeatureCache(Path(os.environ["BENCH_HOME"]) / "cache")
    assert cache.entry_dir(a, ident, "t", spec) == cache.entry_dir(b, ident, "t", spec)
    for alias, target in ALIASES.items():  # the zoo's aliases resolve the same way (no weights needed)
        assert check_encoder_name(alias) == target and encoder_card(alias) is encoder_card(target)
