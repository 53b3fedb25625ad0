"""Execute the notebooks with their CI-sized defaults and store the outputs in place: `make outputs`
(= `python scripts/make_outputs.py [NOTEBOOK ...] [--flags slow]`).

nbdev projects commit their notebooks *with* outputs (`nbdev_clean` keeps them), so GitHub, JupyterLab before a run and
a Quarto-built site all show the lessons' tables, plots and printed results. This script makes those outputs:

- each notebook runs in its own fresh process, in its own folder, the way `nbdev_test` runs it (execnb's
  `CaptureShell`; cells flagged with settings.ini's `tst_flags` (`notest gpu slow`) are skipped unless named with
  `--flags`, and a skipped cell keeps the outputs it had, e.g. the hand-run `#| slow` analysis of 02_entropy, scrubbed
  like the rest);
- outputs are made reproducible and portable before they are written: machine paths (this checkout, the home folder,
  the virtual environment, temporary folders) become `<repo>`, `~`, `<venv>`, `<tmp>`; date-times, dated run-folder
  names, progress bars and notebook widgets' per-run ids are removed; PNGs are re-encoded with a 256-colour palette
  (typically 3-4x smaller) and must stay under `MAX_IMAGE_KB`;
- then `nbdev_clean` normalises the notebook (execution counts, metadata), as the git hooks would.

A notebook that fails leaves its file untouched (outputs are written only after the whole notebook ran) and the
script exits 1 naming it. tests/test_outputs.py checks that every notebook listed there carries outputs made this way.
"""
from __future__ import annotations
import argparse, base64, io, os, re, subprocess, sys, tempfile, time, traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
MAX_IMAGE_KB = 150  # a committed PNG above this is a sign of a too-large figure or dpi

def notebooks() -> list[Path]:
    "Every notebook of nbs/ that nbdev renders (no `_`/`.` path parts): the library, index, experiments, benchmarks."
    return [p for p in sorted(NBS.rglob("*.ipynb")) if not any(s.startswith(("_", ".")) for s in p.relative_to(NBS).parts)]

# ------------------------------------------------------------------------------------------------ portable outputs
def _replacements() -> list[tuple[re.Pattern, str]]:
    "Machine-specific text and what replaces it, most specific first."
    home, tmp = str(Path.home()), tempfile.gettempdir()
    subs = [(str(Path(sys.prefix).resolve()), "<venv>"), (sys.prefix, "<venv>"), (str(ROOT), "<repo>")]
    subs = [(re.escape(a), b) for a, b in subs]
    subs += [(re.escape(tmp) + r"/[^\s'\"<>)\]},:]+", "<tmp>"),  # a temporary folder's random name goes too
             (r"/(?:private/)?var/folders/[^\s'\"<>)\]},:]+", "<tmp>"), (re.escape(home) + r"(?=/)", "~")]
    subs += [(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?", "<date-time>"),
             (r"\b20\d{2}-\d{2}-\d{2}_(?=\w)", "<date>_")]  # dated run folders: papermill_runs/2026-01-02_quickstart_main
    return [(re.compile(a), b) for a, b in subs]

def portable_text(s: str, subs=None) -> str:
    "`s` with machine paths, temporary folders and timestamps replaced by placeholders."
    for rx, rep in subs or _replacements(): s = rx.sub(rep, s)
    return s

_re_progress = re.compile(r"\d+%\||(?:it|s)/(?:s|it)[\],]|\[\d\d:\d\d<")

def without_progress(o: dict) -> dict | None:
    """A stderr stream without its tqdm bars (they carry timings, so they differ on every run and say nothing once
    finished): other lines of the stream stay; None when nothing else was in it."""
    if o.get("output_type") != "stream" or o.get("name") != "stderr": return o
    text = "".join(o.get("text", ""))
    keep = [l for l in re.split(r"(?<=\n)|\r", text) if l.strip() and not _re_progress.search(l)]
    return dict(o, text="".join(keep)) if keep else None

def small_png(b64: str) -> str:
    "A PNG re-encoded with an adaptive 256-colour palette (plots have few colours), if that is smaller."
    from PIL import Image
    raw = base64.b64decode(b64)
    im = Image.open(io.BytesIO(raw))
    if im.mode in ("RGBA", "LA"):
        bg = Image.new("RGB", im.size, (255, 255, 255)); bg.paste(im, mask=im.getchannel("A")); im = bg
    out = io.BytesIO()
    im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(raw) else b64.replace("\n", "")

def _lines(s: str) -> list[str]: return s.splitlines(keepends=True)  # how Jupyter stores text: small diffs

def portable_outputs(outputs: list[dict]) -> list[dict]:
    "Outputs as they are committed: no progress bars, widget ids, machine paths or timestamps; PNGs shrunk."
    subs, out = _replacements(), []
    for o in outputs:
        o = without_progress(o)
        if o is None: continue
        o = dict(o)
        if "text" in o: o["text"] = _lines(portable_text("".join(o["text"]), subs))
        if "traceback" in o: o["traceback"] = [portable_text(t, subs) for t in o["traceback"]]
        if "data" in o:
            data = {k: v for k, v in o["data"].items() if k != "application/vnd.jupyter.widget-view+json"}  # a per-run id
            for k, v in data.items():
                v = "".join(v) if isinstance(v, list) else v
                if k == "image/png": data[k] = small_png(v)
                elif isinstance(v, str): data[k] = _lines(portable_text(v, subs))
            if not data: continue
            o["data"] = data
        out.append(o)
    return out

# ------------------------------------------------------------------------------------------------------ execution
def _run_one(job: tuple) -> tuple:
    "Execute one notebook in this fresh process and write it back with portable outputs. Returns (path, ok, s, error)."
    src, flags = job
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                      HF_DATASETS_OFFLINE="1", IN_TEST="1")
    os.environ.pop("MPLBACKEND", None)  # CaptureShell's inline backend turns figures into outputs
    sys.path.insert(0, str(ROOT))
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import extract_directives
    import torch; torch.set_num_threads(1)
    t0 = time.time()
    skip_flags = set(get_config().get("tst_flags", "").split()) - set(flags)
    nb = read_nb(src)
    kept = {}
    for i, c in enumerate(nb.cells):
        d = extract_directives(c, remove=False) or {}
        if c.cell_type != "code": continue
        skip = ("nbdev_export" + "(" in c.source or d.get("eval:", [""])[0].lower() == "false" or bool(skip_flags & d.keys()))
        if skip: kept[i] = c.get("outputs", [])
        else: c.outputs = []  # CaptureShell keeps a cell's old outputs when the new run prints nothing
    k = CaptureShell(src)
    try:
        with working_directory(src.parent): k.run_all(nb, exc_stop=True, preproc=lambda c: c.idx_ in kept)
    except Exception:
        tb = k.prettytb(fname=src) if k.exc else traceback.format_exc()
        return str(src), False, time.time() - t0, f"{src.relative_to(NBS)} failed:\n{tb}"
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code": continue
        c["outputs"] = portable_outputs(kept[i] if i in kept else c.get("outputs", []))  # kept outputs get scrubbed too
    write_nb(nb, src)
    return str(src), True, time.time() - t0, ""

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute (default: every notebook of nbs/)")
    ap.add_argument("--flags", nargs="*", default=[], help="also run cells with these flags (e.g. slow)")
    ap.add_argument("--workers", type=int, default=1, help="notebooks executed at once (each in its own process)")
    a = ap.parse_args(argv)
    todo = [p.resolve() for p in a.notebooks] or notebooks()
    bad = [p for p in todo if not p.is_file() or not p.is_relative_to(NBS) or p.suffix != ".ipynb"]
    if bad: print(f"error: not a notebook under nbs/: {', '.join(map(str, bad))}", file=sys.stderr); return 2
    print(f"executing {len(todo)} notebook(s) with their CI-sized defaults ...", flush=True)
    failed = []
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), max_tasks_per_child=1) as ex:
        for name, ok, secs, err in ex.map(_run_one, [(p, a.flags) for p in todo]):
            print(f"  {'ok    ' if ok else 'FAILED'} {Path(name).relative_to(NBS)} ({secs:.1f} s)", flush=True)
            if not ok: failed.append(err)
    subprocess.run([str(Path(sys.executable).parent/"nbdev_clean")], cwd=ROOT, check=True)
    for e in failed: print(e, file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} notebook(s) failed (tracebacks above); their files were left as they were", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
