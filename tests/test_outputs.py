"""Notebooks carry their outputs (made by `make outputs` = scripts/make_outputs.py), as nbdev projects commit them: GitHub,
JupyterLab before a run and a Quarto-built site show the results only if they are stored in the notebook.

Checked per notebook, without executing anything: it has outputs (if any cell CI runs ends in an expression); every code cell that ends in a plain expression
(a name, attribute, subscript, literal, comparison: something that always displays) and that CI runs has an output;
no output holds a machine path, a temporary folder, a timestamp, a progress bar or a widget's per-run id; every PNG is
small. A notebook in AWAITING_OUTPUTS is expected to fail (xfail, not strict) until its outputs are regenerated."""
import ast, base64, importlib.util, json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_outputs", ROOT/"scripts"/"make_outputs.py")
make_outputs = sys.modules["make_outputs"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_outputs)

# A notebook being rewritten on a branch may be listed here until its outputs are regenerated (`make outputs`); its check
# then xfails. Empty on main: every notebook carries its outputs.
AWAITING_OUTPUTS: set[str] = set()

NOTEBOOKS = [p.relative_to(ROOT/"nbs").as_posix() for p in make_outputs.notebooks()]
SKIP_FLAGS = set(re.search(r"^tst_flags\s*=\s*(.*)$", (ROOT/"settings.ini").read_text(), re.M).group(1).split())

def _source(c) -> str: return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

def _runs_in_ci(c) -> bool:
    "Code cells that CI executes: not flagged notest/gpu/slow, not the export cell."
    src = _source(c)
    flags = {m.group(1) for m in re.finditer(r"^\s*#\|\s*([\w-]+)", src, re.M)}
    return c["cell_type"] == "code" and not (flags & SKIP_FLAGS) and "nbdev_export(" not in src

def _last_expr(c):
    "The expression a code cell ends with (what Jupyter displays), or None."
    try: body = ast.parse("\n".join(l for l in _source(c).splitlines() if not l.lstrip().startswith(("%", "!"))) ).body
    except SyntaxError: return None
    if not body or not isinstance(body[-1], ast.Expr) or _source(c).rstrip().endswith(";"): return None
    return body[-1].value

def _must_display(c) -> bool:
    "The cell ends in an expression that always displays something (a call may return None; these never do)."
    return _last_expr(c) is not None and not isinstance(_last_expr(c), (ast.Call, ast.Await, ast.Constant))

def _shows_something(c) -> bool:
    "The cell ends in an expression other than a lesson assertion (`test_eq(...)`, `test_fail(...)`)."
    e = _last_expr(c)
    fn = e.func.id if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) else ""
    return e is not None and not fn.startswith("test_") and not isinstance(e, ast.Constant)

def _texts(o: dict):
    if "text" in o: yield "".join(o["text"])
    for t in o.get("traceback", []): yield t
    for k, v in o.get("data", {}).items():
        if not k.startswith("image/"): yield "".join(v) if isinstance(v, list) else str(v)

LEAKS = [(re.compile(p), what) for p, what in [
    (r"/(?:tmp|var/folders|private/var)/\S", "a temporary folder"), (r"/(?:root|home/\w+|Users/\w+)/", "a home folder"),
    (re.escape(str(ROOT)), "this checkout's path"), (r"site-packages/", "the virtual environment's path"),
    (r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", "a date-time"), (r"\b20\d{2}-\d{2}-\d{2}_\w", "a dated run folder"),
    (r"\d+%\|[^|]*\|", "a progress bar")]]

def _check(rel: str):
    nb = json.loads((ROOT/"nbs"/rel).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(_runs_in_ci(c) and _shows_something(c) for c in code):
        assert any(c.get("outputs") for c in code), f"{rel} carries no outputs: run `make outputs` and commit the notebook"
    silent = [_source(c).strip().splitlines()[-1][:60] for c in code if _runs_in_ci(c) and _must_display(c) and not c.get("outputs")]
    assert not silent, f"{rel}: cells ending in an expression have no output ({silent}): run `make outputs`"
    for c in code:
        for o in c.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {}), f"{rel}: a widget's per-run id is stored"
            for t in _texts(o):
                for rx, what in LEAKS:
                    m = rx.search(t)
                    assert not m, f"{rel}: an output holds {what} ({t[max(0, m.start()-40):m.end()+40]!r}); run `make outputs`"
            if "image/png" in o.get("data", {}):
                kb = len(base64.b64decode("".join(o["data"]["image/png"]))) / 1024
                assert kb <= make_outputs.MAX_IMAGE_KB, f"{rel}: a {kb:.0f} KB PNG (limit {make_outputs.MAX_IMAGE_KB} KB); shrink the figure"

@pytest.mark.parametrize("rel", [pytest.param(r, marks=pytest.mark.xfail(reason="outputs regenerated at the end of issue 14",
                                                                         strict=False)) if r in AWAITING_OUTPUTS else r
                                 for r in NOTEBOOKS])
def test_notebook_carries_outputs(rel):
    _check(rel)

def test_awaiting_list_names_real_notebooks():
    assert AWAITING_OUTPUTS <= set(NOTEBOOKS), f"not notebooks: {AWAITING_OUTPUTS - set(NOTEBOOKS)}"

def test_portable_outputs_scrub_machine_facts(tmp_path):
    "The scrubber itself: paths, temporary folders, timestamps, progress bars and widget ids go; PNGs shrink."
    import io, tempfile
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 3)); ax.plot(range(10)); buf = io.BytesIO(); fig.savefig(buf, format="png", dpi=100)
    png = base64.b64encode(buf.getvalue()).decode()
    tmp = tempfile.gettempdir()
    outs = [{"output_type": "stream", "name": "stderr", "text": "wiki: 100%|#####| 1/1 [00:03<00:00,  3.48s/it]\n"},
            {"output_type": "stream", "name": "stdout",
             "text": f"wrote {ROOT}/papermill_runs/2026-01-02_quickstart_main/x.json and {tmp}/tmpab_12x/shard.parquet at 2026-01-02 10:11:12\n"},
            {"output_type": "display_data", "metadata": {}, "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}},
            {"output_type": "execute_result", "metadata": {}, "execution_count": 1,
             "data": {"image/png": png, "text/plain": f"{Path.home()}/x {sys.prefix}/lib"}}]
    got = make_outputs.portable_outputs(outs)
    assert [o["output_type"] for o in got] == ["stream", "execute_result"]
    assert got[0]["text"] == ["wrote <repo>/papermill_runs/<date>_quickstart_main/x.json and <tmp> at <date-time>\n"]
    assert got[1]["data"]["text/plain"] == ["~/x <venv>/lib"]
    assert len(base64.b64decode(got[1]["data"]["image/png"])) < len(buf.getvalue())
    mixed = {"output_type": "stream", "name": "stderr", "text": "\rtrain:   0%|   | 0/2 [00:00<?, ?it/s]\rtrain:  50%|#5 | 1/2 "
             "[00:00<00:00,  6.22it/s, loss=10.8]\nkept: a line that is not a bar\n\rtrain: 100%|###| 2/2 [00:01<00:00, 1.5s/it, loss=9]\n"}
    assert make_outputs.portable_outputs([mixed])[0]["text"] == ["kept: a line that is not a bar\n"]
    bad = {"cells": [{"cell_type": "code", "source": "x = 1\nx", "outputs": [], "metadata": {}}]}
    (tmp_path/"nb.ipynb").write_text(json.dumps(bad))
    assert _must_display(bad["cells"][0]) and _runs_in_ci(bad["cells"][0])
