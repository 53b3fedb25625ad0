"""The one place scripts/build_docs.py talks to nbdev (pinned: nbdev 2.4.14, execnb 0.1.18).

Everything here is nbdev's public API (names in a module's `__all__`) except what is listed under *Beyond the public
API*, each with the reason no public command does the job. `make docs` renders the site without Quarto (Quarto
cannot be installed on the project machines), so it cannot simply run `nbdev_docs`; it still does what
`nbdev_proc_nbs` does to each notebook, through these functions:

| build step | nbdev's own piece used |
|---|---|
| which notebooks are pages | `nbdev.doclinks.nbglob` (the files `nbdev_proc_nbs` and `nbdev_sidebar` see) |
| a page's title, description, order and output file | `nbdev.process.NBProcessor` with `nbdev.frontmatter.FrontmatterProc` |
| `nbs/nbdev.yml` from settings.ini | `nbdev.quarto.refresh_quarto_yml` |
| settings (`tst_flags`, site title and URL) | `nbdev.config.get_config` |
| the docs processors (hidden cells, `show_doc`, front matter) | `nbdev.processors.FilterDefaults` with its processors |
| reading and writing notebooks, executing them | `execnb.nbio.read_nb`/`write_nb`, `execnb.shell.CaptureShell` |

Why not the commands themselves: `nbdev_proc_nbs` starts by installing Quarto (`_ensure_quarto`), and
`nbdev.serve.proc_nbs`, what it runs next, processes notebooks as committed (no execution) in fresh shells, caches by
file time only (the Benchmarks page changes when result files do) and copies all of nbs/; `nbdev_test` executes but
keeps nothing. So build_docs runs the same per-notebook steps itself, with its own cache.

*Beyond the public API* (two subclasses that reach into what nbdev's classes keep on `self`):

1. `execute` is `nbdev.test.test_nb`'s loop (same skip rule: `tst_flags` directives, `eval: false`, the
   `nbdev_export()` cell; same `skip_exec` front matter). `test_nb` returns only (passed, seconds) and drops the executed
   notebook and its shell; the site needs both (the outputs to render, the shell to run `show_doc` in).
2. `processors(shell=...)` runs nbdev's `exec_show_docs` step in that already-executed shell instead of the fresh
   shell `exec_show_docs.begin` starts: it sets `self.k` (the processor's shell attribute) and reads `nb.has_docs_`
   (set by nbdev's `add_show_docs`). `FilterDefaults.base_procs` is the documented hook for changing the processor
   list. Without it every notebook would re-import torch and re-run its exported cells in a second shell, and a cell
   that mixes imports with code needing earlier cells would fail (nbdev's FAQ). Only cells that call `show_doc` run
   there: the notebook has already run everything else.

The sidebar is not nbdev's: `nbdev_sidebar` makes one flat list per folder, while the site groups the top-level
notebooks into sections ("Start here", "Library"). build_docs writes `nbs/sidebar.yml` itself and settings.ini says
`custom_sidebar = True`, which is nbdev's switch for exactly that.
"""
from __future__ import annotations
import os, re
from pathlib import Path

def config():
    "settings.ini as nbdev reads it (`get_config`)."
    from nbdev.config import get_config
    return get_config()

def test_flags() -> list[str]:
    "The cell flags `nbdev_test` skips (`tst_flags`)."
    return config().get("tst_flags", "").split()

def refresh_quarto_yml():
    "Rewrite nbs/nbdev.yml from settings.ini, as `nbdev_proc_nbs` does before processing."
    from nbdev.quarto import refresh_quarto_yml
    refresh_quarto_yml()

def notebooks(nbs: Path) -> list[Path]:
    "The notebooks nbdev renders under `nbs` (no `_`/`.` folders or files), sorted."
    from fastcore.xtras import working_directory
    from nbdev.doclinks import nbglob
    with working_directory(nbs): return sorted(nbglob(Path(nbs).resolve(), as_path=True))  # settings.ini found from nbs/

def front_matter(path: Path) -> dict:
    "A notebook's front matter as nbdev reads it: a raw `---` cell, or `# title`, `> description`, `- key: value` lines."
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    return dict(getattr(NBProcessor(path, procs=FrontmatterProc, process=True).nb, "frontmatter_", {}))

def page_path(rel: Path, fm: dict) -> Path:
    "A notebook's page (relative to the site root): nbdev's `output-file` from its front matter (`00_core.ipynb` → `core.html`)."
    return rel.parent/fm["output-file"] if fm.get("output-file") else rel.with_suffix(".html")

def read_nb(path: Path):
    from execnb.nbio import read_nb
    return read_nb(path)

def write_nb(nb, path: Path):
    from execnb.nbio import write_nb
    write_nb(nb, path)

def execute(src: Path, skip_flags: list[str]):
    """Run a notebook as `nbdev_test` does and keep the result: (notebook with outputs, its shell or None if not run,
    error text or ""). `src`'s folder is the working directory, as in `nbdev_test`."""
    from execnb.shell import CaptureShell
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from nbdev.process import extract_directives
    nb = read_nb(src)
    if str2bool(front_matter(src).get("skip_exec", False)): return nb, None, ""
    for c in nb.cells: c.directives_ = extract_directives(c, remove=False)  # the docs processors still read them
    def skip(cell):  # test_nb's `_no_eval`
        if cell.cell_type != "code" or "nbdev_export" + "(" in cell.source: return True
        d = cell.directives_ or {}
        return d.get("eval:", [""])[0].lower() == "false" or bool(set(skip_flags) & d.keys())
    k = CaptureShell(src)
    try:
        with working_directory(src.parent): k.run_all(nb, exc_stop=True, preproc=skip)
    except Exception:
        import traceback
        return nb, k, k.prettytb(fname=src) if k.exc else traceback.format_exc()
    return nb, k, ""

_re_show_doc = re.compile(r"^show_doc\(", re.M)

def processors(shell=None, show_docs: bool = True):
    """nbdev's docs processors (`FilterDefaults`: what `nbdev_proc_nbs` applies). With `shell`, the show_doc cells run in
    that executed notebook's shell (see the module's docstring); `show_docs=False` leaves show_doc out altogether."""
    from nbdev.processors import FilterDefaults, exec_show_docs
    class exec_show_docs_in_shell(exec_show_docs):
        def begin(self):
            self.k = shell
            self.k.run_cell("from nbdev.showdoc import show_doc")
        def __call__(self, cell):
            if not getattr(self.nb, "has_docs_", None) or cell.cell_type != "code" or not cell.source: return
            if getattr(cell, "has_sd", False) or _re_show_doc.search(cell.source):  # inserted by add_show_docs, or written
                self.k.cell(cell)
                if self.k.exc: raise Exception(f"show_doc failed in cell {cell.idx_}:\n{cell.source}") from self.k.exc
    class Procs(FilterDefaults):
        def base_procs(self):
            procs = [p for p in super().base_procs() if show_docs or p is not exec_show_docs]
            return [exec_show_docs_in_shell if p is exec_show_docs else p for p in procs] if shell else procs
    return Procs()

def process(nb, src_dir: Path, shell=None, show_docs: bool = True):
    "Apply the docs processors to `nb` in place, in the notebook's folder (as `nbdev_proc_nbs` does)."
    from fastcore.xtras import working_directory
    with working_directory(src_dir): processors(shell, show_docs)(nb)
