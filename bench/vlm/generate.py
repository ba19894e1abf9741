"""Answering benchmark questions with a VLM: greedy decoding, batched, LLaVA-1.5 prompting.

Two kinds of VLM answer the same `answer(images, questions)` call:

* `ProjectVLM`: a `bench.vlm.model.SpatialVLM` (zoo encoder -> projector -> LLM) trained by the
  SpatialBoost trainer; prompted with the chat template it was trained on (ChatML), the image
  placeholder first, then a newline and the question (LLaVA-1.5's ``<image>\\n{question}``);
  images padded to a square with the mean colour (LLaVA-1.5 ``pad``).
* `LlavaHF`: a LLaVA-1.5 checkpoint in the Hugging Face format (``llava-hf/llava-1.5-7b-hf``),
  from a local folder or the HF cache only; prompted with ``vicuna_v1``.

Generation is greedy (argmax; LLaVA's ``--temperature 0``), batched with left padding and a KV cache,
and stops at the tokenizer's end-of-turn / end-of-text tokens or after ``max_new_tokens``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.vlm.llm import resolve_hf_folder

VICUNA_V1 = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
             "detailed, and polite answers to the user's questions. USER: <image>\n{question} ASSISTANT:")
LLAVA_HF_DEFAULT = "llava-hf/llava-1.5-7b-hf"


class ProjectVLM:
    """A trained `SpatialVLM` + its tokenizer and image transform, ready to answer."""

    prompt_template = "chatml(trainer)+llava1.5-image-first"

    def __init__(self, vlm, tokenizer, transform, device: torch.device, info: dict[str, Any]):
        from bench.vlm.tokenizer import EOT, IM_END, IMAGE_TOKEN

        self.vlm, self.tok, self.transform, self.device, self.info = vlm.eval(), tokenizer, transform, device, info
        self.image_token = IMAGE_TOKEN
        self.stop_ids = {i for i in (tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(EOT),
                                     tokenizer.eos_token_id) if i is not None and i != tokenizer.unk_token_id}
        self.vlm.to(device)

    @property
    def name(self) -> str:
        return self.info.get("name", "vlm")

    def prompt_ids(self, question: str) -> list[int]:
        from bench.vlm.tokenizer import to_messages

        messages = to_messages([{"from": "human", "value": f"{self.image_token}\n{question}"}])
        out = self.tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])

    @torch.no_grad()
    def answer(self, images: list, questions: list[str], max_new_tokens: int = 128) -> list[str]:
        ids = [self.prompt_ids(q) for q in questions]
        pixels = torch.stack([self.transform(im) for im in images]) if images[0] is not None else None
        out = greedy_generate(self.vlm, ids, pixels, max_new_tokens, self.stop_ids, self.device)
        return [self.tok.decode(o, skip_special_tokens=True).strip() for o in out]


@torch.no_grad()
def greedy_generate(vlm, prompts: list[list[int]], pixels: torch.Tensor | None, max_new_tokens: int,
                    stop_ids: set[int], device: torch.device) -> list[list[int]]:
    """Greedy continuations of a batch of prompts, one image each (``pixels`` (B, 3, H, W); None:
    text only, the image placeholder dropped). Rows are spliced, then left-aligned to the right edge
    so that every row's next token sits in the same column; positions count attended tokens only."""
    B = len(prompts)
    pad = 0
    if pixels is None:
        prompts = [[t for t in p if t != vlm.image_token_id] for p in prompts]
    L = max(len(p) for p in prompts)
    input_ids = torch.full((B, L), pad, dtype=torch.long, device=device)
    mask = torch.zeros((B, L), dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        input_ids[b, :len(p)] = torch.tensor(p, device=device)
        mask[b, :len(p)] = 1
    if pixels is not None:
        visual = vlm.visual_tokens(pixels.to(device))
    else:
        visual = torch.zeros(0, 1, vlm.llm.get_input_embeddings().embedding_dim, device=device)
    embeds, mask, _, _ = vlm.splice(input_ids, mask, None, visual, [1 if pixels is not None else 0] * B)
    lengths = mask.sum(dim=1)
    T = int(lengths.max())
    left = embeds.new_zeros(B, T, embeds.shape[-1])
    left_mask = mask.new_zeros(B, T)
    for b in range(B):  # right padding -> left padding
        n = int(lengths[b])
        left[b, T - n:] = embeds[b, :n]
        left_mask[b, T - n:] = 1
    pos = (left_mask.cumsum(dim=1) - 1).clamp(min=0)
    llm = vlm.llm
    cache_arg = _cache_argument(llm)
    out = llm(inputs_embeds=left, attention_mask=left_mask, position_ids=pos, use_cache=True)
    past = _cache_of(out)
    logits = out.logits[:, -1]
    next_pos = pos[:, -1:] + 1
    generated: list[list[int]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    embed = llm.get_input_embeddings()
    stops = torch.tensor(sorted(stop_ids), device=device) if stop_ids else None
    for _ in range(max_new_tokens):
        tok = logits.float().argmax(dim=-1)
        hit = torch.isin(tok, stops) if stops is not None else torch.zeros_like(done)
        for b in range(B):
            if not done[b] and not hit[b]:
                generated[b].append(int(tok[b]))
        done |= hit
        if bool(done.all()):
            break
        left_mask = torch.cat([left_mask, torch.ones((B, 1), dtype=left_mask.dtype, device=device)], dim=1)
        out = llm(inputs_embeds=embed(tok[:, None]), attention_mask=left_mask, position_ids=next_pos,
                  use_cache=True, **{cache_arg: past})
        past, logits, next_pos = _cache_of(out), out.logits[:, -1], next_pos + 1
    return generated


def _cache_argument(llm) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x); take whichever the model has."""
    import inspect

    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"


def _cache_of(out):
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values


class LlavaHF:
    """LLaVA-1.5 in the transformers format (`LlavaForConditionalGeneration` + its processor)."""

    prompt_template = "vicuna_v1"

    def __init__(self, spec: str, device: torch.device, dtype: torch.dtype | None = None):
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        path = resolve_llava(spec)
        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        self.model = LlavaForConditionalGeneration.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        self.model.to(device).eval()
        self.device = device
        self.info = {"name": spec, "kind": "llava-hf", "path": str(path)}

    @property
    def name(self) -> str:
        return self.info["name"]

    @torch.no_grad()
    def answer(self, images: list, questions: list[str], max_new_tokens: int = 128) -> list[str]:
        if images[0] is None:  # text only (the text_only baseline): no image placeholder
            prompts = [VICUNA_V1.replace("<image>\n", "").format(question=q) for q in questions]
            inputs = self.processor.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        else:
            prompts = [VICUNA_V1.format(question=q) for q in questions]
            inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]


def resolve_llava(spec: str) -> Path:
    """A local folder of a transformers-format LLaVA, or a repo id already in the HF cache."""
    return resolve_hf_folder(spec, "LLaVA", lambda cause: (
        f"LLaVA-1.5 weights {spec!r} are not on this machine (no such folder, not in the Hugging Face cache: "
        f"{cause}). Download them once (`huggingface-cli download {LLAVA_HF_DEFAULT}`) or pass "
        "--vlm /path/to/llava-1.5-folder (transformers format: config.json with model_type llava)."))


__all__ = ["LLAVA_HF_DEFAULT", "LlavaHF", "ProjectVLM", "VICUNA_V1", "greedy_generate", "resolve_llava"]
