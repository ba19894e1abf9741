"""3D-LLM (BLIP-2 + FlanT5) as Lexicon3D runs it for ScanQA / SQA3D (§3.3): point features + 0.01 x a
3D sin/cos embedding of their voxel indices -> Q-Former (32 learned queries, cross-attention every
2 layers) -> Linear -> a frozen seq2seq LM (only its input / output embeddings train), teacher-forced
on answers, greedy decoding. FlanT5-XL when it is in the local HF cache; otherwise a tiny random-init
T5 on the project's byte-level BPE trained on the task's text ("tiny-offline", recorded in params).

BLEU lives in `bench.metrics.bleu` (pycocoevalcap itself when it and Java are here, else its clone)."""
from __future__ import annotations

import math

import torch
from torch import nn

def clean_answer(a: str) -> str:
    """calculate_score_scanqa.py's cleaning of a generated answer."""
    return a.replace(",", "").replace("<pad>", "").replace("</s>", "").strip().split("\n")[0]


def pos_table(channels: int, length: int = 512) -> torch.Tensor:
    """positional-encodings' PositionalEncoding1D: interleaved sin / cos, inv_freq = 1 / 10000^(2k/ch)."""
    ch = int(math.ceil(channels / 2) * 2)
    inv = 1.0 / (10000 ** (torch.arange(0, ch, 2).float() / ch))
    ang = torch.arange(length).float()[:, None] * inv[None]
    return torch.stack([ang.sin(), ang.cos()], -1).flatten(1)[:, :channels]


def point_embeds(feat: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
    """feat (N, C) + 0.01 x concat(table[vx], table[vy], table[vz]) in the first 3 (C // 3) dims."""
    C = feat.shape[1]
    c3 = C // 3
    tab = pos_table(c3)
    v = voxels.clamp(0, 511).long()
    pos = torch.cat([tab[v[:, 0]], tab[v[:, 1]], tab[v[:, 2]]], 1)
    out = feat.float().clone()
    out[:, :3 * c3] += 0.01 * pos
    return out


class SceneQA(nn.Module):
    """Q-Former + projection into a frozen seq2seq LM (input / output embeddings trainable)."""

    def __init__(self, dim: int, lm: nn.Module, queries: int = 32, width: int = 768, layers: int = 12):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        heads = max(1, width // 64)
        self.qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * width,
            encoder_hidden_size=dim, cross_attention_frequency=2))
        self.query_tokens = nn.Parameter(torch.randn(1, queries, width) * 0.02)
        self.lm = lm
        self.proj = nn.Linear(width, lm.config.d_model)
        lm.requires_grad_(False)
        lm.get_input_embeddings().requires_grad_(True)
        lm.get_output_embeddings().requires_grad_(True)

    def encoder_inputs(self, pc: torch.Tensor, q_ids: torch.Tensor, q_mask: torch.Tensor):
        """pc (B, N, C) -> [projected queries ; question token embeddings] and their mask."""
        B = pc.shape[0]
        q = self.qformer(query_embeds=self.query_tokens.expand(B, -1, -1), encoder_hidden_states=pc,
                         encoder_attention_mask=torch.ones(pc.shape[:2], dtype=torch.long)).last_hidden_state
        emb = torch.cat([self.proj(q), self.lm.get_input_embeddings()(q_ids)], 1)
        mask = torch.cat([torch.ones(B, q.shape[1], dtype=q_mask.dtype), q_mask], 1)
        return emb, mask

    def loss(self, pc, q_ids, q_mask, labels) -> torch.Tensor:
        emb, mask = self.encoder_inputs(pc, q_ids, q_mask)
        return self.lm(inputs_embeds=emb, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def answer(self, pc, q_ids, q_mask, max_new_tokens: int = 40) -> torch.Tensor:
        emb, mask = self.encoder_inputs(pc, q_ids, q_mask)
        return self.lm.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=1,
                                do_sample=False, min_length=1)


def tiny_t5(vocab: int, pad_id: int, eos_id: int, seed: int = 0) -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=vocab, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4, pad_token_id=pad_id,
                   eos_token_id=eos_id, decoder_start_token_id=pad_id, dense_act_fn="gelu", tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = T5ForConditionalGeneration(cfg)
        nn.init.normal_(lm.lm_head.weight, std=0.02)  # T5's N(0, 1) output init gives CE ~ 60 at the start
    return lm


__all__ = ["SceneQA", "clean_answer", "point_embeds", "pos_table", "tiny_t5"]
