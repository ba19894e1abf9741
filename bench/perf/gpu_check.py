"""The CUDA paths no session could run yet, checked in one go on the day a GPU is lent
(`scripts/gpu-check.sh` runs each check with its own time limit and collects the rows):

  autocast   - bf16 autocast extraction (vit-tiny, `Extractor`) against fp32 CPU features
  search     - the GPU search backends (torch on CUDA, FAISS GPU) against exact CPU search, timed
  dist       - DDP and FSDP2 (`bench.spatialboost.distributed`) over NCCL on the GPUs present (torchrun)
  stage3     - one SpatialBoost stage-3 step (dual-channel attention) at DINOv3-L/16 size, random weights
  throughput - extraction throughput of ViT-L/16 (bf16, in-memory images) against the GPU's bf16 peak

Every check prints one JSON line {"check", "ok", "row"}; `row` is a `docs/benchmarks.md` table row.
The "gpu extraction vs bf16 peak" perf case runs the throughput check inside `bench perf` on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bench.perf import PerfRow, perf_case

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device name; BENCH_GPU_BF16_TFLOPS overrides
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "A10G": 70.0,
                    "A10": 125.0, "L4": 121.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "A6000": 155.0, "V100": 0.0}
DINOV3_L = "vit_large_patch16_dinov3"  # timm arch of DINOv3 ViT-L/16 (random init here: no weights needed)


def bf16_peak(device: torch.device) -> tuple[float, str]:
    name = torch.cuda.get_device_name(device)
    if os.environ.get("BENCH_GPU_BF16_TFLOPS"):
        return float(os.environ["BENCH_GPU_BF16_TFLOPS"]), name
    for key, peak in BF16_PEAK_TFLOPS.items():
        if key in name:
            return peak, name
    return 0.0, name


def _row(case: str, measured: str, target: str, note: str) -> str:
    return f"| {case} | {measured} | {target} | {note} |"


def check_autocast() -> dict:
    from torch.utils.data import TensorDataset

    from bench.encoders import load_encoder
    from bench.features import Extractor, FeatureSpec

    g = torch.Generator().manual_seed(0)
    images = torch.randn(64, 3, 224, 224, generator=g)
    ds = TensorDataset(images, torch.zeros(64))
    spec = FeatureSpec(("cls", "patches"), 4)
    enc = load_encoder("vit-tiny").eval()

    def first_batch(device: str) -> dict[str, torch.Tensor]:
        ex = Extractor(enc, torch.device(device), 32, 0)
        return next(iter(ex.batches(ex.loader(ds), spec)))

    gpu, cpu = first_batch("cuda"), first_batch("cpu")
    cos = torch.nn.functional.cosine_similarity(gpu["cls"].float().flatten(1), cpu["cls"].float().flatten(1)).min().item()
    ok = cos > 0.99 and all(bool(torch.isfinite(v.float()).all()) for v in gpu.values())
    return {"check": "autocast", "ok": ok,
            "row": _row("bf16 autocast extraction vs fp32 CPU (vit-tiny, 4 blocks)", f"min cos {cos:.4f}", "> 0.99",
                        "features finite; fp16 cache")}


def check_search() -> dict:
    from bench.search import cosine_topk, faiss_gpu_available, resolve_backend

    g = torch.Generator().manual_seed(0)
    db = torch.randn(1_000_000, 768, generator=g)
    q = db[:10_000] + 0.5 * torch.randn(10_000, 768, generator=g)
    auto = resolve_backend(100, "cuda")
    ref_s, ref_i = cosine_topk(q[:500], db, 100, device="cpu", backend="torch")
    times, same = {}, {}
    for b in ["torch"] + (["faiss-gpu"] if faiss_gpu_available() else []):
        s, i = cosine_topk(q[:500], db, 100, device="cuda", backend=b)
        same[b] = (i[:, 0] == ref_i[:, 0]).float().mean().item()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        cosine_topk(q, db, 100, device="cuda", backend=b)
        torch.cuda.synchronize()
        times[b] = time.perf_counter() - t0
    fastest = min(times, key=times.get)
    ok = all(v > 0.99 for v in same.values())
    note = ", ".join(f"{b} {t:.2f}s (top-1 = CPU {100 * same[b]:.1f}%)" for b, t in times.items())
    return {"check": "search", "ok": ok,
            "row": _row("GPU exact search, 1M db x 10k q x 768, k=100", f"auto={auto}, fastest={fastest}",
                        "auto = fastest", note)}


def check_dist() -> dict:
    """Run under torchrun: one DDP step and one FSDP2 step of a tiny VLM over NCCL, losses all-reduced."""
    import torch.distributed as dist

    from bench.encoders import load_encoder
    from bench.spatialboost.build import set_trainable
    from bench.spatialboost.checkpoint import apply_mode
    from bench.spatialboost.distributed import DistEnv, all_reduce_mean, wrap_ddp, wrap_fsdp
    from bench.vlm.llm import build_tiny_llm
    from bench.vlm.model import SpatialVLM

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")  # also with one GPU: NCCL itself is what is checked
    rank, world = dist.get_rank(), dist.get_world_size()
    env = DistEnv(rank, world, local, torch.device("cuda", local), True)
    probe = torch.full((1,), float(rank + 1), device=env.device)
    dist.all_reduce(probe)  # NCCL directly: with one GPU `all_reduce_mean` (world size 1) never calls it
    nccl_ok = float(probe) == world * (world + 1) / 2
    out = {}
    for kind in ("ddp", "fsdp"):
        enc = load_encoder("vit-tiny")
        apply_mode(enc, "dual")
        vlm = SpatialVLM(enc, build_tiny_llm(1024), image_token_id=3).to(env.device)
        set_trainable(vlm, 3, "dual")
        model = wrap_ddp(vlm, env, find_unused=True) if kind == "ddp" else wrap_fsdp(vlm, env, bf16=True)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        g = torch.Generator().manual_seed(rank)
        ids = torch.randint(10, 1024, (2, 64), generator=g)
        ids[:, 4] = 3
        labels = ids.clone()
        labels[:, :32] = -100
        ids, labels = ids.to(env.device), labels.to(env.device)
        images = [torch.randn(1, 3, 224, 224, generator=g).to(env.device) for _ in range(2)]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, torch.ones_like(ids), labels, images)["loss"]
        loss.backward()
        opt.step()
        out[kind] = float(all_reduce_mean(loss.detach().float(), env))
    dist.barrier()
    dist.destroy_process_group()
    ok = nccl_ok and all(v == v and abs(v) != float("inf") for v in out.values())
    return {"check": "dist", "ok": ok, "rank": rank,
            "row": _row(f"DDP + FSDP2 step over NCCL ({world} GPU{'s' if world > 1 else ''})",
                        f"losses ddp {out['ddp']:.3f}, fsdp {out['fsdp']:.3f}", "finite",
                        f"tiny VLM, dual-channel vit-tiny; NCCL all-reduce {'ok' if nccl_ok else 'WRONG'}")}


def check_stage3() -> dict:
    from bench.encoders.zoo._common import timm_encoder
    from bench.spatialboost.build import set_trainable
    from bench.spatialboost.checkpoint import apply_mode
    from bench.vlm.llm import build_tiny_llm
    from bench.vlm.model import SpatialVLM

    device = torch.device("cuda")
    enc = timm_encoder(DINOV3_L, "dinov3-vitl16-random", None, 0, resolution=256,
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    apply_mode(enc, "dual")
    vlm = SpatialVLM(enc, build_tiny_llm(1024), image_token_id=3).to(device)
    names = set_trainable(vlm, 3, "dual")
    params = [p for p in vlm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(0)
    batch = 8
    ids = torch.randint(10, 1024, (batch, 512), generator=g)
    ids[:, 4] = 3
    labels = ids.clone()
    labels[:, :256] = -100
    ids, labels = ids.to(device), labels.to(device)
    images = [torch.randn(1, 3, 256, 256, generator=g).to(device) for _ in range(batch)]
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = vlm(ids, torch.ones_like(ids), labels, images)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step = sorted(times[1:])[len(times[1:]) // 2]
    mem = torch.cuda.max_memory_allocated() / 2**30
    ok = bool(torch.isfinite(loss))
    return {"check": "stage3", "ok": ok,
            "row": _row("SB stage-3 step, DINOv3-L/16 dual-channel (random init, tiny LLM, bf16)",
                        f"{step * 1000:.0f} ms/step", "runs", f"batch {batch} @256px, {sum(p.numel() for p in params) / 1e6:.1f}M "
                        f"trainable in {len(names)} tensors, peak {mem:.1f} GiB")}


def extraction_throughput(batch: int = 128, steps: int = 10) -> tuple[float, float, float, str]:
    """(images/s, achieved TFLOP/s, bf16 peak TFLOP/s, device name) of ViT-L/16 extraction at 224 px."""
    from torch.utils.data import TensorDataset
    from torch.utils.flop_counter import FlopCounterMode

    from bench.encoders.zoo._common import timm_encoder
    from bench.features import Extractor, FeatureSpec

    device = torch.device("cuda")
    enc = timm_encoder(DINOV3_L, "dinov3-vitl16-random", None, 0, resolution=224,
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)).eval()
    images = torch.randn(batch * steps, 3, 224, 224).pin_memory()
    ex = Extractor(enc, device, batch, 0)
    spec = FeatureSpec(("cls",), 1)
    enc.to(device)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16), FlopCounterMode(display=False) as fc:
        enc(images[:1].to(device), n_last_blocks=1)
    flops_per_image = fc.get_total_flops()
    ds = TensorDataset(images, torch.zeros(len(images)))
    for _ in ex.batches(ex.loader(ds), spec):  # warm-up (cudnn/cublas plans, allocator)
        pass
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in ex.batches(ex.loader(ds), spec):
        pass
    torch.cuda.synchronize()
    ips = len(images) / (time.perf_counter() - t0)
    peak, name = bf16_peak(device)
    return ips, ips * flops_per_image / 1e12, peak, name


def check_throughput() -> dict:
    ips, tflops, peak, name = extraction_throughput()
    frac = tflops / peak if peak else float("nan")
    return {"check": "throughput", "ok": True,
            "row": _row(f"extraction vs bf16 peak (ViT-L/16, batch 128, {name})", f"{100 * frac:.0f}% ({tflops:.0f} of "
                        f"{peak:.0f} TFLOP/s)", "> 70%", f"{ips:.0f} img/s, in-memory images (no decode)")}


@perf_case("gpu extraction vs bf16 peak")
def gpu_extraction(args) -> list[PerfRow]:
    if not torch.cuda.is_available() or args.device == "cpu":
        return []
    ips, tflops, peak, name = extraction_throughput(steps=3 if args.quick else 10)
    # reported as the fraction of peak NOT reached, so that "below the target" is good like every other row
    return [PerfRow("gpu extraction: 1 - fraction of bf16 peak (ViT-L/16)", 1 - tflops / peak if peak else float("nan"),
                    0.30, f"{tflops:.0f} of {peak:.0f} TFLOP/s on {name}, {ips:.0f} img/s")]


CHECKS = {"autocast": check_autocast, "search": check_search, "dist": check_dist, "stage3": check_stage3,
          "throughput": check_throughput}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("check", choices=sorted(CHECKS))
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"check": args.check, "ok": None, "row": None, "note": "no CUDA device"}))
        return 0
    res = CHECKS[args.check]()
    if res.get("rank", 0) == 0:
        print(json.dumps(res), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
