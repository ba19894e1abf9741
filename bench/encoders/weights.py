"""Finding, fingerprinting and safely loading pretrained encoder weights — offline only.

Resolution order for an encoder card (`resolve_weights`):

1. an explicit file given by the user (`--weights FILE`): `.safetensors` preferred; `.pt/.pth/.bin`
   are accepted but only ever read with `torch.load(weights_only=True)` (no arbitrary unpickling);
   a sharded checkpoint is given by its `*.safetensors.index.json`; a directory is searched for the
   card's weight files;
2. the local Hugging Face cache (`$HF_HOME/hub/models--ORG--NAME`), looked up with
   `local_files_only` — nothing is ever downloaded;
3. otherwise `MissingWeightsError`, whose message says exactly how to provide the weights.

Every resolved file is fingerprinted with its full sha256; the hash is memoised on disk under
`$BENCH_HOME/cache/weights_hash.json`, keyed by (path, size, mtime), so multi-GB checkpoints are
hashed once, not on every run.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bench.errors import BenchError, RefusedPickleError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bench.encoders.cards import EncoderCard

SAFE_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
INDEX_SUFFIX = ".index.json"  # sharded checkpoints: model.safetensors.index.json
GATED_FAMILIES = ("dinov3",)  # licence must be accepted on the hub before download
_CONTAINER_KEYS = ("state_dict", "model", "module", "model_state", "teacher")


class MissingWeightsError(BenchError):
    """Pretrained weights are not available locally; the message says how to provide them."""


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path  # the weight file (or the shard index of a sharded checkpoint)
    sha256: str  # full hex digest (for a sharded checkpoint: sha256 over the shards' digests)
    source: Literal["file", "hf-cache"]
    repo: str | None = None  # the HF repo id it came from (None for an explicit file)

    @property
    def short_id(self) -> str:
        return self.sha256[:16]


# ----------------------------------------------------------------------------------------- hashing
def bench_home() -> Path:
    return Path(os.environ.get("BENCH_HOME", ".bench"))


def _memo_path() -> Path:
    return bench_home() / "cache" / "weights_hash.json"


def _read_memo(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_memo_atomic(path: Path, memo: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".weights_hash.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(memo, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:  # a read-only BENCH_HOME must not break a run; we just hash again next time
        pass


def file_sha256(path: str | Path, chunk_size: int = 8 << 20) -> str:
    """Full sha256 hex digest of a file, memoised on disk by (resolved path, size, mtime_ns)."""
    real = Path(path).resolve()  # HF cache entries are symlinks into blobs/
    st = real.stat()
    key = str(real)
    memo_file = _memo_path()
    memo = _read_memo(memo_file)
    hit = memo.get(key)
    if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        digest = hit.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    h = hashlib.sha256()
    with open(real, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    digest = h.hexdigest()
    memo = _read_memo(memo_file)  # re-read: another process may have added entries meanwhile
    memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _write_memo_atomic(memo_file, memo)
    return digest


def _shard_files(index_path: Path) -> list[Path]:
    try:
        index = json.loads(Path(index_path).read_text())
        names = sorted(set(index.get("weight_map", {}).values()))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise WeightsError(index_path, f"unreadable shard index ({type(exc).__name__}: {exc})") from None
    if not names:
        raise WeightsError(index_path, "no 'weight_map' in shard index")
    return [Path(index_path).parent / n for n in names]


def weights_sha256(path: str | Path) -> str:
    """sha256 of a weight file; for a shard index, sha256 over the (sorted) shards' digests."""
    path = Path(path)
    if path.name.endswith(INDEX_SUFFIX):
        h = hashlib.sha256()
        for shard in _shard_files(path):
            h.update(f"{shard.name}:{file_sha256(shard)}\n".encode())
        return h.hexdigest()
    return file_sha256(path)


# ----------------------------------------------------------------------------------------- loading
def _unwrap(obj):
    """Unwrap {"state_dict": {...}} / {"model": {...}} style containers and DDP `module.` prefixes."""
    for _ in range(4):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _CONTAINER_KEYS
                          if k in obj and isinstance(obj[k], dict) and obj[k]), None)
            if inner is not None and not any(_is_tensor(v) for v in obj.values()):
                obj = inner
                continue
        break
    return obj


def _is_tensor(v) -> bool:
    import torch

    return isinstance(v, torch.Tensor)


def load_state_dict(path: str | Path) -> dict[str, "torch.Tensor"]:
    """Load a checkpoint as a flat {name: tensor} dict, never unpickling arbitrary objects.

    `.safetensors` -> `safetensors.torch.load_file`; `*.index.json` -> all shards merged;
    anything else -> `torch.load(map_location="cpu", weights_only=True)`, which refuses pickles
    that reference arbitrary callables.

    A file that cannot be used is one `WeightsError` line naming it and the cause (empty, truncated,
    not a safetensors / torch file, no tensors); a refused pickle is a `RefusedPickleError` (also a
    `pickle.UnpicklingError`). Both are `BenchError`s: the CLI prints them and exits 2.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise WeightsError(path, "empty file (0 bytes): the download or copy did not finish")
    if path.name.endswith(INDEX_SUFFIX):
        shards = _shard_files(path)
        sd: dict[str, torch.Tensor] = {}
        for shard in shards:
            sd.update(load_state_dict(shard))
        return sd
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError (header too small / incomplete / garbage), OSError
            raise WeightsError(path, f"not a readable safetensors file, truncated or corrupt ({exc})") from None
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "unsupported" in ln.lower() or "WeightsUnpickler error" in ln),
                     lines[0] if lines else type(exc).__name__)
        raise RefusedPickleError(path, f"refused by weights-only loading (the pickle references code or objects "
                                       f"other than tensors; convert it to .safetensors): {first}") from None
    except EOFError:
        raise WeightsError(path, "truncated torch file (unexpected end of file)") from None
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(path, f"not a readable torch checkpoint, truncated or corrupt ({first})") from None
    obj = _unwrap(raw)
    if not isinstance(obj, dict):
        raise WeightsError(path, f"expected a state dict, got {type(obj).__name__}")
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and _is_tensor(v)}
    if not sd:
        raise WeightsError(path, f"no tensors found (keys: {list(obj)[:8]})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


# -------------------------------------------------------------------------------------- resolving
def hf_cache_dir() -> Path:
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub missing
        home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
        return Path(os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub")))


def hf_repo_folder(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


def _check_suffix(path: Path) -> None:
    if path.name.endswith(INDEX_SUFFIX) or path.suffix in SAFE_SUFFIXES + TORCH_SUFFIXES:
        return
    raise ValueError(f"unsupported weights file {path.name!r}: expected .safetensors (preferred), "
                     f"a shard index *.safetensors.index.json, or .pt/.pth/.bin (loaded weights-only)")


def _from_explicit(card: "EncoderCard", explicit: str | Path) -> ResolvedWeights:
    path = Path(explicit).expanduser()
    if not path.exists():
        raise MissingWeightsError(f"--weights {str(explicit)!r}: no such file (encoder {card.name!r}).")
    if path.is_dir():  # a downloaded repo folder: take the first of the card's weight files in it
        found = [path / f for f in _candidate_files(card) if (path / f).is_file()]
        if not found:
            raise MissingWeightsError(
                f"--weights {str(path)!r} is a directory without any of {list(_candidate_files(card))} "
                f"(encoder {card.name!r}). Pass the weight file itself, e.g. --weights FILE.safetensors.")
        path = found[0]
    _check_suffix(path)
    return ResolvedWeights(path=path.resolve(), sha256=weights_sha256(path), source="file", repo=None)


def _candidate_files(card: "EncoderCard") -> tuple[str, ...]:
    # safetensors first whatever the card's order (stable sort); a shard index is always worth a look
    ordered = sorted(card.weight_files, key=lambda f: 0 if f.endswith((".safetensors", INDEX_SUFFIX)) else 1)
    if "model.safetensors" in ordered and "model.safetensors" + INDEX_SUFFIX not in ordered:
        ordered.append("model.safetensors" + INDEX_SUFFIX)
    return tuple(ordered)


def _cached_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id=repo, filename=filename)
    if isinstance(hit, str) and os.path.isfile(hit):
        return Path(hit)
    try:  # same lookup through the download API, which never touches the network here
        from huggingface_hub import hf_hub_download

        got = hf_hub_download(repo_id=repo, filename=filename, local_files_only=True)
        return Path(got) if os.path.isfile(got) else None
    except Exception:
        return None


def _locate_hf_cache(card: "EncoderCard") -> Path | None:
    if not card.hf_repo:
        return None
    for filename in _candidate_files(card):
        path = _cached_file(card.hf_repo, filename)
        if path is None:
            continue
        if filename.endswith(INDEX_SUFFIX):  # every shard must be present too
            try:
                shards = [_cached_file(card.hf_repo, s.name) for s in _shard_files(path)]
            except (OSError, ValueError, WeightsError):
                continue
            if any(s is None for s in shards):
                continue
        return path
    return None


def _from_hf_cache(card: "EncoderCard") -> ResolvedWeights | None:
    path = _locate_hf_cache(card)
    if path is None:
        return None
    return ResolvedWeights(path=path, sha256=weights_sha256(path), source="hf-cache", repo=card.hf_repo)


def find_weights(card: "EncoderCard") -> Path:
    """Where `resolve_weights(card)` would find the weights (local HF cache), without hashing them:
    a cheap presence check for planners. `MissingWeightsError` (saying how to provide them) if absent."""
    path = _locate_hf_cache(card)
    if path is None:
        raise MissingWeightsError(missing_weights_message(card))
    return path


def missing_weights_message(card: "EncoderCard") -> str:
    repo = card.hf_repo
    if not repo:
        return (f"encoder {card.name!r} has no pretrained-weights repository; "
                f"pass --weights FILE.safetensors to load your own.")
    cache = hf_cache_dir()
    folder = hf_repo_folder(repo)
    lines = [
        f"no pretrained weights found for encoder {card.name!r} (Hugging Face repo {repo!r}); "
        f"this machine is offline, so nothing is downloaded.",
        "Provide them in one of two ways:",
        f"  1. on a machine with internet access run\n"
        f"       huggingface-cli download {repo}      (or: hf download {repo})\n"
        f"     then copy the folder ~/.cache/huggingface/hub/{folder}  (i.e. $HF_HOME/hub/{folder})\n"
        f"     to {cache / folder} on this machine (set HF_HOME if your cache lives elsewhere);",
        f"  2. or pass the weight file directly: --weights FILE.safetensors "
        f"(looked for: {', '.join(_candidate_files(card))}; .pt/.pth/.bin are loaded weights-only).",
    ]
    if card.backend == "transformers":
        lines.append("  (transformers encoders also need the repo's config.json: pass the downloaded folder, "
                     "e.g. --weights /path/to/folder, or a weight file that sits next to its config.json.)")
    if card.family.lower() in GATED_FAMILIES or "dinov3" in repo.lower():
        lines.append(f"Note: {repo} is a gated repository: accept its licence on "
                     f"https://huggingface.co/{repo} (logged in with `hf auth login`) before downloading.")
    return "\n".join(lines)


def resolve_weights(card: "EncoderCard", explicit: str | Path | None = None) -> ResolvedWeights:
    """Find the weights for `card`: explicit file, else the local HF cache, else raise."""
    if explicit is not None:
        return _from_explicit(card, explicit)
    resolved = _from_hf_cache(card)
    if resolved is None:
        raise MissingWeightsError(missing_weights_message(card))
    return resolved


__all__ = ["MissingWeightsError", "RefusedPickleError", "ResolvedWeights", "WeightsError", "bench_home", "file_sha256", "find_weights", "hf_cache_dir",
           "hf_repo_folder", "load_state_dict", "missing_weights_message", "resolve_weights",
           "weights_sha256"]
