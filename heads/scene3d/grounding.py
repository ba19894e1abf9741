"""ScanRefer grounding head as Lexicon3D describes it (paper A.4) on M3DRef-CLIP's parts: object
features = lifted point features average-pooled inside each ground-truth box, fused with CLIP word
features by MatchModule (Conv1d-BN-PReLU-Conv1d, then self-attn / cross-attn x 2 = 4 attention
layers, d 128, 4 heads, no FFN), a score per object; RefCELoss + the single-pair contrastive loss.

Text: CLIP ViT-B/32's text tower when its weights are in the local Hugging Face cache; otherwise a
small random-init CLIP-architecture text tower on CLIP's own BPE tokenizer ("tiny-offline": NOT CLIP,
recorded in the run's params). The text tower is frozen either way, as in M3DRef-CLIP."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CLIP_TEXT_REPO, CLIP_TEXT_FILE = "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"


def clip_text_weights() -> str | None:
    """Path of CLIP ViT-B/32 weights in the local HF cache, or None (never downloads)."""
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(CLIP_TEXT_REPO, CLIP_TEXT_FILE, local_files_only=True)
    except Exception:  # noqa: BLE001 - absent offline
        return None


class TextTower(nn.Module):
    """Frozen CLIP text transformer: word features ln_final(x) (77 tokens) and the EOT sentence feature."""

    def __init__(self, which: str = "auto", seed: int = 0):
        super().__init__()
        import open_clip

        path = clip_text_weights() if which in ("auto", "clip") else None
        if which == "clip" and path is None:
            from bench.errors import BenchError

            raise BenchError(f"CLIP ViT-B/32 text weights are not in the local Hugging Face cache ({CLIP_TEXT_REPO}/"
                             f"{CLIP_TEXT_FILE}); download them, or use text_encoder=tiny-offline")
        if path is not None:
            model = open_clip.create_model("ViT-B-32", pretrained=None)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
            self.label = "clip-vit-b32-openai"
        else:
            cfg = {"embed_dim": 128, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
                   "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = open_clip.CLIP(**cfg)
            self.label = "tiny-offline-random-init-clip-text-tower (not CLIP)"
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32")
        self.token_embedding, self.positional_embedding = model.token_embedding, model.positional_embedding
        self.transformer, self.ln_final, self.text_projection = model.transformer, model.ln_final, model.text_projection
        self.attn_mask = model.attn_mask
        self.width = self.ln_final.normalized_shape[0]
        self.out_dim = self.text_projection.shape[1]
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer([t.strip() for t in texts])
        x = self.token_embedding(tok) + self.positional_embedding
        x = self.transformer(x, attn_mask=self.attn_mask)
        words = self.ln_final(x)
        sentence = words[torch.arange(len(tok)), tok.argmax(-1)] @ self.text_projection
        return words, sentence


class Attention(nn.Module):
    """MultiHeadAttention(d, h, dropout 0.1): xavier q/k/v/o, LayerNorm(q + dropout(out)); optional
    per-head additive logit bias (the spatial bias of the self-attention layers)."""

    def __init__(self, d: int = 128, h: int = 4, dropout: float = 0.1):
        super().__init__()
        self.h, self.dk = h, d // h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        for m in (self.q, self.k, self.v, self.o):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        self.drop, self.norm = nn.Dropout(dropout), nn.LayerNorm(d)

    def forward(self, q, kv, bias=None, key_pad=None):
        B, Nq, _ = q.shape
        Nk = kv.shape[1]
        Q = self.q(q).view(B, Nq, self.h, self.dk).transpose(1, 2)
        K = self.k(kv).view(B, Nk, self.h, self.dk).transpose(1, 2)
        V = self.v(kv).view(B, Nk, self.h, self.dk).transpose(1, 2)
        att = Q @ K.transpose(-1, -2) / math.sqrt(self.dk)
        if bias is not None:
            att = att + bias
        if key_pad is not None:
            att = att.masked_fill(key_pad[:, None, None, :], float("-inf"))
        out = (torch.softmax(att, -1) @ V).transpose(1, 2).reshape(B, Nq, -1)
        return self.norm(q + self.drop(self.o(out)))


def spatial_bias(centres: torch.Tensor, valid: torch.Tensor, heads: int) -> torch.Tensor:
    """3DVG-Transformer's spatial prior as additive logits: head 0 log(normalised 1/(dist+0.01)),
    head 1 -dist, the other heads none (the released per-head channel is [w, -dist, 0, 0])."""
    dist = torch.cdist(centres, centres)
    w = (1.0 / (dist + 0.01)) * valid[:, None, :].float() + 1e-6
    w = w / w.sum(-1, keepdim=True)
    bias = torch.zeros(centres.shape[0], heads, *dist.shape[1:])
    bias[:, 0], bias[:, 1 % heads] = w.log(), -dist
    return bias


class MatchModule(nn.Module):
    def __init__(self, c_in: int, word_dim: int, sent_dim: int, d: int = 128, heads: int = 4, depth: int = 2):
        super().__init__()
        self.features_concat = nn.Sequential(nn.Linear(c_in, d), nn.BatchNorm1d(d), nn.PReLU(), nn.Linear(d, d))
        self.word_mlp = nn.Sequential(nn.Linear(word_dim, d), nn.ReLU(), nn.Dropout(0.1), nn.Linear(d, d))
        self.sent_proj = nn.Parameter(torch.randn(sent_dim, d) * d ** -0.5)
        self.self_attn = nn.ModuleList(Attention(d, heads) for _ in range(depth))
        self.cross_attn = nn.ModuleList(Attention(d, heads) for _ in range(depth))
        self.score = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.PReLU(), nn.Linear(d, d), nn.BatchNorm1d(d),
                                   nn.PReLU(), nn.Linear(d, 1))
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))
        self.heads = heads

    def forward(self, obj_feat, centres, valid, words, sentence):
        """obj_feat (B, K, C), centres (B, K, 3), valid (B, K) bool, words (B, 77, Dw), sentence (B, Ds)
        -> (scores (B, K), object embeddings (B, K, d), sentence embedding (B, d))."""
        B, K, _ = obj_feat.shape
        f = self.features_concat(obj_feat.reshape(B * K, -1).float()).view(B, K, -1)
        w = self.word_mlp(F.normalize(words.float(), dim=-1))
        bias = spatial_bias(centres, valid, self.heads)
        x = f
        for sa, ca in zip(self.self_attn, self.cross_attn):
            x = sa(x, x, bias=bias, key_pad=~valid)
            x = ca(x, w)
        scores = self.score(x.reshape(B * K, -1)).view(B, K).masked_fill(~valid, float("-inf"))
        return scores, f, sentence.float() @ self.sent_proj


def grounding_loss(model: MatchModule, scores, obj_emb, sent_emb, target, contrastive: bool) -> torch.Tensor:
    """RefCELoss (CE over the candidate boxes) + SinglePairContrastiveLoss (target object vs sentence)."""
    loss = F.cross_entropy(scores, target)
    if contrastive and len(target) > 1:
        a = F.normalize(obj_emb[torch.arange(len(target)), target], dim=-1)
        b = F.normalize(sent_emb, dim=-1)
        logits = model.logit_scale.exp() * a @ b.T
        lab = torch.arange(len(target))
        loss = loss + (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab)) / 2
    return loss


def aabb_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of axis-aligned boxes (..., 6) = (min xyz, max xyz)."""
    lo, hi = torch.maximum(a[..., :3], b[..., :3]), torch.minimum(a[..., 3:], b[..., 3:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    vol = lambda x: (x[..., 3:] - x[..., :3]).clamp_min(0).prod(-1)  # noqa: E731
    return inter / (vol(a) + vol(b) - inter).clamp_min(1e-12)


__all__ = ["Attention", "MatchModule", "TextTower", "aabb_iou", "clip_text_weights", "grounding_loss", "spatial_bias"]
