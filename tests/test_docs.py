"""The documentation site: built offline by scripts/build_docs.py, then opened in a real browser (Debian's headless
Chromium, driven over the DevTools protocol with websocket-client) to check what a reader sees.
Without chromium the browser tests skip (scripts/install_chromium.sh installs it; `make test` runs that first).
Without a browser: the sidebar, the _proc clean-up, and that every file the notebooks, scripts, benchmarks and README
refer to is in the repository."""
import ast, base64, importlib.util, io, json, os, re, shutil, subprocess, sys, tempfile, time, tokenize, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/"test_artifacts"
spec = importlib.util.spec_from_file_location("build_docs", ROOT/"scripts"/"build_docs.py")
build_docs = sys.modules["build_docs"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_docs)

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and os.access(p, os.X_OK)), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run scripts/install_chromium.sh "
                                   "(make test does) to run the docs browser tests")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--remote-allow-origins=*", "--window-size=1280,1000"]

# ------------------------------------------------------------------------------------------- no browser needed
def test_sidebar_yml_is_generated_from_the_notebooks():
    pages = build_docs.discover()
    assert (ROOT/"nbs"/"sidebar.yml").read_text() == build_docs.sidebar_yml(pages), \
        "nbs/sidebar.yml is stale: run `python scripts/build_docs.py --sidebar` and commit it"
    secs = list(dict.fromkeys(p.section for p in pages))
    assert secs[0] == "Start here" and pages[0].src == Path("index.ipynb")
    assert [s for s in build_docs.SECTIONS if s in secs] == [s for s in secs if s in build_docs.SECTIONS]
    lib = [p.src.name for p in pages if p.section == "Library"]
    assert lib == sorted(lib) and lib[:2] == ["00_core.ipynb", "01_data.ipynb"]

def test_exec_only_names_real_notebooks(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT/"scripts"/"build_docs.py"), "--out", str(tmp_path), "--no-exec",
                        "--exec-only", "nope.ipynb"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: --exec-only names no notebook of nbs/: nope.ipynb", r.stderr
    assert not list(tmp_path.iterdir())

def test_proc_notebook_cleanup():
    "What nbdev 2.4 leaves in a _proc notebook that a page must not show: has_sd key, raw front matter, #| lines, echo: false, include: false."
    raw = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": {}}, "cells": [
        {"cell_type": "raw", "metadata": {}, "source": "---\ntitle: core\ndescription: Configs\noutput-file: core.html\n---\n\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "## Section"},
        {"cell_type": "code", "metadata": {"execution": {"x": 1.5}}, "has_sd": True, "execution_count": 3, "outputs": [
            {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": "[source](https://x/y.py#L1){target=\"_blank\"}\n\n```python\ndef f(a, # see [`g`](https://site/core.html#g)\n)\n```"}}],
         "source": "#| echo: false\n#| output: asis\nshow_doc(f)"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "#| include: false\nx = 1"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [
            {"output_type": "stream", "name": "stderr", "text": "wiki: 100%|#####| 1/1 [00:03<00:00,  3.48s/it]\n"}],
         "source": "#| code-fold: true\ny = 2\ny"}]}
    nb, fm = build_docs.clean_proc_nb(raw)
    assert fm == {"title": "core", "description": "Configs", "output-file": "core.html"}
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "code"]
    sd, code = nb["cells"][1], nb["cells"][2]
    assert "has_sd" not in sd and sd["metadata"] == {"tags": ["remove_input"]}
    md = sd["outputs"][0]["data"]["text/markdown"]
    assert md.startswith("[source](https://x/y.py#L1)\n") and "{target" not in md and "# see g\n" in md
    assert code["source"] == "y = 2\ny" and code["outputs"] == []  # directive gone, progress bar dropped
    import nbformat
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))

# --------------------------------------------------------------------------------- references to files
# Every file a notebook, script, benchmark or the README points to must be in the repository. Checked: markdown links
# and images (`[text](path)`, relative to the file, `#anchor` included), HTML `href`/`src`, and file names in backticks
# (`*.md`, `*.ipynb`, `*.py`, or a path with a folder) or in plain prose (`*.md`, `*.ipynb`), found relative to the file,
# the repository root, nbs/ or ntp_rl/. In Python only comments and docstrings count. A file of another repository is
# cited as a link to it (`[`eval_helpers.py`](https://github.com/...)`); a placeholder is written with `<...>`.

REF_SOURCES = ("nbs/**/*.ipynb", "scripts/*", "benchmarks/**/*.py", "benchmarks/**/*.md", "README.md", "Makefile")
REF_ROOTS = ("", "nbs", "ntp_rl")  # where a bare or backticked file name may live, besides the citing file's folder
GENERATED = {"metrics.md", "metrics.json", "metrics.csv", "metrics.png", "params.yaml", "run.log"}  # what a run writes
_fence = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)
_mdlink = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_html_ref = re.compile(r"\b(?:href|src)=\"([^\"]+)\"")
_tick = re.compile(r"(?<!`)`([^`\s]+)`(?!`)")
_tick_path = re.compile(r"^[\w./-]+\.(?:md|ipynb|py)$|^[\w.-]*/[\w./-]*\.(?:ya?ml|sh|json|txt|toml|ini|css|png)$")
_bare = re.compile(r"(?<![\w./<{*$-])((?:\.\.?/)*[\w-][\w./-]*\.(?:md|ipynb))(?![\w/>}-])")
_external = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)

def _py_prose(src: str) -> str:
    "Comments and docstrings of Python source (notebook magics dropped)."
    src = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines())
    out = []
    try:
        out += [t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT]
        out += [ast.get_docstring(n, clean=False) or "" for n in ast.walk(ast.parse(src))
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    except (SyntaxError, tokenize.TokenError): pass
    return "\n".join(out)

def ref_texts(root: Path = ROOT):
    "(file, where, text, is_markdown) for every piece of prose that may point to a file."
    for pat in REF_SOURCES:
        for p in sorted(root.glob(pat)):
            rel = p.relative_to(root)
            if not p.is_file() or any(s.startswith((".", "_")) for s in rel.parts[:-1]): continue
            if p.suffix == ".ipynb":
                for c in json.loads(p.read_text())["cells"]:
                    src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                    if c["cell_type"] == "markdown": yield p, f"cell {c.get('id')}", src, True
                    elif c["cell_type"] == "code": yield p, f"cell {c.get('id')}", _py_prose(src), False
            elif p.suffix == ".py": yield p, "", _py_prose(p.read_text()), False
            elif p.suffix == ".md": yield p, "", p.read_text(), True
            elif p.suffix in ("", ".sh"): yield p, "", "\n".join(l for l in p.read_text().splitlines() if "#" in l), False

def file_refs(text: str, markdown: bool):
    "(kind, target) of each reference in `text`: kind 'link' (relative to the file) or 'name' (found by `resolve`)."
    if markdown: text = _fence.sub("", text)
    links = list(_mdlink.finditer(text))
    for m in links: yield "link", m.group(2)
    for m in _html_ref.finditer(text): yield "link", m.group(1)
    for a, b in reversed([m.span() for m in links]): text = text[:a] + " " + text[b:]  # link texts are the links' business
    for m in _tick.finditer(text):
        if _tick_path.match(m.group(1)): yield "name", m.group(1)
    for m in _bare.finditer(_tick.sub(" ", text)): yield "name", m.group(1)

def _slug_quarto(s): return re.sub(r"[^\w\- ]", "", s.lower()).strip().replace(" ", "-")
def _slug_nbconvert(s): return s.strip().replace(" ", "-")

def anchors(f: Path) -> set:
    "Fragment ids a page offers: explicit `id=`/`name=` anchors and its headings (as Quarto, nbconvert and GitHub write them)."
    if f.suffix == ".ipynb":
        md = "\n".join("".join(c["source"]) for c in json.loads(f.read_text())["cells"] if c["cell_type"] == "markdown")
    elif f.suffix == ".md": md = f.read_text()
    else: return set()
    ids = set(re.findall(r"\b(?:id|name)=\"([^\"]+)\"", md))
    for h in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", _fence.sub("", md), re.M):
        h = re.sub(r"[`*_]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h))
        ids |= {_slug_quarto(h), _slug_nbconvert(h)}
    return ids

def unresolved(f: Path, kind: str, target: str, root: Path = ROOT) -> str | None:
    "Why `target`, cited in file `f`, does not resolve inside the repository (None if it does)."
    if _external.match(target) or any(c in target for c in "<>{}*$") or Path(target).name in GENERATED: return None
    path, _, frag = target.partition("#")
    path = path.split("?")[0]
    if not path:  # a link to an anchor of the same page
        return None if kind != "link" or frag in anchors(f) else f"#{frag}: no such anchor in {f.name}"
    if path.startswith("/"): return f"{target}: an absolute path"
    bases = [f.parent] + ([root/r for r in REF_ROOTS] if kind == "name" else [])
    for base in bases:
        t = (base/path).resolve()
        if t.exists() and t.is_relative_to(root.resolve()):
            if frag and kind == "link" and t.suffix in (".ipynb", ".md") and frag not in anchors(t):
                return f"{target}: {t.name} has no anchor #{frag}"
            return None
    return f"{target}: no such file in the repository"

def broken_refs(root: Path = ROOT) -> list[str]:
    out = []
    for f, where, text, md in ref_texts(root):
        for kind, target in file_refs(text, md):
            if (why := unresolved(f, kind, target, root)): out.append(f"{f.relative_to(root)}{' ' + where if where else ''}: {why}")
    return out

def test_reference_checker_finds_what_is_missing(tmp_path):
    "The checker itself, on a tiny repository: each kind of reference to a missing file is reported, good ones are not."
    (tmp_path/"nbs").mkdir(); (tmp_path/"scripts").mkdir()
    cell = lambda s: {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": s}
    (tmp_path/"nbs"/"page.ipynb").write_text(json.dumps({"cells": [cell('<a id="here"></a>\n## A heading')]}))
    good = ("[page](page.ipynb), [anchor](page.ipynb#here), [heading](page.ipynb#a-heading), [self](#here), "
            "`nbs/page.ipynb`, `page.ipynb`, [`x.py`](https://github.com/o/r/blob/main/x.py), `<name>.ipynb`, page.ipynb")
    bad = ("[gone](gone.ipynb), [far](../outside.md), [anchor](page.ipynb#nowhere), [self](#nowhere), `spec.md` §1, "
           "`scripts/missing.py`, see notes.md §7, ![img](images/none.png)")
    (tmp_path/"nbs"/"lesson.ipynb").write_text(json.dumps({"cells": [cell(good + "\n\n" + bad), cell('<a id="here"></a>'),
        {"cell_type": "code", "id": "c2", "metadata": {}, "outputs": [], "execution_count": None,
         "source": 'x = "gone.md"  # per `scripts/also_missing.py`\ndef f():\n    "As in old_notes.md."\n'}]}))
    (tmp_path/"scripts"/"tool.py").write_text('"""Uses `nbs/page.ipynb` and `../shared/docs/env.md`."""\n')
    (tmp_path/"README.md").write_text("[ok](nbs/page.ipynb) [bad](page.ipynb)\n```bash\nmake x NB=nbs/missing.ipynb\n```\n")
    found = broken_refs(tmp_path)
    for t in ("gone.ipynb", "../outside.md", "page.ipynb#nowhere", "#nowhere", "spec.md", "scripts/missing.py",
              "notes.md", "images/none.png", "scripts/also_missing.py", "old_notes.md", "../shared/docs/env.md"):
        assert any(f": {t}:" in b or f": {t} " in b or b.endswith(f": {t}") or f" {t}:" in b for b in found), (t, found)
    assert not any("gone.md" in b for b in found)  # a string in code is not prose
    assert [b for b in found if b.startswith("README.md")] == ["README.md: page.ipynb: no such file in the repository"]
    assert len(found) == 12, found

def test_every_file_reference_resolves():
    "No notebook, script, benchmark or the README points to a file that is not in the repository."
    bad = broken_refs()
    assert not bad, "references to files that are not in the repository (link to a page of the repository, or to the " \
                    "other repository's file by URL):\n  " + "\n  ".join(bad)

# ------------------------------------------------------------------------------------------------ the browser
class Browser:
    "Headless Chromium over the DevTools protocol: navigate, evaluate JS, collect console errors and requests."
    def __init__(self, exe: str, profile: Path):
        import websocket
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile/"DevToolsActivePort", time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None: raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        for _ in range(50):
            try: targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5)); break
            except OSError: time.sleep(0.1)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"): self.call(m)

    def _recv(self):
        msg = json.loads(self.ws.recv())
        if "method" in msg: self.events.append(msg)
        return msg

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = self._recv()
            if msg.get("id") == self.n:
                if "error" in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def goto(self, url: str):
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.time() + 60
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.time() > deadline: raise TimeoutError(f"{url} did not load")
            self._recv()
        self.eval("new Promise(r => setTimeout(r, 200))")  # let late scripts log their errors

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e["params"]
            if e["method"] == "Runtime.exceptionThrown": out.append(p["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def remote_requests(self) -> list[str]:
        urls = [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]
        return [u for u in urls if not u.startswith(("file:", "data:", "about:"))]

    def screenshot(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        try: self.ws.close()
        finally:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill()

FAKE_RATIO, FAKE_PPL = 3.1416, 27.1828

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "Build the site from the committed outputs (the Benchmarks page executed) into a temporary folder, with one benchmark and one run."
    tmp = tmp_path_factory.mktemp("docs")
    bench, runs = tmp/"bench", tmp/"runs"/"2026-01-02_quickstart_main"
    bench.mkdir(); runs.mkdir(parents=True)
    png = (ROOT/"nbs"/"images"/"entropy.png").read_bytes()
    (bench/"toy_speed.json").write_text(json.dumps(dict(
        name="toy_speed", title="Toy speed", description="A fake benchmark for the docs test.",
        command="python benchmarks/toy_speed.py", results=[dict(variant="a", seconds=1.0), dict(variant="b", seconds=3.1416)],
        ratios={"b / a": FAKE_RATIO}, plot="toy_speed.png")))
    (bench/"toy_speed.png").write_bytes(png)
    (runs/"metrics.json").write_text(json.dumps(dict(model="smollm2-135m", ppl_wiki=FAKE_PPL)))
    (runs/"quickstart.ipynb").write_text("{}")
    (runs/"perplexity.png").write_bytes(png)
    out = tmp/"site"
    env = dict(os.environ, NTP_RL_BENCH_RESULTS=str(bench), NTP_RL_RUNS_DIR=str(runs.parent), OMP_NUM_THREADS="1")
    t0 = time.time()
    # the committed outputs are rendered (as a Quarto-built site does; test_notebooks executes every notebook and
    # test_outputs checks they carry outputs); the Benchmarks page is executed, so it reads the fake result files
    r = subprocess.run([sys.executable, str(ROOT/"scripts"/"build_docs.py"), "--out", str(out), "--no-exec",
                        "--exec-only", "benchmarks.ipynb"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    print(f"docs built in {time.time()-t0:.0f} s")
    return out

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None: pytest.skip("chromium is not installed")
    b = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()

def _clean(b: Browser, url: str):
    assert not b.errors(), f"{url}: console errors {b.errors()}"
    assert not b.remote_requests(), f"{url} fetched from the network: {b.remote_requests()}"

SIDEBAR_JS = ("Array.from(document.querySelectorAll('#ntp-sidebar .ntp-section')).map(s => [s.textContent, "
              "Array.from(s.nextElementSibling.querySelectorAll('a')).map(a => [a.textContent, a.href])])")

@needs_browser
def test_front_page(site, browser):
    url = (site/"index.html").as_uri()
    browser.goto(url)
    _clean(browser, url)
    assert browser.eval("document.title") == "ntp_rl"
    assert "think before" in browser.eval("document.querySelector('.ntp-header').innerText")
    assert browser.eval("document.querySelector('main').innerText").count("make test") >= 1  # the two commands
    img = browser.eval("Array.from(document.images).filter(i => i.alt.includes('entropy')).map(i => i.naturalWidth)")
    assert img and img[0] > 300, "the front-page picture is missing"
    browser.screenshot(ARTIFACTS/"docs_front.png")
    assert (ARTIFACTS/"docs_front.png").stat().st_size > 10_000

@needs_browser
def test_every_sidebar_link(site, browser):
    browser.goto((site/"index.html").as_uri())
    sections = browser.eval(SIDEBAR_JS)
    pages = build_docs.discover()
    assert [s for s, _ in sections] == list(dict.fromkeys(p.section for p in pages))
    assert [t for _, links in sections for t, _ in links] == [p.title for p in pages]
    front_links = set(browser.eval("Array.from(document.querySelectorAll('main a')).map(a => a.href.split('#')[0])"))
    for _, links in sections:
        for title, url in links:
            browser.goto(url)
            _clean(browser, url)
            assert browser.eval("document.title") == title
            assert browser.eval("document.querySelector('h1').innerText").strip()
            assert browser.eval("document.querySelector('#ntp-sidebar a.active').href") == url
            text = browser.eval("document.querySelector('main').innerText")
            code = browser.eval("Array.from(document.querySelectorAll('.jp-InputArea')).map(e => e.innerText).join('\\n')")
            assert "---\ntitle:" not in text and "output-file:" not in text, f"{url} shows its raw front matter"
            for leak in ("#|", "nbdev.nbdev_export()", "from fastcore.test import"):  # directives, hidden cells
                assert leak not in code, f"{url} shows {leak!r}"
            for href in browser.eval("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
                if href.startswith("file:"):
                    f = Path(urllib.request.url2pathname(href.split("#")[0].removeprefix("file://")))
                    assert f.exists(), f"{url}: broken link {href}"
    missing = [t for _, links in sections for t, u in links if u not in front_links and not u.endswith("/index.html")]
    assert not missing, f"the front page (nbs/index.ipynb) does not link to {missing}: add them to its notebook table"

@needs_browser
def test_library_page_shows_signature_and_docstring(site, browser):
    from ntp_rl.core import seed_everything, load_model
    url = (site/"core.html").as_uri()
    browser.goto(url)
    _clean(browser, url)
    text = browser.eval("document.querySelector('main').innerText")
    for f in (seed_everything, load_model):
        assert f"def {f.__name__}(" in text, f"no signature of {f.__name__}"
        assert f.__doc__.split("\n")[0][:60] in text, f"no docstring of {f.__name__}"
    assert "seed:int=0" in text.replace(" ", "")

@needs_browser
def test_formulas_render_offline(site, browser):
    "KaTeX (from the npm registry at build time, served from _docs/katex/) typesets the entropy lesson's formulas."
    assert (site/"katex"/"katex.min.js").exists() and list((site/"katex"/"fonts").glob("*.woff2"))
    url = (site/"entropy.html").as_uri()
    browser.goto(url)
    browser.eval("document.fonts.ready.then(() => true)")
    _clean(browser, url)  # no console errors, nothing fetched from the network
    assert browser.eval("document.querySelectorAll('.katex-error').length") == 0
    assert browser.eval("document.querySelectorAll('.jp-RenderedMarkdown .katex-display').length") >= 1
    assert browser.eval("document.querySelectorAll('.jp-RenderedMarkdown .katex').length") >= 5
    text = browser.eval("document.querySelector('main').innerText")
    assert "$$" not in text and "\\frac" not in text and "\\sum" not in text, "raw TeX on the page"
    assert browser.eval("document.fonts.check('16px KaTeX_Main')"), "KaTeX's fonts did not load"
    browser.eval("document.querySelector('.katex-display').scrollIntoView()")
    browser.screenshot(ARTIFACTS/"docs_formula.png")

@needs_browser
def test_experiment_page_shows_its_plot(site, browser):
    url = (site/"experiments"/"quickstart.html").as_uri()
    browser.goto(url)
    _clean(browser, url)
    sizes = browser.eval("Array.from(document.querySelectorAll('.jp-OutputArea img')).filter(i => i.src.startsWith('data:image'))"
                         ".map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes and min(sizes[0]) > 100, "the quick start's perplexity plot is not on its page"
    assert "perplexity" in browser.eval("document.querySelector('main').innerText")

@needs_browser
def test_benchmarks_page_reads_result_files(site, browser):
    url = (site/"benchmarks.html").as_uri()
    browser.goto(url)
    _clean(browser, url)
    text = browser.eval("document.querySelector('main').innerText")
    assert "Toy speed" in text and "3.14" in text and "python benchmarks/toy_speed.py" in text
    assert "quickstart" in text and str(FAKE_PPL) in text
    assert browser.eval("Array.from(document.querySelectorAll('main a')).some(a => a.href.endsWith('experiments/quickstart.html'))")
    assert browser.eval("Array.from(document.querySelectorAll('.jp-OutputArea img')).filter(i => i.naturalWidth > 100).length") >= 2
