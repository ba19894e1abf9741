"""Peak memory of reading a large feature cache entry: 1M rows x 1024 fp16 CLS features (2 GB, the
shape of ImageNet-1k train for a ViT-L) in 1024-row shards (`--quick`: 100k rows). A child process
opens the store, maps the whole output (building its flat file), samples 200 random batches of 1024
rows as the linear bank does, and reads rows through `column()` as the dense heads do; its peak RSS
is reported against the data's size (an in-memory cache needed 1.0x private memory, 2x while
concatenating): private (anonymous) memory is what must fit; mapped pages are page cache the kernel
drops under pressure."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.perf import PerfRow, perf_case

CHILD = r"""
import json, sys, time
import torch
from bench.feature_store import FeatureStore

def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out

base = status()
folder = sys.argv[1]
bounds, parts = json.loads(open(sys.argv[2]).read())
t0 = time.perf_counter()
store = FeatureStore(folder, [tuple(b) for b in bounds], parts=parts)
cls = store["cls"]
t_map = time.perf_counter() - t0
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
acc = 0.0
for _ in range(200):
    idx = torch.randint(0, cls.shape[0], (1024,), generator=g)
    acc += float(cls.index_select(0, idx).float().sum())
col = store.column("cls")
for _ in range(50):
    acc += float(col[torch.randint(0, cls.shape[0], (16,), generator=g)].float().sum())
t_read = time.perf_counter() - t0
end = status()
print(json.dumps({"peak": end["VmHWM"] - base["VmHWM"], "anon": end["RssAnon"] - base["RssAnon"],
                  "file": end["RssFile"] - base["RssFile"], "map": t_map, "read": t_read}))
"""


@perf_case("feature store peak RSS")
def feature_store_rss(args) -> list[PerfRow]:
    import torch
    from safetensors.torch import save_file

    from bench.feature_store import file_sha256, part_name

    n, dim, shard = (100_000 if args.quick else 1_000_000), 1024, 1024
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        g = torch.Generator().manual_seed(0)
        bounds, parts = [], []
        t0 = time.perf_counter()
        for i, s in enumerate(range(0, n, shard)):
            e = min(s + shard, n)
            path = folder / part_name(i)
            save_file({"cls": torch.randn(e - s, 1, dim, generator=g).half()}, str(path))
            bounds.append([s, e])
            parts.append({"file": path.name, "rows": e - s, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
        t_write = time.perf_counter() - t0
        records = folder / "records.json"  # shard bounds and records (too long for a command line)
        records.write_text(json.dumps([bounds, parts]))
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(records)], capture_output=True, text=True)
        if out.returncode != 0:
            return [PerfRow("feature store peak RSS", float("nan"), 0.5, out.stderr.strip().splitlines()[-1])]
        res = json.loads(out.stdout.strip().splitlines()[-1])
    data = n * dim * 2
    mib = 2 ** 20
    return [PerfRow(f"feature store private memory / data size ({n // 1000}k x {dim} fp16)", res["anon"] / data, 0.10,
                    f"peak RSS +{res['peak'] / mib:.0f} MiB over the interpreter's, of which private "
                    f"{res['anon'] / mib:.0f} MiB and mapped cache pages {res['file'] / mib:.0f} MiB (evictable), "
                    f"for {data / mib:.0f} MiB of features in {len(bounds)} shards "
                    f"(written in {t_write:.0f}s; verify + flat map {res['map']:.1f}s; 200 batches of 1024 + 50 of 16 "
                    f"random rows {res['read']:.1f}s)")]
