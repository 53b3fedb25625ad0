"""Build the documentation site offline, without Quarto: `make docs` (= `python scripts/build_docs.py`).

Quarto cannot be installed on the project machines, so this script does what `nbdev_proc_nbs` + `nbdev_docs` would,
without Quarto. It talks to nbdev only through `scripts/nbdev_adapter.py`, which names the nbdev function behind each
step (and says where, and why, it goes beyond nbdev's public API):

1. **execute and process** each notebook of `nbs/` in its own process, into `_proc/`:
   executed as `nbdev_test` executes it (execnb's `CaptureShell`, cells flagged `notest`/`gpu`/`slow` skipped: the
   same CI-sized run as `make test`), then passed through nbdev's own docs processors (`FilterDefaults`, what
   `nbdev_proc_nbs` applies: hidden cells dropped, `show_doc` signatures and docstrings added for every exported
   symbol, front matter in a raw cell), with the show_doc cells run in the notebook's own, already executed shell.
   Results are cached by a hash of the notebook, the library and settings.ini (and, for the Benchmarks section, the
   result files), so a rebuild only redoes what changed. `--no-exec` renders the outputs committed in the notebooks
   (what a Quarto-built nbdev site shows; `make outputs` makes them), and `--exec-only NB ...` executes just those;
2. **convert** each `_proc/` notebook with nbconvert's `HTMLExporter` (lab template) into `_docs/<output-file>`,
   with the sidebar (Start here, Library, Experiments, Benchmarks; the same one `nbs/sidebar.yml` gives Quarto;
   nbdev's `nbdev_sidebar` would list the top-level notebooks as one flat list, hence `custom_sidebar = True`),
   `#|` directive lines stripped, `echo: false` inputs and `include: false` cells removed, links between notebooks
   rewritten to the pages, images embedded, and every script or stylesheet that would come from a CDN removed: the
   pages fetch nothing from the network. Formulas (`$…$`, `$$…$$` in markdown) are typeset by KaTeX, taken from the
   npm registry at build time (`npm pack katex@KATEX_VERSION`, once, cached in `$NTP_RL_CACHE/katex-<version>/`) and
   served from `_docs/katex/`.

The builder lives in `scripts/`, not in the package: it needs a checkout (`nbs/`, `settings.ini`) and the dev
requirements (nbdev, execnb), which the installed `ntp_rl` package must not depend on at run time.

`python scripts/build_docs.py --sidebar` only rewrites `nbs/sidebar.yml` from the notebooks present (`make sync`
checks it is committed up to date).
"""
from __future__ import annotations
import argparse, base64, hashlib, html, json, os, re, shutil, subprocess, sys, tarfile, tempfile, time, traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbdev_adapter as adapter  # the one module that touches nbdev

ROOT = Path(__file__).resolve().parents[1]
NBS, PROC, DOCS = ROOT/"nbs", ROOT/"_proc", ROOT/"_docs"
SECTIONS = ["Start here", "Library", "Experiments", "Benchmarks"]
# where result pages (the Benchmarks section) read their numbers from; overridable so tests can use fake results
RESULT_DIRS = {"NTP_RL_BENCH_RESULTS": ROOT/"benchmarks"/"results", "NTP_RL_RUNS_DIR": ROOT/"papermill_runs"}

# ---------------------------------------------------------------------------------------------------------- pages
@dataclass
class Page:
    src: Path  # notebook path relative to nbs/
    section: str
    title: str
    description: str
    order: float
    out: Path  # html path relative to _docs/

def section_of(rel: Path) -> str:
    "Sidebar section of a notebook (path relative to nbs/)."
    if rel.parts[0] in ("benchmarks", "benchmarks.ipynb"): return "Benchmarks"
    if len(rel.parts) > 1: return "Experiments" if rel.parts[0] == "experiments" else rel.parts[0].replace("_", " ").title()
    return "Library" if re.match(r"\d", rel.name) else "Start here"

def discover(nbs: Path = NBS) -> list[Page]:
    "Every notebook nbdev would render (no `_`/`.` parts), in sidebar order: by section, then `order`, then file name."
    pages = []
    for p in adapter.notebooks(nbs):
        rel = p.resolve().relative_to(nbs.resolve())
        fm = adapter.front_matter(p)
        order = fm.get("order", 0 if rel.name == "index.ipynb" and len(rel.parts) == 1 else float("inf"))
        pages.append(Page(rel, section_of(rel), str(fm.get("title", rel.stem)), str(fm.get("description", "")),
                          float(order), adapter.page_path(rel, fm)))
    rank = {s: i for i, s in enumerate(SECTIONS)}
    return sorted(pages, key=lambda pg: (rank.get(pg.section, len(SECTIONS)), pg.section, pg.order, str(pg.src)))

def sidebar_yml(pages: list[Page]) -> str:
    "The Quarto sidebar (`nbs/sidebar.yml`) listing `pages` in the same sections and order as the offline site."
    contents = []
    for sec in dict.fromkeys(pg.section for pg in pages):
        contents.append({"section": sec, "contents": [str(pg.src) for pg in pages if pg.section == sec]})
    head = "# Generated by scripts/build_docs.py from the notebooks in nbs/ (settings.ini: custom_sidebar = True).\n"
    return head + yaml.safe_dump({"website": {"sidebar": {"contents": contents}}}, sort_keys=False)

def write_sidebar(pages: list[Page]) -> bool:
    "Write `nbs/sidebar.yml`; True if it changed."
    f, new = NBS/"sidebar.yml", sidebar_yml(pages)
    if f.exists() and f.read_text() == new: return False
    f.write_text(new)
    return True

# ------------------------------------------------------------------------------------------------------- execute
def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for b in parts: h.update(b); h.update(b"\0")
    return h.hexdigest()[:16]

def _lib_hash() -> str:
    files = sorted((ROOT/"ntp_rl").rglob("*.py")) + [ROOT/"settings.ini"]
    return _sha(*[f.read_bytes() for f in files])

def _results_hash() -> str:
    "Changes whenever a benchmark result or a run's metrics or plots change (pages in the Benchmarks section read them)."
    items = []
    for env, default in RESULT_DIRS.items():
        d = Path(os.environ.get(env, default))
        if d.exists():
            items += [f"{f}:{f.stat().st_mtime_ns}:{f.stat().st_size}".encode() for f in sorted(d.rglob("*"))
                      if f.is_file() and f.suffix in (".json", ".png", ".yaml")]
    return _sha(*items)

def _build_one(job: tuple) -> tuple:
    """Execute one notebook as `nbdev_test` does (cells flagged with `tst_flags` skipped), then apply nbdev's docs
    processors to it, the show_doc cells in the notebook's own shell; runs in a fresh process. Returns (name, ok,
    seconds, error text)."""
    src, dst, skip_flags, run = job
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                      HF_DATASETS_OFFLINE="1", IN_TEST="1")
    os.environ.pop("MPLBACKEND", None)  # CaptureShell switches matplotlib to its inline backend: plots become outputs
    sys.path.insert(0, str(ROOT))
    t0, err, k = time.time(), "", None
    if run:
        import torch; torch.set_num_threads(1)
        nb, k, err = adapter.execute(src, skip_flags)
        if err: err = f"executing {src.relative_to(NBS)} failed:\n" + err
    else: nb = adapter.read_nb(src)
    try: adapter.process(nb, src.parent, None if err else k)
    except Exception:
        err = err or (f"nbdev's docs processing of {src.relative_to(NBS)} failed (show_doc needs the notebook's symbols; "
                      "with --no-exec a cell mixing imports and code breaks it, see nbdev's FAQ):\n" + traceback.format_exc())
        nb = adapter.read_nb(src)  # for --keep-going: the page without show_doc output, or failing that the raw notebook
        try: adapter.process(nb, src.parent, show_docs=False)
        except Exception: nb = adapter.read_nb(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    adapter.write_nb(nb, dst)
    return str(src), not err, time.time() - t0, err

def execute_and_process(pages: list[Page], workers: int, run: bool = True, exec_only: tuple = ()) -> list[str]:
    """Step 1+2: each notebook → `_proc/<same path>` (executed, processed by nbdev), re-done only when the notebook,
    the library or settings (or, for result pages, the result files) changed since the last build. With `run=False`
    the stored outputs are rendered, except for the notebooks named in `exec_only` (paths relative to nbs/)."""
    adapter.refresh_quarto_yml()  # rewrites nbs/nbdev.yml from settings.ini, as nbdev_proc_nbs does
    skip_flags = adapter.test_flags()
    keep = {PROC/pg.src for pg in pages}
    for f in PROC.rglob("*.ipynb") if PROC.exists() else []:
        if f not in keep: f.unlink()
    lib, res, jobs = _lib_hash(), _results_hash(), []
    for pg in pages:
        src, dst = NBS/pg.src, PROC/pg.src
        ex = run or pg.src.as_posix() in exec_only
        key = _sha(src.read_bytes(), lib.encode(), (res if pg.section == "Benchmarks" else "").encode(),
                   b"exec" if ex else b"noexec")
        stamp = dst.with_suffix(".key")
        if dst.exists() and stamp.exists() and stamp.read_text() == key: continue
        stamp.unlink(missing_ok=True)
        jobs.append(((src, dst, skip_flags, ex), stamp, key))
    errors = []
    if jobs:
        print(f"{'executing and processing' if run else 'processing'} {len(jobs)} notebook(s) on {workers} worker(s) ...",
              flush=True)
        # one fresh process per notebook: IPython replaces the worker's __main__, and notebooks must not share state
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), max_tasks_per_child=1) as ex:
            for (_, stamp, key), (name, ok, secs, err) in zip(jobs, ex.map(_build_one, [j[0] for j in jobs])):
                print(f"  {'ok ' if ok else 'FAILED'} {Path(name).relative_to(NBS)} ({secs:.1f} s)", flush=True)
                if ok: stamp.write_text(key)
                else: errors.append(err)
    return errors

# ------------------------------------------------------------------------------------------------------- convert
_re_directive = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")

def _directives(src: str) -> tuple[dict, str]:
    "Split leading `#| key: value` lines (anywhere in the cell, as nbdev allows) from the code."
    d, keep = {}, []
    for line in src.splitlines():
        m = _re_directive.match(line)
        if m: d[m.group(1).lower()] = m.group(2).lower()
        else: keep.append(line)
    return d, "\n".join(keep).strip("\n")

_re_mdlink = re.compile(r"\[`([^`\]]+)`\]\([^)\s]+\)")

_re_source = re.compile(r"\[source\]\(([^)\s]+)\)\{[^}]*\}")

def _clean_showdoc_md(md: str) -> str:
    "show_doc markdown: Quarto's `[source](<url>){attrs}` without the pandoc attributes; no doc links inside code blocks."
    md = _re_source.sub(r"[source](\1)", md)  # styled by render(): a raw <a> here would lose its text in nbconvert
    return re.sub(r"```.*?```", lambda m: _re_mdlink.sub(r"\1", m.group(0)), md, flags=re.S)

@cache
def _without_progress():
    "make_outputs' `without_progress` (one rule for tqdm bars, in committed outputs and in rendered pages), loaded once."
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_outputs", ROOT/"scripts"/"make_outputs.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod.without_progress

_re_front_matter = re.compile(r"^---\s*\n(.*?)\n---$", re.S)

def clean_proc_nb(raw: dict) -> tuple[dict, dict]:
    "A `_proc` notebook → (valid nbformat dict ready for nbconvert, its front matter)."
    fm, cells, without_progress = {}, [], _without_progress()
    for c in raw["cells"]:
        c.pop("has_sd", None)  # nbdev 2.4's show_doc marker: not nbformat
        src = "".join(c.get("source") or [])
        if c["cell_type"] == "raw" and not fm and (m := _re_front_matter.match(src.strip())):
            fm = yaml.safe_load(m.group(1)) or {}  # the YAML block nbdev's FrontmatterProc wrote
            continue
        tags = set()
        if c["cell_type"] == "code":
            d, src = _directives(src)
            if d.get("include") == "false": continue
            if d.get("echo") == "false" or not src.strip(): tags.add("remove_input")
            if d.get("output") == "false": c["outputs"] = []
            if not c.get("outputs") and "remove_input" in tags: continue
            c["execution_count"] = None
            c.setdefault("outputs", [])
            c["outputs"] = [o for o in map(without_progress, c["outputs"]) if o is not None]
            for o in c["outputs"]:
                md = o.get("data", {}).get("text/markdown")
                if md is not None: o["data"]["text/markdown"] = _clean_showdoc_md("".join(md) if isinstance(md, list) else md)
        elif c["cell_type"] == "markdown":
            if "WARNING: THIS FILE WAS AUTOGENERATED" in src and len(src) < 200: continue
            src = re.sub(r"\)\{[^}]*\}", ")", src)  # pandoc link attributes ({target="_blank"}) from nbdev 3
        c["source"], c["metadata"] = src, ({"tags": sorted(tags)} if tags else {})
        c.setdefault("id", f"cell-{len(cells)}")
        cells.append(c)
    raw["cells"], raw["metadata"] = cells, {"kernelspec": {"name": "python3", "display_name": "python3",
                                                             "language": "python"},
                                            "language_info": {"name": "python"}}
    raw["nbformat"], raw["nbformat_minor"] = 4, 5
    return raw, fm

_CSS = """
body.ntp-site { margin: 0; padding: 0 2rem 4rem 19rem; max-width: 72rem; }
#ntp-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 16.5rem; overflow-y: auto; padding: 1.2rem 1rem;
  box-sizing: border-box; background: #f7f7f9; border-right: 1px solid #e1e1e8; font-family: system-ui, sans-serif;
  font-size: 14px; }
#ntp-sidebar .ntp-site-title { display: block; font-size: 1.25rem; font-weight: 600; color: #222; text-decoration: none;
  margin-bottom: .2rem; }
#ntp-sidebar .ntp-site-desc { color: #666; font-size: 12px; margin: 0 0 1rem; }
#ntp-sidebar .ntp-section { margin: 1rem 0 .3rem; font-weight: 600; color: #444; text-transform: uppercase;
  font-size: 11px; letter-spacing: .06em; }
#ntp-sidebar ul { list-style: none; margin: 0; padding: 0; }
#ntp-sidebar li a { display: block; padding: .25rem .5rem; color: #2a5db0; text-decoration: none; border-radius: 4px; }
#ntp-sidebar li a:hover { background: #e8eef9; }
#ntp-sidebar li a.active { background: #dde7f7; font-weight: 600; color: #1b3d75; }
.ntp-header { padding: 1.5rem 0 .5rem 0; border-bottom: 1px solid #e1e1e8; margin-bottom: 1rem; }
.ntp-header h1 { margin: 0 0 .4rem 0; font-family: system-ui, sans-serif; }
.ntp-header p { margin: 0; color: #555; font-size: 1.05rem; }
.ntp-source { float: right; font-size: smaller; }
.ntp-footer { margin-top: 3rem; color: #888; font-size: 12px; }
.jp-RenderedHTMLCommon img { max-width: 100%; }
@media (max-width: 800px) { #ntp-sidebar { position: static; width: auto; } body.ntp-site { padding: 0 1rem; } }
"""

def _rel(target: Path, page_out: Path) -> str:
    "URL of site file `target` from page `page_out` (both relative to _docs/)."
    return os.path.relpath(target, page_out.parent).replace(os.sep, "/")

def sidebar_html(pages: list[Page], current: Page, title: str, description: str) -> str:
    parts = [f'<nav id="ntp-sidebar" aria-label="site"><a class="ntp-site-title" href="{_rel(Path("index.html"), current.out)}">'
             f'{html.escape(title)}</a><p class="ntp-site-desc">{html.escape(description)}</p>']
    for sec in dict.fromkeys(pg.section for pg in pages):
        parts.append(f'<p class="ntp-section">{html.escape(sec)}</p><ul>')
        for pg in (p for p in pages if p.section == sec):
            active = ' class="active" aria-current="page"' if pg is current else ""
            parts.append(f'<li><a href="{_rel(pg.out, current.out)}"{active}>{html.escape(pg.title)}</a></li>')
        parts.append("</ul>")
    return "".join(parts) + "</nav>"

def fix_links(body: str, page: Page, by_src: dict, site_url: str) -> str:
    "Rewrite links to notebooks (`<name>.ipynb`, `../nbs/<name>.ipynb`) and to the hosted site into relative links to pages."
    def repl(m):
        url = m.group(2)
        path, frag = (url.split("#", 1) + [""])[:2]
        frag = "#" + frag if frag else ""
        if site_url and url.startswith(site_url):
            tgt = Path(path[len(site_url):].lstrip("/") or "index.html")
            return f'{m.group(1)}"{_rel(tgt, page.out)}{frag}"'
        if re.match(r"^[a-z]+:|^#|^/", url) or not path.endswith(".ipynb"): return m.group(0)
        tgt = Path(os.path.normpath(page.src.parent/path))
        if tgt.parts and tgt.parts[0] == "nbs": tgt = Path(*tgt.parts[1:])  # README-style links from the repo root
        if tgt in by_src: return f'{m.group(1)}"{_rel(by_src[tgt].out, page.out)}{frag}"'
        return m.group(0)
    return re.sub(r'(href=)"([^"]*)"', repl, body)

# KaTeX typesets the formulas of markdown cells in the reader's browser, from files served by the site itself
KATEX_VERSION = "0.19.1"
KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js")

def _cache_dir() -> Path:
    "ntp_rl's cache folder (the rule of `ntp_rl.core.cache_dir`, without importing torch)."
    return Path(os.environ.get("NTP_RL_CACHE") or Path.home()/".cache"/"ntp_rl").expanduser()

def katex_dir() -> Path:
    "KaTeX's `dist/` files (the pinned version, woff2 fonts only), fetched with `npm pack` into the cache on first use."
    d = _cache_dir()/f"katex-{KATEX_VERSION}"
    if all((d/f).is_file() for f in KATEX_FILES) and any((d/"fonts").glob("*.woff2")): return d
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("error: make docs needs npm to fetch KaTeX (the formula renderer) from the npm registry once; "
                         "install Node.js and npm (Debian: apt-get install npm) and rerun")
    d.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d.parent, prefix=".katex-") as tmp:
        r = subprocess.run([npm, "pack", f"katex@{KATEX_VERSION}", "--pack-destination", tmp, "--silent"],
                           capture_output=True, text=True)
        tgz = list(Path(tmp).glob("katex-*.tgz"))
        if r.returncode or not tgz:
            last = (r.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise SystemExit(f"error: `npm pack katex@{KATEX_VERSION}` failed ({last}); check that the npm registry is reachable")
        staged = Path(tmp)/"dist"
        with tarfile.open(tgz[0]) as tf:
            for m in tf.getmembers():
                rel = m.name.removeprefix("package/dist/")
                if m.isfile() and rel != m.name and (rel in KATEX_FILES or (rel.startswith("fonts/") and rel.endswith(".woff2"))):
                    (staged/rel).parent.mkdir(parents=True, exist_ok=True)
                    (staged/rel).write_bytes(tf.extractfile(m).read())
        if d.exists(): shutil.rmtree(d)
        os.replace(staged, d)  # all files or none: a killed build leaves no half-filled cache
    return d

def katex_head(page_out: Path) -> str:
    "The `<head>` tags that load the site's KaTeX and typeset every markdown cell (and show_doc markdown) on load."
    k = _rel(Path("katex"), page_out)
    opts = ('{delimiters: [{left: "$$", right: "$$", display: true}, {left: "$", right: "$", display: false}], '
            'throwOnError: false}')
    return (f'<link rel="stylesheet" href="{k}/katex.min.css"><script defer src="{k}/katex.min.js"></script>'
            f'<script defer src="{k}/contrib/auto-render.min.js"></script>'
            '<script>document.addEventListener("DOMContentLoaded", () => document.querySelectorAll(".jp-RenderedMarkdown")'
            f'.forEach(e => renderMathInElement(e, {opts})));</script>')

_re_remote = [re.compile(p, re.S | re.I) for p in (
    r'<script[^>]*\bsrc="(?:https?://[^"]*)?"[^>]*>\s*</script>',  # require.js, MathJax (emptied URLs load the page itself)
    r'<script type="text/x-mathjax-config">.*?</script>',
    r'<script[^>]*>(?:(?!</script>).)*?import\("https?://(?:(?!</script>).)*?</script>',  # mermaid.js loader
    r'<link[^>]*\bhref="https?://[^"]*"[^>]*>')]

def render(pages: list[Page], out_dir: Path, site: dict) -> None:
    "Convert each _proc notebook into an HTML page under `out_dir`."
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True, mathjax_url="", require_js_url="")
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}, enabled=True), enabled=True)
    by_src = {pg.src: pg for pg in pages}
    for pg in pages:
        nb, fm = clean_proc_nb(json.loads((PROC/pg.src).read_text()))
        title, desc = fm.get("title", pg.title), fm.get("description", pg.description)
        node = nbformat.reads(json.dumps(nb), as_version=4)  # also joins multi-line strings stored as lists
        nbformat.validate(node)
        body, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": title, "path": str((NBS/pg.src).parent)}})
        for rx in _re_remote: body = rx.sub("", body)
        body = fix_links(body, pg, by_src, site["url"])
        body = re.sub(r'<a href="(https?://[^"]+)">source</a>', r'<a class="ntp-source" href="\1" target="_blank" rel="noopener">source</a>', body)
        head = f'<style>{_CSS}</style>' + katex_head(pg.out)
        header = (f'<header class="ntp-header"><h1>{html.escape(title)}</h1>'
                  + (f'<p class="ntp-description">{html.escape(desc)}</p>' if desc else "") + "</header>")
        footer = (f'<footer class="ntp-footer">Built from <code>nbs/{html.escape(str(pg.src))}</code> by '
                  f'<code>make docs</code>.</footer>')
        body = body.replace("</head>", head + "</head>", 1)
        body = re.sub(r"<body([^>]*)class=\"", r'<body\1class="ntp-site ', body, count=1)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + sidebar_html(pages, pg, site["title"], site["description"])
                      + '<main id="ntp-main">' + header, body, count=1)
        body = body.replace("</body>", footer + "</main></body>", 1)
        f = out_dir/pg.out
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body)

def copy_assets(out_dir: Path) -> None:
    "Images and other files that pages may link to (they are also embedded where nbconvert can)."
    for f in NBS.rglob("*"):
        rel = f.relative_to(NBS)
        if f.is_file() and f.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".svg", ".css") and \
                not any(p.startswith((".", "_")) for p in rel.parts):
            (out_dir/rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out_dir/rel)

# ---------------------------------------------------------------------------------------------------------- main
def build(out_dir: Path = DOCS, run: bool = True, workers: int = 2, keep_going: bool = False, exec_only: tuple = ()) -> int:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))  # this checkout's ntp_rl, also in the processing workers (as nbdev_test does)
    t0 = time.time()
    cfg = adapter.config()
    site = dict(title=cfg.get("title", "ntp_rl"), description=cfg.get("description", ""),
                url=(cfg.get("doc_host", "") + cfg.get("doc_baseurl", "")).rstrip("/") + "/")
    pages = discover()
    if write_sidebar(pages): print("nbs/sidebar.yml updated (commit it)")
    unknown = set(exec_only) - {pg.src.as_posix() for pg in pages}
    if unknown:
        print(f"error: --exec-only names no notebook of nbs/: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    katex = katex_dir()  # before the long part: a missing npm fails in a second, not after executing every notebook
    errors = execute_and_process(pages, workers, run, tuple(exec_only))
    if errors:
        for e in errors: print(e, file=sys.stderr)
        if not keep_going:
            print(f"error: {len(errors)} notebook(s) failed (tracebacks above); fix them, or build with --keep-going "
                  "to render them anyway", file=sys.stderr)
            return 1
    t2 = time.time()
    if out_dir.exists(): shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    render(pages, out_dir, site)
    copy_assets(out_dir)
    shutil.copytree(katex, out_dir/"katex")
    (out_dir/".nojekyll").touch()
    print(f"{len(pages)} pages in {out_dir} (execute and process {t2-t0:.1f} s, render {time.time()-t2:.1f} s); "
          f"open {out_dir/'index.html'}")
    return 0

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DOCS, help="output folder (default: _docs/)")
    ap.add_argument("--no-exec", action="store_true", help="render the notebooks' stored outputs without executing them")
    ap.add_argument("--exec-only", nargs="+", default=(), metavar="NB",
                    help="with --no-exec: execute only these notebooks (paths relative to nbs/, e.g. benchmarks.ipynb)")
    ap.add_argument("--keep-going", action="store_true", help="render notebooks that failed to execute, with their error")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel notebook processes")
    ap.add_argument("--sidebar", action="store_true", help="only rewrite nbs/sidebar.yml from the notebooks present")
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    if a.sidebar:
        print("nbs/sidebar.yml", "updated" if write_sidebar(discover()) else "up to date")
        return 0
    if a.exec_only and not a.no_exec: ap.error("--exec-only needs --no-exec (without it every notebook is executed)")
    return build(a.out.resolve(), run=not a.no_exec, workers=a.workers, keep_going=a.keep_going, exec_only=tuple(a.exec_only))

if __name__ == "__main__":
    sys.exit(main())
