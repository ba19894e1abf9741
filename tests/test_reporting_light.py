"""Reports import no task code and no torch: `bench table`, `bench results`, `bench leaderboard build`
and the run summary, in a fresh interpreter, from a fixture store (new-style runs, one run of an older
store, malformed runs), with the real task catalog (`tasks.catalog()`, metadata only).

A meta-path hook in the child records who first imported each forbidden module (the chain of
importing modules), so a failure names the culprit instead of just saying "torch was imported".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.test_tables import populate_store

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_ROOTS = ("torch", "torchvision", "timm", "heads", "runners", "mmseg", "mmcv", "faiss", "transformers")

CHILD = textwrap.dedent(r'''
    import json, sys

    FORBIDDEN = set(json.loads(sys.argv[1]))
    FIRST = {}  # module -> the chain of modules that imported it

    def _chain():
        f, out = sys._getframe(2), []
        while f is not None:
            name = f.f_globals.get("__name__", "?")
            if not name.startswith(("importlib", "_frozen_importlib")) and (not out or out[-1][0] != name):
                out.append((name, f.f_lineno))
            f = f.f_back
        return " <- ".join(f"{n}:{line}" for n, line in out)

    class Watch:
        def find_spec(self, name, path=None, target=None):
            root = name.partition(".")[0]
            if (root in FORBIDDEN or name in FORBIDDEN) and name not in FIRST:
                FIRST[name] = _chain()
            return None

    sys.meta_path.insert(0, Watch())

    from bench.cli import main

    out = sys.argv[2]
    codes = {
        "table": main(["table"]),
        "table --all-metrics": main(["table", "--all-metrics", "--format", "latex"]),
        "table --paper 1": main(["table", "--paper", "1"]),
        "results --format csv": main(["results", "--format", "csv"]),
        "leaderboard build": main(["leaderboard", "build", "--out", out]),
    }
    from leaderboard.tables import load_records, run_summary
    print(run_summary(load_records()))

    from tasks import TASKS
    impls = {e.target.partition(":")[0] for e in TASKS.entries() if isinstance(e.target, str)}
    FIRST.update({m: "(task implementation)" for m in impls if m in sys.modules and m not in FIRST})
    loaded = {m: FIRST.get(m, "?") for m in sorted(sys.modules)
              if m.partition(".")[0] in FORBIDDEN or m in FORBIDDEN or m in impls}
    roots = {m: chain for m, chain in loaded.items() if m.partition(".")[0] == m or m in impls}
    print("REPORT " + json.dumps({"codes": codes, "loaded": roots, "torch": "torch" in sys.modules}))
''')


def test_reports_import_no_task_code_and_no_torch(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "BENCH_DATA")}
    env.update(BENCH_HOME=str(home), PYTHONPATH=str(REPO), BENCH_SYNTH_PRESET="tiny", HF_HUB_OFFLINE="1")
    old = os.environ.get("BENCH_HOME")
    os.environ["BENCH_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        populate_store()
    finally:
        if old is None:
            os.environ.pop("BENCH_HOME", None)
        else:
            os.environ["BENCH_HOME"] = old

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(FORBIDDEN_ROOTS), str(site)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    report_line = next((line for line in proc.stdout.splitlines() if line.startswith("REPORT ")), None)
    assert proc.returncode == 0 and report_line, f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(report_line[len("REPORT "):])
    assert report["codes"] == {k: 0 for k in report["codes"]}, proc.stderr[-4000:]
    assert not report["loaded"], "reports imported heavy or task modules:\n" + "\n".join(
        f"  {m}: first imported via {chain}" for m, chain in report["loaded"].items())
    assert report["torch"] is False

    # and the reports were built, from every kind of run in the store
    assert proc.stderr.count("skipped 2 malformed run(s)") >= 5  # table x3, results, build (+ none silently)
    assert "| dinov3 |" in proc.stdout and "\\begin{tabular}" in proc.stdout and "DINOv3+SB" in proc.stdout
    assert "encoder,task,metric,value,higher_is_better,role,unit" in proc.stdout
    assert "Δ dinov3 → +sb" in proc.stdout and "↑/↓: higher/lower is better" in proc.stdout
    assert (site / "index.html").exists() and "kitti-depth-linear" in (site / "data.json").read_text()
