"""Exact nearest-neighbour search by cosine similarity, through the fastest exact backend for the
device and size.

Backends (all exact: the same neighbours up to float noise and the order of exact ties):
  torch      - L2-normalised fp32 features, query chunks x database matmul + top-k, on the run's device.
  faiss-cpu  - FAISS IndexFlatIP (the previous default).
  faiss-gpu  - FAISS IndexFlatIP on the GPU (at most 2048 neighbours per query).
`auto` follows `bench perf`'s "retrieval search" measurement: on a CPU one torch matmul + top-k beat
FAISS's flat index 5-8x at every size measured (20k-100k x 1k x 384-768), so the CPU uses torch; on a
GPU, FAISS's GPU index when it is installed and k fits (else torch on the GPU). Approximate indexes
are not used: a protocol that wants one must name it as a recorded variant. The backend a run used is
logged in its params (`search_backend`).
"""
from __future__ import annotations

import numpy as np
import torch

from bench import timing

BACKENDS = ("auto", "torch", "faiss-cpu", "faiss-gpu")
FAISS_GPU_MAX_K = 2048  # FAISS GPU flat search returns at most 2048 neighbours
CHUNK_BYTES = 256 << 20  # similarity block per query chunk of the torch backend


def _as_float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def faiss_gpu_available() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def resolve_backend(k: int, device: str = "cpu", backend: str = "auto") -> str:
    """The backend `cosine_topk` will use for `k` neighbours on `device` ("cpu" | "cuda[:i]")."""
    if backend not in BACKENDS:
        import difflib
        hint = difflib.get_close_matches(backend, BACKENDS, n=1)
        raise ValueError(f"unknown search backend {backend!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                         + f" (one of {', '.join(BACKENDS)})")
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if backend == "auto":
        if not cuda:
            return "torch"
        return "faiss-gpu" if k <= FAISS_GPU_MAX_K and faiss_gpu_available() else "torch"
    if backend == "faiss-gpu" and not (cuda and faiss_gpu_available() and k <= FAISS_GPU_MAX_K):
        raise ValueError(f"search backend faiss-gpu needs a GPU, faiss with GPU support and k <= {FAISS_GPU_MAX_K} "
                         f"(device {device}, k {k}); use 'auto' or 'torch'")
    return backend


def faiss_index(dim: int, device: str = "cpu"):
    import faiss

    index = faiss.IndexFlatIP(dim)
    if device.startswith("cuda") and faiss_gpu_available():
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index._bench_resources = res  # keep the GPU resources alive with the index
    return index


def _torch_topk(q: np.ndarray, db: np.ndarray, k: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    dev = torch.device(device if device.startswith("cuda") and torch.cuda.is_available() else "cpu")
    qt, dbt = torch.from_numpy(q).to(dev), torch.from_numpy(db).to(dev)
    chunk = max(1, min(len(qt), CHUNK_BYTES // (4 * max(1, len(dbt)))))
    sims = torch.empty(len(qt), k, dtype=torch.float32)
    idx = torch.empty(len(qt), k, dtype=torch.long)
    for s in range(0, len(qt), chunk):
        top = (qt[s:s + chunk] @ dbt.T).topk(k, dim=1)
        sims[s:s + chunk], idx[s:s + chunk] = top.values.cpu(), top.indices.cpu()
    return sims, idx


@timing.timed("evaluation")
def cosine_topk(queries, database, k: int, device: str = "cpu", backend: str = "auto"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices), each (Q, k), sorted by decreasing cosine similarity (exact search;
    `resolve_backend` says which backend runs)."""
    q = l2_normalize(_as_float32(queries))
    db = l2_normalize(_as_float32(database))
    which = resolve_backend(k, device, backend)
    if which == "torch":
        return _torch_topk(q, db, k, device)
    index = faiss_index(db.shape[1], device if which == "faiss-gpu" else "cpu")
    index.add(db)
    sims, idx = index.search(q, k)
    return torch.from_numpy(sims), torch.from_numpy(idx).long()


__all__ = ["BACKENDS", "FAISS_GPU_MAX_K", "cosine_topk", "faiss_gpu_available", "faiss_index", "l2_normalize",
           "resolve_backend"]
