"""The leaderboard page: built from a fixture MLflow store, then opened in headless Chromium.

The browser is driven over the Chrome DevTools protocol with a small standard-library websocket
client (no selenium, no downloaded browser): Debian's `chromium` (scripts/setup-browser.sh installs
it when missing). The browser test sorts a column, filters a task group and the encoder name, opens
a details view, checks the order, and saves a screenshot to test-artifacts/leaderboard.png.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bench.task import GROUPS
from leaderboard import site
from tests.test_tables import CATALOG, EVIL, log_record, make_record, populate_store

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("BENCH_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                  "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("board_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        populate_store()
        yield home


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(shared_home))
    return shared_home


@pytest.fixture(scope="module")
def built(shared_home, tmp_path_factory):
    """The site built once from the fixture store (with the test's task catalog)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(shared_home))
        index = site.build_site(tmp_path_factory.mktemp("site"), catalog=CATALOG)
    return index


def _page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="bench-data">(.*?)</script>', html, re.S)
    assert m, "inline JSON missing"
    return json.loads(m.group(1))


# ------------------------------------------------------------------ the built page (no browser)


def test_page_is_self_contained_and_escaped(built):
    html = built.read_text()
    assert (built.parent / "data.json").exists()
    # no network: nothing external is referenced
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # run data reaches the page only escaped, in the tables and in the inline JSON
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 2  # the JSON block and the app, nothing injected
    assert "</script>alert" not in html and "<\\/script" not in html
    data = _page_data(html)
    assert any(e["name"] == EVIL for e in data["entries"])  # and it decodes back to the original text
    assert "Mean rank" in html and data["rank_method"].startswith("Mean rank")


def test_page_marks_measured_and_paper_numbers_with_protocol(built):
    html = built.read_text()
    data = _page_data(html)
    m = next(e for e in data["entries"] if e["source"] == "measured" and e["name"] == "dinov3")
    cell = m["cells"]["nyud-depth-linear:rmse"]
    assert cell["n"] == 2 and len(cell["run_ids"]) == 2 and cell["params"]["protocol.crop"] == "eigen"
    assert f'measured <span class="run">{cell["run_ids"][0][:8]}, {cell["run_ids"][1][:8]}</span>' in html
    assert "protocol: nyud-depth-linear-proto" in html  # the hover title of the number
    assert '<span class="badge paper" title="Table 1">paper</span>' in html
    p = next(e for e in data["entries"] if e["source"] == "paper" and e["name"] == "OpenCLIP+SB")
    avg = p["cells"]["cortexbench-average:score"]
    assert avg["mean"] == 70.5 and "Table 8 reports 72.9" in avg["title"]  # the paper's inconsistency, shown
    groups = [g["id"] for g in data["groups"]]
    assert groups == [g for g in GROUPS if g in groups]  # the one group vocabulary, in its order
    assert [g["label"] for g in data["groups"]][:2] == [GROUPS["depth"], GROUPS["segmentation"]]
    assert 'class="chart"' in html and "base vs +SB" in html  # SVG bar charts
    # the +SB delta next to its number, by the shared delta rule (RMSE down = better)
    assert 'class="delta good" data-significant="unknown" title="better with +SB vs dinov3 (0.480)">-0.080 ✓</span>' in html
    # reference and diagnostic metrics: behind a toggle, marked, never ranked
    assert '<details id="other-metrics">' in html and 'class="badge role-reference"' in html
    floors = [o for o in data["other_metrics"] if o["metric"] == "floor"]
    assert {o["encoder"] for o in floors} == {"dinov3", "dinov3+sb"} and all(o["role"] == "reference" for o in floors)
    assert not any(c["metric"] in ("floor", "heldout", "aux") for c in data["columns"])


def test_ranks_by_direction_within_each_source(built):
    data = _page_data(built.read_text())
    ranks = {e["name"]: e["ranks"] for e in data["entries"] if e["source"] == "measured"}
    assert ranks["dinov3+sb"]["nyud-depth-linear:rmse"] == 1  # lowest RMSE
    assert ranks[EVIL]["nyud-depth-linear:rmse"] == 3
    assert ranks[EVIL]["ade20k-seg-linear:mIoU"] == 1  # highest mIoU
    e = next(e for e in data["entries"] if e["source"] == "measured" and e["name"] == "dinov3")
    # group / overall ranks only over the columns every ranked entry has: NYUd (KITTI: dinov3 alone)
    assert e["rank"]["depth"] == 2 and e["coverage"]["depth"] == 1 and e["coverage_of"]["depth"] == 2
    assert e["coverage"]["overall"] == 2 and e["coverage_of"]["overall"] == 3
    paper_ranks = {e["name"]: e["ranks"].get("nyud-depth-linear:rmse") for e in data["entries"] if e["source"] == "paper"}
    assert paper_ranks["PE-Spatial+SB"] == 1 and paper_ranks["PE-Core+SB"] == 2  # 0.19, 0.20
    # PE-Core, TIPS+SB and DINOv3+SB tie at 0.25 (ranks 3, 4, 5): they share the average rank
    assert paper_ranks["PE-Core"] == paper_ranks["TIPS+SB"] == paper_ranks["DINOv3+SB"] == 4


def test_new_encoder_joins_by_being_evaluated(home, tmp_path):
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from bench.results import KIND_TAG
    from bench.tracking import EXPERIMENT

    out = tmp_path / "site"
    site.build_site(out, catalog=CATALOG)
    assert "newcomer-vit" not in (out / "index.html").read_text()
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parent = client.create_run(exp, run_name="later run", tags={KIND_TAG: "benchmark"})
    log_record(client, exp, parent.info.run_id, make_record("newcomer-vit", "nyud-depth-linear", 0, {"rmse": 0.3}),
               start_time=10**12)
    site.build_site(out, catalog=CATALOG)
    html = (out / "index.html").read_text()
    assert 'data-encoder="newcomer-vit"' in html
    entry = next(e for e in _page_data(html)["entries"] if e["name"] == "newcomer-vit")
    assert entry["ranks"]["nyud-depth-linear:rmse"] == 1


def test_cli_build_and_serve(home, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "board"
    assert main(["leaderboard", "build", "--out", str(out)]) == 0
    assert (out / "index.html").exists()
    assert "skipped 2 malformed run(s)" in capsys.readouterr().err
    server = site.make_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as resp:
            assert resp.status == 200 and b"SpatialBoost benchmark leaderboard" in resp.read()
    finally:
        server.shutdown()
        server.server_close()


def test_json_for_html_cannot_close_the_script():
    text = site.json_for_html({"a": "</script><!-- \u2028 & >"})
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028 & >"}


# ------------------------------------------------------------------ the browser


class CDP:
    """A minimal Chrome DevTools protocol client over a standard-library websocket."""

    def __init__(self, ws_url: str):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", ws_url)
        assert m, ws_url
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        assert head.split(b"\r\n", 1)[0].split()[1] == b"101", head
        self.next_id = 0
        self.events: list[dict] = []

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("websocket closed")
            buf += chunk
        return buf

    def _send_frame(self, payload: bytes, opcode: int = 1) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv_message(self) -> str:
        data, first = b"", None
        while True:
            b0, b1 = self._recv_exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            mask = self._recv_exact(4) if b1 & 0x80 else None
            payload = self._recv_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 9:  # ping
                self._send_frame(payload, 10)
                continue
            if opcode == 8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (1, 2):
                first = opcode
            if first is None:
                continue
            data += payload
            if b0 & 0x80:
                return data.decode("utf-8")

    def send(self, method: str, **params):
        self.next_id += 1
        mid = self.next_id
        self._send_frame(json.dumps({"id": mid, "method": method, "params": params}).encode())
        while True:
            msg = json.loads(self._recv_message())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error in {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre (after scrolling it into view)."""
        box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _find_chromium() -> str | None:
    for name in (os.environ.get("BENCH_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        script = REPO / "scripts" / "setup-browser.sh"
        can_install = shutil.which("apt-get") and (os.geteuid() == 0 or shutil.which("sudo"))
        if can_install:
            proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
            path = _find_chromium()
            if path is None:
                pytest.skip(f"chromium could not be installed: {(proc.stderr or proc.stdout)[-400:]}")
        else:
            pytest.skip("chromium is not installed and cannot be installed here (needs apt-get and root): "
                        "run scripts/setup-browser.sh")
    return path


@pytest.fixture
def browser(chromium, tmp_path):
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None:
                pytest.fail(f"chromium exited: {proc.stderr.read().decode(errors='replace')[-800:]}")
            if time.time() > deadline:
                pytest.fail("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.loads(resp.read())
        page = next(t for t in targets if t.get("type") == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        cdp.send("Page.enable")
        cdp.send("Runtime.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open(cdp: CDP, index: Path) -> None:
    cdp.send("Page.navigate", url=index.resolve().as_uri())
    deadline = time.time() + 30
    ready = ("(location.protocol === 'file:' && document.documentElement) ? "
             "document.documentElement.getAttribute('data-ready') : null")
    while cdp.eval(ready) != "1":
        if time.time() > deadline:
            raise AssertionError("the page script did not finish (data-ready never set)")
        time.sleep(0.1)


def _column_order(cdp: CDP, table: str, col: str) -> list[tuple[str, str, float | None]]:
    """(encoder, source, value) of the table's rows in their current order."""
    return cdp.eval(f"""(() => {{
        const t = document.querySelector({json.dumps(table)});
        const th = t.querySelector('th[data-col={json.dumps(col)}]');
        const i = Array.prototype.indexOf.call(th.parentNode.children, th);
        return Array.from(t.tBodies[0].rows).map(r => [r.cells[0].textContent, r.getAttribute('data-source'),
            r.cells[i].getAttribute('data-value') === '' ? null : Number(r.cells[i].getAttribute('data-value'))]);
    }})()""")


def _screenshot(cdp: CDP, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# test artifacts (screenshots): never committed\n*\n")
    metrics = cdp.send("Page.getLayoutMetrics")
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = 1400, int(min(size["height"], 6000))
    shot = cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_browser_sort_filter_details_and_screenshot(browser, built, capsys):
    cdp = browser
    _open(cdp, built)
    # the encoder named <script>alert(1)</script> is text, and nothing ran
    assert not any(e.get("method") == "Page.javascriptDialogOpening" for e in cdp.events)
    names = cdp.eval("Array.from(document.querySelectorAll('#table-depth td.name')).map(td => td.textContent)")
    assert EVIL in names
    assert cdp.eval("document.scripts.length") == 2

    # sort the NYUd linear column (RMSE, lower is better): first click = best first, missing last
    col, table = "nyud-depth-linear:rmse", "#table-depth"
    cdp.click(f'{table} th[data-col="{col}"]')
    assert cdp.eval(f"""document.querySelector('{table} th[data-col="{col}"]').getAttribute('aria-sort')""") \
        == "ascending"
    rows = _column_order(cdp, table, col)
    values = [v for _, _, v in rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[:len(present)] == present  # ascending, missing at the end
    measured = [n for n, s, v in rows if s == "measured" and v is not None]
    assert measured == ["dinov3+sb", "dinov3", EVIL]  # 0.40 < 0.48 (mean of 2 seeds) < 0.70
    # second click reverses; missing values stay last
    cdp.click(f'{table} th[data-col="{col}"]')
    rows = _column_order(cdp, table, col)
    values = [v for _, _, v in rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True) and values[:len(present)] == present
    assert [n for n, s, v in rows if s == "measured" and v is not None] == [EVIL, "dinov3", "dinov3+sb"]

    # sort mIoU (higher is better): best first
    col2 = "ade20k-seg-linear:mIoU"
    cdp.click(f'#table-segmentation th[data-col="{col2}"]')
    rows = _column_order(cdp, "#table-segmentation", col2)
    assert [n for n, s, v in rows if s == "measured"][:3] == [EVIL, "dinov3", "dinov3+sb"]  # 45 > 41 > 39

    # filter a task group: only the segmentation section stays visible
    cdp.click('.group-btn[data-group="segmentation"]')
    visible = cdp.eval("""Array.from(document.querySelectorAll('section.board-section'))
        .filter(s => s.offsetParent !== null).map(s => s.getAttribute('data-group'))""")
    assert visible == ["segmentation"]
    # filter by encoder name (text) and by source
    cdp.type_into("#encoder-filter", "dinov3")
    cdp.eval("(() => { const s = document.getElementById('source-filter'); s.value = 'measured';"
             " s.dispatchEvent(new Event('change')); })()")
    shown = cdp.eval("""Array.from(document.querySelectorAll('#table-segmentation tbody tr'))
        .filter(r => r.offsetParent !== null).map(r => r.cells[0].textContent)""")
    assert shown == ["dinov3", "dinov3+sb"]
    assert "2 of" in cdp.eval("document.getElementById('shown-count').textContent")

    # details view: protocol and run ids of a measured number
    cdp.click('#table-segmentation tr[data-encoder="dinov3"][data-source="measured"] td[data-col="ade20k-seg-linear:mIoU"]')
    assert cdp.eval("document.getElementById('detail-panel').hidden") is False
    detail = cdp.eval("document.getElementById('detail-body').textContent")
    assert "ade20k-seg-linear-proto" in detail and "protocol.crop" in detail and "0, 1" in detail

    path = _screenshot(cdp, "leaderboard-filtered.png")
    # reset the filters and take the full-page screenshot
    cdp.click('#detail-close')
    cdp.click('.group-btn[data-group="all"]')
    cdp.eval("(() => { const f = document.getElementById('encoder-filter'); f.value = '';"
             " f.dispatchEvent(new Event('input')); const s = document.getElementById('source-filter');"
             " s.value = 'all'; s.dispatchEvent(new Event('change')); })()")
    path = _screenshot(cdp, "leaderboard.png")
    assert path.stat().st_size > 10_000
    assert not any(e.get("method") == "Page.javascriptDialogOpening" for e in cdp.events)
    with capsys.disabled():
        print(f"\nleaderboard screenshots: {path} and {path.with_name('leaderboard-filtered.png')}")


def test_no_runs_yet_still_builds_with_the_paper_numbers(tmp_path):
    index = site.build_site(tmp_path / "empty", records=[], catalog=CATALOG)
    html = index.read_text()
    assert "No measured runs yet" in html and 'data-source="paper"' in html
    assert not any(e["source"] == "measured" for e in _page_data(html)["entries"])
