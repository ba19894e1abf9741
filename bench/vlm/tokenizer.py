"""The project's own byte-level BPE tokenizer and its Qwen2-style ChatML chat template.

Trained (HF ``tokenizers``) on the recipe's generated text plus every template, so the tiny LLM of
the tests and the demo has a small vocabulary (~2-4k) that still covers any byte sequence. The
pre-tokenizer is Qwen2's regex (digits split one by one, which keeps numbers learnable) followed by
GPT-2 byte-level mapping. Special tokens: ``<|endoftext|>`` (pad and eos), ``<|im_start|>``,
``<|im_end|>`` (ends every turn; stop generation on it too) and ``<image>`` (one id per image).

The chat template wraps assistant content and its ``<|im_end|>`` in ``{% generation %}`` so that
``apply_chat_template(..., return_assistant_tokens_mask=True, return_dict=True)`` yields the
supervision mask the collator turns into labels.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

IMAGE_TOKEN = "<image>"
EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (EOT, IM_START, IM_END, IMAGE_TOKEN)  # ids 0..3 in this order
DEFAULT_SYSTEM = "You are a helpful assistant."
DEFAULT_VOCAB = 3072

# Qwen2's pre-tokenizer pattern (letters, single digits, punctuation runs, newlines, spaces)
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def to_messages(conversations: list[dict]) -> list[dict]:
    """LLaVA ``[{"from", "value"}]`` -> chat ``[{"role", "content"}]``."""
    out = []
    for turn in conversations:
        role = ROLE.get(turn.get("from", turn.get("role", "")))
        if role is None:
            raise ValueError(f"unknown speaker {turn.get('from')!r} (expected human/gpt/system)")
        out.append({"role": role, "content": turn.get("value", turn.get("content", ""))})
    return out


def chat_scaffold_text() -> list[str]:
    """The strings the chat template adds around turns (part of the training corpus)."""
    return [f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n", f"{IM_START}user\n", f"{IM_START}assistant\n"]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = DEFAULT_VOCAB, min_frequency: int = 2):
    """Train the byte-level BPE on ``corpus`` and wrap it; deterministic for a given corpus."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # a sorted corpus makes the word counts (and hence merges) order-independent
    texts = sorted(corpus)
    tok.train_from_iterator(texts + chat_scaffold_text(), trainer=trainer)
    return wrap(tok)


def wrap(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=EOT,
                                   model_max_length=1 << 20, padding_side="right")
    fast.add_special_tokens({"additional_special_tokens": [IM_START, IM_END, IMAGE_TOKEN]})
    fast.chat_template = CHAT_TEMPLATE
    for t, i in zip(SPECIAL_TOKENS, range(len(SPECIAL_TOKENS))):
        assert fast.convert_tokens_to_ids(t) == i, (t, fast.convert_tokens_to_ids(t))
    return fast


def save_tokenizer(tok, out: Path) -> str:
    """save_pretrained into ``out``; returns a sha256 over the saved vocabulary and merges."""
    out = Path(out)
    tok.save_pretrained(str(out))
    return tokenizer_hash(out)


def tokenizer_hash(folder: Path) -> str:
    data = json.loads((Path(folder) / "tokenizer.json").read_text())
    model = data["model"]
    blob = json.dumps({"vocab": model["vocab"], "merges": model["merges"], "added": data["added_tokens"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_tokenizer(folder):
    """A saved tokenizer (a folder, or a Recipe with ``tokenizer_dir``)."""
    from transformers import PreTrainedTokenizerFast

    folder = getattr(folder, "tokenizer_dir", folder)
    tok = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    if not tok.chat_template:  # older save formats keep it in a separate file
        tpl = Path(folder) / "chat_template.jinja"
        tok.chat_template = tpl.read_text() if tpl.is_file() else CHAT_TEMPLATE
    if tok.convert_tokens_to_ids(IMAGE_TOKEN) in (None, tok.unk_token_id):
        raise ValueError(f"tokenizer at {folder} has no {IMAGE_TOKEN} token")
    return tok
