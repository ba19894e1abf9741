"""The causal LLMs behind a VLM: the offline random-init toy Qwen2, or a pretrained LM found locally.

    TINY_LLM ("qwen2-tiny")     random-init Qwen2 architecture on a project tokenizer (offline default)
    PAPER_LLM ("Qwen/Qwen2-7B") the SpatialBoost paper's LLM (§3.1); any local causal-LM folder works

Nothing is ever downloaded: `resolve_llm_path` finds a folder or a repo already in the Hugging Face
cache, else raises `MissingLLMError` saying how to provide it. Import-light (torch and transformers
are imported by the builders), so availability checks are cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

TINY_LLM = "qwen2-tiny"
PAPER_LLM = "Qwen/Qwen2-7B"  # paper §3.1; any local Qwen2/causal-LM folder works via --llm PATH


class MissingLLMError(BenchError):
    """The requested LLM's weights are not on this machine."""


@dataclass
class TinyLLMConfig:
    """Random-init Qwen2-architecture LLM for the offline default (vocab = the project's tokenizer)."""

    hidden_size: int = 192
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_positions: int = 4096


def build_tiny_llm(vocab_size: int, cfg: TinyLLMConfig | None = None, seed: int = 0, *, pad_token_id=None,
                   bos_token_id=None, eos_token_id=None) -> "nn.Module":
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyLLMConfig()
    config = Qwen2Config(
        vocab_size=int(vocab_size), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True, rope_theta=10000.0,
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, use_cache=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    return model


def resolve_hf_folder(spec: str, what: str, missing) -> Path:
    """`spec` = a local folder with config.json + weights, or a HF repo id already in the local cache.
    `missing(cause)` is the error text when neither holds (it says how to get the weights)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingLLMError(f"{what} folder {path} has no config.json")
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means: not available offline
        raise MissingLLMError(missing(type(exc).__name__)) from exc


def resolve_llm_path(spec: str) -> Path:
    return resolve_hf_folder(spec, "LLM", lambda cause: (
        f"LLM weights for {spec!r} are not on this machine (no such folder, not in the Hugging Face cache: "
        f"{cause}). Download them (e.g. `huggingface-cli download {spec}`) or pass "
        f"--llm /path/to/model_folder; for the offline toy run use --llm {TINY_LLM}."))


def load_pretrained_llm(spec: str, dtype: "torch.dtype | None" = None):
    """(model, tokenizer) of a pretrained causal LM, offline only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_llm_path(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype or torch.float32)
    model.config.use_cache = False
    return model, tokenizer


def prepare_for_images(llm: "nn.Module", tok) -> None:
    """Make a pretrained LM + tokenizer take LLaVA conversations: the ``<image>`` placeholder as a special
    token (embeddings resized), a pad token, and a chat template with ``{% generation %}`` markers (the
    collator's assistant mask; the project's ChatML template fits Qwen2)."""
    from bench.vlm.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN

    if tok.convert_tokens_to_ids(IMAGE_TOKEN) in (None, tok.unk_token_id):
        tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if len(tok) > llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(len(tok))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if "generation" not in (tok.chat_template or ""):
        tok.chat_template = CHAT_TEMPLATE


__all__ = ["MissingLLMError", "PAPER_LLM", "TINY_LLM", "TinyLLMConfig", "build_tiny_llm", "load_pretrained_llm",
           "prepare_for_images", "resolve_llm_path"]
