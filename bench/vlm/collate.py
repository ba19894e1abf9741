"""Batching LLaVA conversations for autoregressive SFT on the assistant tokens only.

Labels come from the chat template's ``{% generation %}`` mask (assistant content + its
``<|im_end|>``); system/user tokens and padding get -100. Each ``<image>`` stays ONE token id, which
the model expands into visual tokens. LLaVA's known failure mode - a tokenisation/masking mismatch
that silently zeroes a sample's loss - is turned into an exception here: a sample must keep at
least one supervised token after truncation, and its image tokens must match its images.
"""
from __future__ import annotations

import torch

from bench.vlm.tokenizer import IMAGE_TOKEN, to_messages

IGNORE_INDEX = -100


class CollateError(ValueError):
    """A sample would train on nothing, or its image tokens and images disagree."""


class ConversationCollator:
    def __init__(self, tokenizer, max_length: int = 2048, pad_to_multiple_of: int | None = None):
        self.tok = tokenizer
        self.max_length = int(max_length)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {IMAGE_TOKEN} token")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, conversations: list[dict], sample_id: str = "?", n_images: int | None = None) -> tuple[list[int], list[int]]:
        """Token ids and labels of one conversation (truncated to ``max_length``)."""
        out = self.tok.apply_chat_template(to_messages(conversations), tokenize=True, return_dict=True,
                                           return_assistant_tokens_mask=True)
        ids = list(out["input_ids"])
        mask = list(out["assistant_masks"])
        if len(mask) != len(ids) or not any(mask):
            raise CollateError(f"sample {sample_id}: the chat template marked no assistant tokens")
        n_tok_full = ids.count(self.image_token_id)
        if n_images is not None and n_tok_full != n_images:
            raise CollateError(f"sample {sample_id}: {n_tok_full} image tokens in the text for {n_images} images")
        ids, mask = ids[: self.max_length], mask[: self.max_length]
        if n_images is not None and ids.count(self.image_token_id) != n_images:
            raise CollateError(f"sample {sample_id}: truncation to {self.max_length} tokens cut image tokens "
                               f"({ids.count(self.image_token_id)} of {n_images} left)")
        labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
        if all(lab == IGNORE_INDEX for lab in labels):
            raise CollateError(f"sample {sample_id}: no supervised token left after truncation to {self.max_length} "
                               f"tokens (raise max_length or shorten the human turns)")
        return ids, labels

    def __call__(self, items: list[dict]) -> dict:
        encoded = [self.encode(it["conversations"], it.get("id", "?"), len(it.get("images", []))) for it in items]
        T = max(len(ids) for ids, _ in encoded)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            T = ((T + m - 1) // m) * m
        B = len(items)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        attention = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
        for b, (ids, lab) in enumerate(encoded):
            n = len(ids)
            input_ids[b, :n] = torch.tensor(ids)
            attention[b, :n] = 1
            labels[b, :n] = torch.tensor(lab)
        images = []
        for it in items:
            imgs = it.get("images", [])
            images.append(torch.stack(list(imgs)) if len(imgs) else torch.zeros((0, 3, 1, 1)))
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "images": images,
                "image_token_id": int(self.image_token_id), "ids": [it.get("id", "?") for it in items]}
