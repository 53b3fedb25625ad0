"""The entropy page in a real headless Chromium (driven over the DevTools protocol with websocket-client), the
ntp_rl_view command under 100 concurrent requests, HTML escaping, and bad inputs."""
import base64, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest
from ntp_rl.core import NtpRlError
from ntp_rl.entropy import EntropyConfig, run_entropy, window_table
from ntp_rl.viewer import SORTS, EntropyRun, export_page, serve

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/"test_artifacts"
BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
EVIL = ['Hello <script>window.__pwned=1</script> world.', '"><img src=x onerror="window.__pwned=2"> and more text.']

def _trained_tiny(folder, texts, steps=30):
    "A tiny Llama trained briefly on `texts`, saved as a folder: a random model is uniformly unsure, this one is not."
    import torch
    from ntp_rl.core import tiny_model, seed_everything
    model, tok = tiny_model("llama")
    seed_everything(0)
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        loss.backward(); opt.step(); opt.zero_grad()
    model.eval().save_pretrained(folder); tok.save_pretrained(folder)
    return str(folder)

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small entropy run on a tiny model: hostile paragraphs, ordinary ones, newlines and indentation, and stories longer
    than a window (so the run holds window-tail fragments of a few tokens)."""
    d = tmp_path_factory.mktemp("viewer")  # the model learns the stories only (each step scores a 49k vocabulary)
    paras = EVIL + [f"Paragraph {i}: the cat sat on mat number {i}.\n  indented line {i}" for i in range(12)] + \
            [f"Story {i}: " + "the cat sat on the mat and looked at the dog. " * (4 + 2 * i) for i in range(4)]
    (d/"corpus.txt").write_text("\n\n".join(paras), encoding="utf-8")
    run_entropy(EntropyConfig(model=_trained_tiny(d/"model", paras[-4:]), data=str(d/"corpus.txt"), out=str(d/"ent"), window=32, device="cpu",
                              shard_windows=4, n_docs=None), progress=False)
    return d/"ent"

# ---------------------------------------------------------------- a minimal Chrome DevTools Protocol client
class Browser:
    "Headless Chromium with one page, driven over CDP (`websocket-client`)."
    def __init__(self):
        import websocket
        self.profile = tempfile.mkdtemp(prefix="ntp_rl_chromium-")
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                      "--disable-component-update", "--disable-sync", "--no-first-run",
                                      f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "--window-size=1100,900", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = Path(self.profile)/"DevToolsActivePort", time.time() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None: self.close(); raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = [t for t in json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read()) if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.n = 0

    def cmd(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps(dict(id=self.n, method=method, params=params)))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expr):
        r = self.cmd("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def open(self, url):
        self.cmd("Page.navigate", url=url)
        deadline = time.time() + 30
        while not (self.js("document.readyState") == "complete" and self.js("location.href") == url):
            if time.time() > deadline: raise RuntimeError(f"{url} did not load")
            time.sleep(0.05)

    def hover(self, selector):
        box = self.js(f"(() => {{const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      "return [r.left + r.width/2, r.top + r.height/2]})()")
        self.cmd("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])

    def screenshot(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(self.cmd("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        try: self.ws.close()
        except Exception: pass
        self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None: pytest.skip("chromium is not installed: run scripts/install_chromium.sh (Debian's chromium)")
    pytest.importorskip("websocket", reason="websocket-client is needed to drive chromium over CDP")
    b = Browser()
    yield b
    b.close()

@pytest.fixture(scope="module")
def server(run_dir):
    srv = serve(run_dir, port=0, n=5)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown(); srv.server_close()

# ---------------------------------------------------------------- in the browser
TITLES_JS = "[...document.querySelectorAll('section.example h2')].map(h => h.textContent.split(' · ')[0])"
SPANS_JS = "[...document.querySelectorAll('section.example')].map(s => s.querySelectorAll('span.tok').length)"

def test_page_shows_n_examples_one_span_per_token(browser, server, run_dir):
    browser.open(server + "/")
    assert browser.js("document.querySelectorAll('section.example').length") == 5
    run = EntropyRun(run_dir)
    ids = run.order("order")[:5]
    assert browser.js(TITLES_JS) == [run.title(i) for i in ids]
    assert browser.js(SPANS_JS) == [int(run.texts.loc[i, "n_tokens"]) for i in ids]
    # every span is one token and the spans add up to the text, newlines and indentation included
    text = browser.js("document.querySelector('section.example .text').textContent")
    toks = EntropyRun(run_dir).examples(5)[0]["rows"]
    assert text == "".join(r["token"] for r in toks)
    assert browser.js("getComputedStyle(document.querySelector('.text')).whiteSpace") == "pre-wrap"
    browser.screenshot(ARTIFACTS/"viewer_page.png")

def test_darker_means_higher_entropy(browser, server):
    browser.open(server + "/?sort=order&page=0")
    pairs = browser.js("""[...document.querySelectorAll('span.tok')].filter(s => s.dataset.h !== '').map(s => {
        const m = getComputedStyle(s).backgroundColor.match(/\\d+/g).map(Number);
        return [parseFloat(s.dataset.h), 0.2126*m[0] + 0.7152*m[1] + 0.0722*m[2]]})""")
    assert len(pairs) > 20
    pairs.sort()
    lum = [l for _, l in pairs]
    assert all(b <= a + 1.0 for a, b in zip(lum, lum[1:])), "luminance must not rise with entropy"
    assert lum[0] > lum[-1] + 30  # a visible range of shades
    # position 0 of a window (no prediction) is left unshaded
    assert browser.js("getComputedStyle(document.querySelector('span.tok[data-h=\"\"]')).backgroundColor") == "rgba(0, 0, 0, 0)"

def test_tooltip_content(browser, server, run_dir):
    browser.open(server + "/")
    sel = "section.example span.tok[data-i='3']"
    browser.hover(sel)
    assert browser.js(f"document.querySelector({json.dumps(sel)}).matches(':hover')")
    tip = browser.js(f"getComputedStyle(document.querySelector({json.dumps(sel)}), '::after').content")
    row = EntropyRun(run_dir).examples(5)[0]["rows"][3]
    assert f"entropy {row['entropy']:.3f} nats" in tip and f"rank {row['rank']}" in tip and "top-5: " in tip
    assert f"{row['topk'][0][1]:.3f}" in tip and f"surprisal {row['surprisal']:.3f} nats" in tip
    browser.screenshot(ARTIFACTS/"viewer_tooltip.png")

@pytest.mark.parametrize("where", ["served", "exported"])
def test_hostile_text_shown_not_run(browser, server, run_dir, tmp_path, where):
    if where == "served": urls = [server + f"/?sort=order&page={p}" for p in range(EntropyRun(run_dir).n_pages(5))]
    else: urls = [export_page(run_dir, tmp_path/"page.html", n=50, sort="order").resolve().as_uri()]  # no CSP here: escaping alone
    body = ""
    for url in urls:
        browser.open(url)
        assert browser.js("typeof window.__pwned") == "undefined"
        assert browser.js("document.querySelectorAll('script, img, iframe, object').length") == 0
        body += browser.js("document.body.innerText")
    assert "<script>window.__pwned=1</script>" in body and '"><img src=x onerror="window.__pwned=2">' in body
    if where == "exported": browser.screenshot(ARTIFACTS/"viewer_escaping.png")

def test_first_screen_is_whole_documents_in_every_order(browser, server, run_dir):
    "The run holds window tails of a few tokens; no order puts one on the first screen, and every text shown is a whole document."
    wt, run = window_table(run_dir), EntropyRun(run_dir)
    assert (wt["n_tokens"] < 8).any() and len(wt) > len(run.texts)  # fragments exist, and the texts are fewer than windows
    whole = {run.title(i): int(n) for i, n in run.texts["n_tokens"].items()}
    n_long = int((run.texts["n_tokens"] >= run.min_tokens).sum())
    assert n_long >= 3
    browser.open(server + "/")
    links = browser.js("[...document.querySelectorAll('nav a')].map(a => a.textContent)")
    assert {"document order", "highest mean entropy first", "highest max entropy first"} <= set(links), links
    for sort in SORTS:
        browser.open(server + f"/?sort={sort}&page=0")
        on_screen = browser.js("[...document.querySelectorAll('section.example')].filter(s => s.getBoundingClientRect().top"
                               " < window.innerHeight).map(s => [s.querySelector('h2').textContent.split(' · ')[0],"
                               " s.querySelectorAll('span.tok').length])")
        assert on_screen, sort
        for title, n in on_screen: assert n == whole[title], (sort, title, n)  # a whole document, all its tokens
        assert all(n >= run.min_tokens for _, n in on_screen[:n_long]), (sort, on_screen)  # long texts come first
        if sort == "order": browser.screenshot(ARTIFACTS/"viewer_first_screen.png")
    # the max-entropy order is what it says, read off the page's own headings
    browser.open(server + "/?sort=max_desc&page=0")
    maxes = browser.js("[...document.querySelectorAll('section.example h2')].map(h => +h.textContent.match(/max entropy ([\\d.]+)/)[1])")
    assert maxes[:n_long] == sorted(maxes[:n_long], reverse=True)

# ---------------------------------------------------------------- the command
def _start_view(*args):
    p = subprocess.Popen([str(BIN/"ntp_rl_view"), *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"http://([\d.]+):(\d+)/", line)
    if not m: p.kill(); raise AssertionError(f"no serving line: {line!r} {p.stderr.read()}")
    return p, f"http://{m.group(1)}:{m.group(2)}"

def test_cli_serves_100_concurrent_requests(run_dir):
    p, url = _start_view("--entropies", str(run_dir), "--port", "0", "--n", "3")
    try:
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        paths = [f"/?sort={s}&page={i % 4}" for i, s in zip(range(100), list(SORTS) * 25)]
        def get(path):
            with urllib.request.urlopen(url + path, timeout=60) as r: return r.status, r.read().decode()
        with ThreadPoolExecutor(100) as ex: results = list(ex.map(get, paths))
        assert all(s == 200 and b.count('class="example"') == 3 for s, b in results)
        same = [b for (s, b), path in zip(results, paths) if path == paths[0]]
        assert len(set(same)) == 1  # identical pages for identical requests
        assert get("/healthz") == (200, "ok\n") and p.poll() is None
        with pytest.raises(urllib.error.HTTPError) as e: get("/?page=999")
        assert e.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as e: get("/etc/passwd")
        assert e.value.code == 404
    finally:  # Ctrl-C stops the server cleanly (generous timeout: CI boxes can be heavily loaded)
        p.send_signal(signal.SIGINT)
        try: p.wait(timeout=120)
        except subprocess.TimeoutExpired: p.kill(); raise

def test_cli_export_is_self_contained(run_dir, tmp_path):
    r = subprocess.run([str(BIN/"ntp_rl_view"), "--entropies", str(run_dir), "--export", str(tmp_path/"p.html"), "--n", "4"],
                       env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    page = (tmp_path/"p.html").read_text()
    assert page.count('class="example"') == 4 and "<nav>" not in page
    assert not re.search(r"(src|href)=|url\(|@import|<link|<script", page)  # nothing to fetch

def test_cli_missing_folder_is_one_line(tmp_path):
    r = subprocess.run([str(BIN/"ntp_rl_view"), "--entropies", str(tmp_path/"missing")], env=ENV, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: entropy folder") and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

def test_bad_folders_and_busy_port(run_dir, tmp_path):
    bad = tmp_path/"bad"; bad.mkdir()
    with pytest.raises(NtpRlError, match="holds no shard"): serve(bad, port=0)
    (bad/"shard-00000.parquet").write_text("garbage")
    with pytest.raises(NtpRlError, match="not a readable entropy shard"): serve(bad, port=0)
    with pytest.raises(NtpRlError, match="does not exist"): export_page(tmp_path/"none", tmp_path/"x.html")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen(1)
        with pytest.raises(NtpRlError, match="pick another --port"): serve(run_dir, port=s.getsockname()[1])

def test_overlay_renders_on_the_same_spans(run_dir):
    "The seam for thoughts: an overlay per token adds a budget bar and hover lines without changing the text."
    from ntp_rl.viewer import render_tokens
    rows = EntropyRun(run_dir).examples(1)[0]["rows"]
    ov = [{"budget": 4, "thought": "<think> so x </think>"} if i == 2 else None for i in range(len(rows))]
    out = render_tokens(rows, ov)
    assert out.count('class="tok') == len(rows) and out.count(" ov") == 1 and "border-bottom:6px" in out
    assert "thought: &lt;think&gt; so x &lt;/think&gt;" in out
