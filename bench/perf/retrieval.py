"""Exact nearest-neighbour search: every exact backend of `bench.search` (torch matmul + top-k, FAISS
CPU flat index, FAISS GPU flat index when there is a GPU) on the same features: 100k database x 1k
queries x 768 dims, k=100 (`--quick`: 20k x 200 x 384). The rows give each backend against the
fastest, whether they return the same neighbours, and whether `auto` picked the fastest."""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed


@perf_case("retrieval search")
def retrieval_search(args) -> list[PerfRow]:
    from bench.features import resolve_device
    from bench.search import cosine_topk, faiss_gpu_available, resolve_backend

    device = resolve_device(args.device)
    n_db, n_q, dim, k = (20_000, 200, 384, 100) if args.quick else (100_000, 1_000, 768, 100)
    g = torch.Generator().manual_seed(0)
    database = torch.randn(n_db, dim, generator=g)
    queries = database[:n_q] + 0.5 * torch.randn(n_q, dim, generator=g)  # each query has a true match
    backends = ["torch", "faiss-cpu"] + (["faiss-gpu"] if device.type == "cuda" and faiss_gpu_available() else [])

    def runner(backend: str):
        def run():
            out = cosine_topk(queries, database, k, device=device.type, backend=backend)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out
        return run

    results = {b: runner(b)() for b in backends}
    times = {b: timed(runner(b)) for b in backends}
    fastest = min(times, key=times.get)
    auto = resolve_backend(k, device.type)
    size = f"{n_db // 1000}k db x {n_q} q x {dim}d, k={k}"
    rows = []
    ref_sims, ref_idx = results["torch"]
    for b in backends:
        sims, idx = results[b]
        same = (idx[:, 0] == ref_idx[:, 0]).float().mean().item()
        rows.append(PerfRow(f"search {b} vs fastest ({size})", times[b] / times[fastest], None,
                            f"{times[b]:.2f}s ({device.type}, {torch.get_num_threads()} threads); same top-1 as torch "
                            f"{100 * same:.1f}%, max |sim diff| {(sims - ref_sims).abs().max().item():.1e}"))
    rows.append(PerfRow("search auto backend vs fastest exact backend", times[auto] / times[fastest], 1.10,
                        f"auto picks {auto}; fastest measured {fastest}"))
    return rows
