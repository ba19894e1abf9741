"""Nearest-neighbour search: `bench.search.cosine_topk` (FAISS flat inner product, GPU index when
one is present) against brute-force torch (normalise, chunked matmul, topk) on the same features:
100k database x 1k queries x 768 dims, k=100 (`--quick`: 20k x 200 x 384). Both are exact; the
note says whether they return the same neighbours."""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed


def torch_topk(queries: torch.Tensor, database: torch.Tensor, k: int, device: torch.device,
               chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.nn.functional.normalize(queries.to(device, torch.float32), dim=1)
    db = torch.nn.functional.normalize(database.to(device, torch.float32), dim=1)
    sims, idx = [], []
    for s in range(0, q.shape[0], chunk):
        top = (q[s:s + chunk] @ db.T).topk(k, dim=1)
        sims.append(top.values)
        idx.append(top.indices)
    return torch.cat(sims).cpu(), torch.cat(idx).cpu()


@perf_case("retrieval search")
def retrieval_search(args) -> list[PerfRow]:
    from bench.features import resolve_device
    from bench.search import cosine_topk

    device = resolve_device(args.device)
    n_db, n_q, dim, k = (20_000, 200, 384, 100) if args.quick else (100_000, 1_000, 768, 100)
    g = torch.Generator().manual_seed(0)
    database = torch.randn(n_db, dim, generator=g)
    queries = database[:n_q] + 0.5 * torch.randn(n_q, dim, generator=g)  # each query has a true match

    def faiss_run():
        return cosine_topk(queries, database, k, device=device.type)

    def torch_run():
        out = torch_topk(queries, database, k, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    f_sims, f_idx = faiss_run()
    t_sims, t_idx = torch_run()
    t_faiss, t_torch = timed(faiss_run), timed(torch_run)
    same_top1 = (f_idx[:, 0] == t_idx[:, 0]).float().mean().item()
    max_sim_diff = (f_sims - t_sims).abs().max().item()
    return [PerfRow(f"faiss vs torch top-{k} ({n_db // 1000}k db x {n_q} q x {dim}d)", t_faiss / t_torch, None,
                    f"faiss {t_faiss:.2f}s, torch {t_torch:.2f}s ({device.type}, {torch.get_num_threads()} threads); "
                    f"same top-1 {100 * same_top1:.1f}%, max |sim diff| {max_sim_diff:.1e}")]
