"""Nearest-neighbour search by cosine similarity through FAISS (a GPU index when one is present)."""
from __future__ import annotations

import numpy as np
import torch


def _as_float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def faiss_index(dim: int, device: str = "cpu"):
    import faiss

    index = faiss.IndexFlatIP(dim)
    if device.startswith("cuda") and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index._bench_resources = res  # keep the GPU resources alive with the index
    return index


def cosine_topk(queries, database, k: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices), each (Q, k), sorted by decreasing cosine similarity."""
    q = l2_normalize(_as_float32(queries))
    db = l2_normalize(_as_float32(database))
    index = faiss_index(db.shape[1], device)
    index.add(db)
    sims, idx = index.search(q, k)
    return torch.from_numpy(sims), torch.from_numpy(idx).long()
